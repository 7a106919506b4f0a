/* NOTIFY (RFC 1996): tells secondaries (Knot, NSD, BIND outside the cluster)
 * that a zone changed, so that they transfer it at once instead of waiting
 * for their refresh timer.
 *
 * Owns: the notify targets, the UDP socket on the control loop, retries.
 * Must never: run on a DNS worker or block; it only reads the serial it is
 * given. */
#ifndef SVCDNS_NOTIFY_H
#define SVCDNS_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dns/server.h"

struct dns_notifier;

/* Targets are ADDR[:PORT] strings already parsed by dns_listen_parse. */
int dns_notifier_start(uv_loop_t *loop, const struct dns_listen *targets, size_t n,
		       struct dns_notifier **out);
/* Sends NOTIFY for each zone apex (lowercase wire names) with the given
 * serial to every target; retries each up to 5 times, 2 s apart, until the
 * target answers. A newer call replaces pending retries. */
void dns_notifier_send(struct dns_notifier *nt, const uint8_t (*zones)[255], size_t n_zones,
		       uint32_t serial);
void dns_notifier_stop(struct dns_notifier *nt);

#endif
