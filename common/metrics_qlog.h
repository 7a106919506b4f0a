/* The query log (--log-queries): one line per query, in the shape of CoreDNS's
 * log plugin, written by the control thread from a ring per worker that the
 * worker fills without waiting for anything.
 *
 * Owns: the rings (one producer, the worker; one consumer, the control
 * thread), the line format and the count of lines dropped when a ring is full.
 * Must never: block or allocate in qlog_ring_push; a full ring drops the entry
 * and counts it, it never slows the worker down. */
#ifndef SVCDNS_METRICS_QLOG_H
#define SVCDNS_METRICS_QLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Entries per worker: at one drain every QLOG_DRAIN_MS, this many queries per
 * worker and interval are logged before lines are dropped. */
#define QLOG_RING_SIZE 4096
#define QLOG_DRAIN_MS  50

struct qlog_ring;

struct qlog_entry_in {
	const struct sockaddr *peer;
	const uint8_t *req; /* the query: id, question */
	size_t req_len;
	uint16_t qend; /* end of the question, 0 if none was read */
	bool tcp;
	bool dnssec_ok;
	uint16_t bufsize;
	bool answered; /* false: the forwarder answers later */
	uint8_t rcode;
	uint8_t rflags;	 /* byte 2 of the response header */
	uint8_t rflags2; /* byte 3 */
	uint32_t resp_len;
	uint64_t dur_ns;
};

struct qlog_ring *qlog_ring_new(void);
void qlog_ring_free(struct qlog_ring *r);

/* Worker: copies the entry into the ring, or counts it dropped. */
void qlog_ring_push(struct qlog_ring *r, const struct qlog_entry_in *e);

/* Control thread: logs (info level) up to `max` entries; returns how many. */
size_t qlog_ring_drain(struct qlog_ring *r, size_t max);
uint64_t qlog_ring_dropped(const struct qlog_ring *r);

/* Formats one entry's line (without the log prefix) into buf; exposed for
 * unit tests. Returns the length (truncated to cap - 1). */
size_t qlog_format(const struct qlog_entry_in *e, char *buf, size_t cap);

#endif
