/* Transport addresses of DNS servers ("ADDR:PORT", "[V6]:PORT", "ADDR"): what
 * svcdns listens on (--listen) and where the resolver sends (--upstream,
 * resolv.conf, stub domains), in one type so that the resolver can tell its
 * own listeners from its upstreams.
 *
 * Owns: the parse and the text kept for log lines. Must never allocate or log;
 * any thread. */
#ifndef SVCDNS_LISTEN_H
#define SVCDNS_LISTEN_H

#include <sys/socket.h>

struct dns_listen {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[80];
};

/* Parses "ADDR:PORT", "[V6]:PORT" or "ADDR" (port 53). Returns 0 or -EINVAL. */
int dns_listen_parse(const char *text, struct dns_listen *out);

#endif
