/* Response rate limiting over UDP, the scheme Knot DNS and BIND use against
 * reflection: a token bucket per flow of responses; past its rate a response
 * is dropped, and every Nth dropped one is sent truncated (empty, TC set) so
 * that a real client behind a spoofed flood still gets through over TCP.
 *
 * A flow is the client's network (IPv4 /24, IPv6 /56) and the kind of the
 * response; answers and NODATA also count per name asked (and answers per
 * type), so that one busy name does not starve the others, while NXDOMAIN and
 * errors count per network alone (random names must not make new flows).
 *
 * Owns: classifying a response, the buckets (a fixed table hashed with the
 * process's secret key of common/shash.h, so that nobody can aim a flow at a
 * bucket; a few probes, the oldest bucket given up when all are busy) and the
 * slipped response. Must never: allocate or lock after rrl_new, or read a
 * clock: one table per worker, time given by the caller (tests drive a fake
 * clock). */
#ifndef SVCDNS_RRL_H
#define SVCDNS_RRL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum rrl_kind { RRL_ANSWER = 0, RRL_NODATA, RRL_NXDOMAIN, RRL_ERROR, RRL_KINDS };
enum rrl_verdict { RRL_PASS = 0, RRL_DROP, RRL_SLIP };

/* Buckets per worker: 24 bytes each. Flows beyond it share buckets (the
 * oldest is reused), which only ever lets more through. */
#define RRL_BUCKETS_DEFAULT 16384

struct rrl;

/* rate: responses per second per flow (also the burst), 1..LIMITS_RRL_MAX;
 * slip: every slip-th dropped response is slipped (0: none); buckets: a power
 * of two. Returns 0, -EINVAL, -ENOMEM, or shash_init's error. */
int rrl_new(unsigned rate, unsigned slip, size_t buckets, struct rrl **out);
void rrl_free(struct rrl *r);

enum rrl_kind rrl_classify(const uint8_t *resp, size_t len);

/* The fate of response resp[0..len) to peer at now_ms (a monotonic clock);
 * RRL_PASS also for anything that is not a response of ours to classify. */
enum rrl_verdict rrl_check(struct rrl *r, const struct sockaddr *peer, const uint8_t *resp,
			   size_t len, uint64_t now_ms);

/* Turns resp into its slipped form in place: header and question only, TC
 * set, no records (no OPT either). Returns the new length (12 when the
 * question cannot be read). */
size_t rrl_slip(uint8_t *resp, size_t len);

#endif
