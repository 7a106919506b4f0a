/* The nameservers of a resolv.conf file (resolv.conf(5)): svcdns's default
 * upstreams, as they are for every other program on the host.
 *
 * Owns: reading `nameserver` lines. Must never: use search, ndots or other
 * options (svcdns is the server; those are for its clients). */
#ifndef SVCDNS_RESOLVCONF_H
#define SVCDNS_RESOLVCONF_H

#include <stddef.h>

#include "wire/listen.h"

/* Reads up to `cap` nameservers (port 53; an IPv6 zone index is dropped).
 * Returns the number found, or a negative errno when the file cannot be read.
 * Lines that are not valid addresses are logged and skipped. */
int resolvconf_read(const char *path, struct dns_listen *out, size_t cap);

#endif
