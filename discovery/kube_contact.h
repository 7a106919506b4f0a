/* Contact with the Kubernetes API server: whether what the source holds is
 * still what the cluster says. On a quiet cluster a healthy watch carries no
 * bytes at all (the API server sends bookmarks only once the resourceVersion
 * has moved past the watch's start), so silence cannot mean staleness. A
 * stream (one resource's list-then-watch) is in contact while it has a request
 * out and the server is proven alive: by bytes of its own 2xx responses, or by
 * a cheap periodic request (a list with limit=1) that answers while it is open.
 * A stream waiting to retry after a failure is proven nothing, so its age grows
 * from its last proof. A watch whose connection died unnoticed is ended by TCP
 * keepalive (kube_http.c) and then waits to retry.
 *
 * Owns: the per-stream proof times and when the next probe is due. Must never:
 * read a clock (every call is given the time, so that tests drive it), send a
 * request, or log. Called on the source's loop thread only. */
#ifndef SVCDNS_KUBE_CONTACT_H
#define SVCDNS_KUBE_CONTACT_H

#include <stdbool.h>
#include <stdint.h>

#define KUBE_CONTACT_STREAMS 4

struct kube_contact {
	uint64_t ok_ms[KUBE_CONTACT_STREAMS]; /* last proof of each stream; 0: never */
	bool open[KUBE_CONTACT_STREAMS];      /* a request is out (not waiting to retry) */
	unsigned n;			      /* streams in use: [0, n) */
	unsigned probe_ms;		      /* prove contact at least this often */
	bool probing;			      /* a probe is out */
};

/* n streams (at most KUBE_CONTACT_STREAMS). */
void kube_contact_init(struct kube_contact *c, unsigned probe_ms, unsigned n);
/* Stream i has a request out (true) or waits to retry after a failure. */
void kube_contact_set_open(struct kube_contact *c, unsigned i, bool open);
/* Bytes of a 2xx response of stream i arrived (its headers, a page, an event). */
void kube_contact_heard(struct kube_contact *c, unsigned i, uint64_t now_ms);
/* A probe answered 2xx at now_ms: every open stream is in contact. */
void kube_contact_probe_answered(struct kube_contact *c, uint64_t now_ms);
/* Whether to send a probe now: none is out, some stream is open, and the
 * oldest proof of an open stream is at least probe_ms old. */
bool kube_contact_probe_due(const struct kube_contact *c, uint64_t now_ms);
/* Milliseconds since the stream heard from least recently was last proven in
 * contact; -1 while some stream never was. */
int64_t kube_contact_age_ms(const struct kube_contact *c, uint64_t now_ms);

#endif
