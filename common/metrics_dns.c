/* The DNS statistics: counters each worker keeps for itself (requests and
 * responses by zone, protocol, family, type and rcode; durations and sizes),
 * added with relaxed atomics by their one writer, and the DNS families a
 * scrape renders from their sums. See metrics.h. */
#include "common/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/metrics_impl.h"
#include "common/metrics_qlog.h"

#define Z METRICS_MAX_ZONES
#define T METRICS_N_TYPES
#define R METRICS_N_RCODES
#define D METRICS_N_DUR
#define S METRICS_N_SIZE

typedef atomic_uint_fast64_t counter;

/* Every array is indexed zone first, so that one zone's counters sit
 * together; most of the (large, zeroed) block is never touched. */
struct metrics_worker {
	struct metrics *m;
	struct qlog_ring *qlog;
	counter req[Z][2][2][T];  /* zone, proto, family, type */
	counter resp[Z][2][T][R]; /* zone, proto, type, rcode */
	counter dur[Z][T][D + 1]; /* zone, type, bucket */
	counter dur_ns[Z][T];
	counter req_size[Z][2][S + 1]; /* zone, proto, bucket */
	counter req_bytes[Z][2];
	counter resp_size[Z][2][S + 1];
	counter resp_bytes[Z][2];
	counter stale[Z];
};

static const uint64_t dur_bounds_ns[D] = {10000,      25000,	  50000,     100000,	250000,
					  500000,     1000000,	  2500000,   5000000,	10000000,
					  25000000,   50000000,	  100000000, 250000000, 500000000,
					  1000000000, 2500000000, 5000000000};
static const uint32_t size_bounds[S] = {0,    100,  200,  300,	 400,	511,   1023,
					2047, 4095, 8291, 16000, 32000, 48000, 64000};

static _Thread_local struct metrics_worker *tls_worker;

static inline void bump(counter *c, uint64_t v)
{
	/* One writer: a plain load and store, no locked instruction. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline uint64_t rd(const counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* ---- workers ------------------------------------------------------------- */

struct metrics_worker *metrics_worker_new(struct metrics *m)
{
	if (m->n_workers == METRICS_MAX_WORKERS)
		return NULL;
	struct metrics_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->qlog = qlog_ring_new();
	if (!w->qlog) {
		free(w);
		return NULL;
	}
	w->m = m;
	m->workers[m->n_workers++] = w;
	return w;
}

void metrics_worker_enter(struct metrics_worker *w)
{
	tls_worker = w;
}

/* The types CoreDNS labels, most asked first; the slot after them is "other". */
static const uint16_t type_codes[T - 1] = {1,  28, 15, 6,  5,  12, 16,	2,   33,
					   43, 48, 46, 47, 50, 65, 251, 252, 255};

unsigned metrics_type_slot(uint16_t qtype)
{
	for (unsigned i = 0; i < T - 1; i++)
		if (type_codes[i] == qtype)
			return i;
	return T - 1;
}

const char *metrics_type_name(unsigned slot)
{
	static const char *const names[T] = {
	    "A",      "AAAA",  "MX",   "SOA",	"CNAME", "PTR",	 "TXT",	 "NS",	"SRV",	"DS",
	    "DNSKEY", "RRSIG", "NSEC", "NSEC3", "HTTPS", "IXFR", "AXFR", "ANY", "other"};
	return slot < T ? names[slot] : "other";
}

const char *metrics_rcode_name(unsigned rcode)
{
	static const char *const names[R] = {
	    "NOERROR",	"FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED",
	    "YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE", "DSOTYPENI",
	    "RCODE12",	"RCODE13", "RCODE14",  "RCODE15",  "BADVERS"};
	return rcode < R ? names[rcode] : "other";
}

unsigned metrics_zone_of(const struct metrics *m, const uint8_t *name, size_t len)
{
	/* Where each label starts, so that a zone matches only at a label
	 * boundary ("xcluster.local" is not in "cluster.local"). */
	uint64_t starts[4] = {0};
	size_t o = 0;
	while (o < len && o < 255) {
		starts[o >> 6] |= 1ull << (o & 63);
		if (name[o] == 0)
			break;
		o += 1u + name[o];
	}
	if (o >= len || o >= 255 || name[o] != 0)
		return 0;
	size_t total = o + 1;
	unsigned best = 0;
	size_t best_len = 1;
	unsigned n = atomic_load_explicit(&m->n_zones, memory_order_acquire);
	for (unsigned i = 1; i < n; i++) {
		const struct mzone *z = &m->zones[i];
		if (z->len > total || z->len <= best_len)
			continue;
		size_t at = total - z->len;
		if (!(starts[at >> 6] & (1ull << (at & 63))))
			continue;
		size_t k = 0;
		while (k < z->len) {
			uint8_t c = name[at + k];
			/* ASCII only: libc's tolower() is a call and a locale lookup */
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + 32);
			if (c != z->wire[k])
				break;
			k++;
		}
		if (k == z->len) {
			best = i;
			best_len = z->len;
		}
	}
	return best;
}

static unsigned dur_bucket(uint64_t ns)
{
	unsigned b = 0;
	while (b < D && ns > dur_bounds_ns[b])
		b++;
	return b;
}

static unsigned size_bucket(size_t bytes)
{
	unsigned b = 0;
	while (b < S && bytes > size_bounds[b])
		b++;
	return b;
}

static unsigned family_slot(const struct sockaddr *peer)
{
	return peer && peer->sa_family == AF_INET6 ? 1 : 0;
}

static void count_response(struct metrics_worker *w, unsigned z, unsigned p, unsigned t,
			   unsigned rcode, size_t resp_len, uint64_t dur_ns)
{
	bump(&w->resp[z][p][t][rcode < R ? rcode : R - 1], 1);
	bump(&w->resp_size[z][p][size_bucket(resp_len)], 1);
	bump(&w->resp_bytes[z][p], resp_len);
	bump(&w->dur[z][t][dur_bucket(dur_ns)], 1);
	bump(&w->dur_ns[z][t], dur_ns);
}

/* The zone the query path already found: its apex is compared with the
 * registered ones, lengths first (usually one memcmp). */
static unsigned zone_by_apex(const struct metrics *m, const uint8_t *apex, size_t len)
{
	unsigned n = atomic_load_explicit(&m->n_zones, memory_order_acquire);
	for (unsigned i = 1; i < n; i++)
		if (m->zones[i].len == len && memcmp(m->zones[i].wire, apex, len) == 0)
			return i;
	return 0;
}

void metrics_dns_query(struct metrics_worker *w, const struct metrics_query *q)
{
	unsigned z = q->apex ? zone_by_apex(w->m, q->apex, q->apex_len) : 0;
	if (!z && q->qend > 12)
		z = metrics_zone_of(w->m, q->req + 12, q->qend - 12u - 4u);
	unsigned t = metrics_type_slot(q->qtype);
	unsigned p = q->proto ? 1 : 0;
	bump(&w->req[z][p][family_slot(q->peer)][t], 1);
	bump(&w->req_size[z][p][size_bucket(q->req_len)], 1);
	bump(&w->req_bytes[z][p], q->req_len);
	if (q->resp)
		count_response(w, z, p, t, q->rcode, q->resp_len, q->dur_ns);
	if (q->stale)
		bump(&w->stale[z], 1);
	if (atomic_load_explicit(&w->m->qlog_on, memory_order_relaxed)) {
		struct qlog_entry_in e = {
		    .peer = q->peer,
		    .req = q->req,
		    .req_len = q->req_len,
		    .qend = q->qend,
		    .tcp = q->proto == METRICS_TCP,
		    .answered = q->resp != NULL,
		    .rcode = q->rcode,
		    .resp_len = (uint32_t)q->resp_len,
		    .dur_ns = q->dur_ns,
		    .dnssec_ok = q->dnssec_ok,
		    .bufsize = q->bufsize,
		};
		if (q->resp && q->resp_len >= 4) {
			e.rflags = q->resp[2];
			e.rflags2 = q->resp[3];
		}
		qlog_ring_push(w->qlog, &e);
	}
}

void metrics_dns_reply_late(const uint8_t *resp, size_t len, enum metrics_proto proto,
			    const struct sockaddr *peer, uint64_t start_ns)
{
	struct metrics_worker *w = tls_worker;
	(void)peer;
	if (!w || !resp || len < 12)
		return;
	/* The type from the echoed question when it is there. */
	unsigned t = metrics_type_slot(0);
	if (resp[4] == 0 && resp[5] == 1) {
		size_t o = 12;
		while (o < len && resp[o] != 0 && resp[o] < 64)
			o += 1u + resp[o];
		if (o + 5 <= len && resp[o] == 0)
			t = metrics_type_slot((uint16_t)(resp[o + 1] << 8 | resp[o + 2]));
	}
	uint64_t dur = 0;
	if (start_ns) {
		uint64_t now = clock_now_ns();
		dur = now > start_ns ? now - start_ns : 0;
	}
	count_response(w, 0, proto ? 1 : 0, t, resp[3] & 0x0F, len, dur);
}

void metrics_workers_free(struct metrics *m)
{
	for (unsigned i = 0; i < m->n_workers; i++) {
		qlog_ring_free(m->workers[i]->qlog);
		free(m->workers[i]);
	}
}

size_t metrics_qlog_drain(struct metrics *m)
{
	size_t n = 0;
	for (unsigned i = 0; i < m->n_workers; i++)
		n += qlog_ring_drain(m->workers[i]->qlog, QLOG_RING_SIZE);
	return n;
}

/* ---- the DNS families ---------------------------------------------------- */

static const char *const proto_names[2] = {"udp", "tcp"};
static const char *const family_native[2] = {"ipv4", "ipv6"};
static const char *const family_coredns[2] = {"1", "2"};

static const char *zone_plugin(const struct mzone *z)
{
	return z->kind == METRICS_ZONE_CLUSTER	? "kubernetes"
	       : z->kind == METRICS_ZONE_STATIC ? "file"
						: "";
}

static void render_requests(struct metrics *m, struct metrics_out *o, unsigned nz, bool compat)
{
	const char *name = compat ? "coredns_dns_requests_total" : "svcdns_dns_requests_total";
	metrics_family(o, name, "counter",
		       compat
			   ? "Counter of DNS requests made per zone, protocol and family."
			   : "DNS requests received, by zone, protocol, address family and type.");
	for (unsigned z = 0; z < nz; z++)
		for (unsigned p = 0; p < 2; p++)
			for (unsigned f = 0; f < 2; f++)
				for (unsigned t = 0; t < T; t++) {
					uint64_t v = 0;
					for (unsigned i = 0; i < m->n_workers; i++)
						v += rd(&m->workers[i]->req[z][p][f][t]);
					if (!v)
						continue;
					if (compat)
						metrics_sample(o, name, (double)v, "server",
							       m->server, "zone", m->zones[z].text,
							       "view", "", "proto", proto_names[p],
							       "family", family_coredns[f], "type",
							       metrics_type_name(t), NULL);
					else
						metrics_sample(o, name, (double)v, "zone",
							       m->zones[z].text, "proto",
							       proto_names[p], "family",
							       family_native[f], "type",
							       metrics_type_name(t), NULL);
				}
}

static void render_responses(struct metrics *m, struct metrics_out *o, unsigned nz)
{
	const char *name = "svcdns_dns_responses_total";
	metrics_family(o, name, "counter",
		       "DNS responses sent, by zone, protocol, query type and rcode.");
	for (unsigned z = 0; z < nz; z++)
		for (unsigned p = 0; p < 2; p++)
			for (unsigned t = 0; t < T; t++)
				for (unsigned r = 0; r < R; r++) {
					uint64_t v = 0;
					for (unsigned i = 0; i < m->n_workers; i++)
						v += rd(&m->workers[i]->resp[z][p][t][r]);
					if (v)
						metrics_sample(o, name, (double)v, "zone",
							       m->zones[z].text, "proto",
							       proto_names[p], "type",
							       metrics_type_name(t), "rcode",
							       metrics_rcode_name(r), NULL);
				}
	if (!metrics_out_compat(o))
		return;
	name = "coredns_dns_responses_total";
	metrics_family(o, name, "counter", "Counter of response status codes.");
	for (unsigned z = 0; z < nz; z++)
		for (unsigned r = 0; r < R; r++) {
			uint64_t v = 0;
			for (unsigned i = 0; i < m->n_workers; i++)
				for (unsigned p = 0; p < 2; p++)
					for (unsigned t = 0; t < T; t++)
						v += rd(&m->workers[i]->resp[z][p][t][r]);
			if (v)
				metrics_sample(o, name, (double)v, "server", m->server, "zone",
					       m->zones[z].text, "view", "", "rcode",
					       metrics_rcode_name(r), "plugin",
					       zone_plugin(&m->zones[z]), NULL);
		}
}

static void render_durations(struct metrics *m, struct metrics_out *o, unsigned nz, bool compat)
{
	const char *name =
	    compat ? "coredns_dns_request_duration_seconds" : "svcdns_dns_request_duration_seconds";
	double bounds[D];
	for (unsigned b = 0; b < D; b++)
		bounds[b] = (double)dur_bounds_ns[b] / 1e9;
	metrics_family(o, name, "histogram",
		       compat ? "Histogram of the time (in seconds) each request took per zone."
			      : "Time from receiving a query to its response, by zone and type.");
	for (unsigned z = 0; z < nz; z++)
		for (unsigned t = 0; t < T; t++) {
			uint64_t c[D + 1] = {0}, any = 0, sum = 0;
			for (unsigned i = 0; i < m->n_workers; i++) {
				for (unsigned b = 0; b <= D; b++) {
					uint64_t v = rd(&m->workers[i]->dur[z][t][b]);
					c[b] += v;
					any += v;
				}
				sum += rd(&m->workers[i]->dur_ns[z][t]);
			}
			if (!any)
				continue;
			if (compat)
				metrics_histogram(o, name, bounds, D, c, (double)sum / 1e9,
						  "server", m->server, "zone", m->zones[z].text,
						  "view", "", "type", metrics_type_name(t), NULL);
			else
				metrics_histogram(o, name, bounds, D, c, (double)sum / 1e9, "zone",
						  m->zones[z].text, "type", metrics_type_name(t),
						  NULL);
		}
}

static void render_sizes(struct metrics *m, struct metrics_out *o, unsigned nz, bool compat,
			 bool response)
{
	const char *name =
	    compat
		? (response ? "coredns_dns_response_size_bytes" : "coredns_dns_request_size_bytes")
		: (response ? "svcdns_dns_response_size_bytes" : "svcdns_dns_request_size_bytes");
	double bounds[S];
	for (unsigned b = 0; b < S; b++)
		bounds[b] = size_bounds[b];
	metrics_family(o, name, "histogram",
		       response ? "Size of the responses sent, in bytes, by zone and protocol."
				: "Size of the requests received, in bytes, by zone and protocol.");
	for (unsigned z = 0; z < nz; z++)
		for (unsigned p = 0; p < 2; p++) {
			uint64_t c[S + 1] = {0}, any = 0, sum = 0;
			for (unsigned i = 0; i < m->n_workers; i++) {
				struct metrics_worker *w = m->workers[i];
				for (unsigned b = 0; b <= S; b++) {
					uint64_t v = rd(response ? &w->resp_size[z][p][b]
								 : &w->req_size[z][p][b]);
					c[b] += v;
					any += v;
				}
				sum += rd(response ? &w->resp_bytes[z][p] : &w->req_bytes[z][p]);
			}
			if (!any)
				continue;
			if (compat)
				metrics_histogram(o, name, bounds, S, c, (double)sum, "server",
						  m->server, "zone", m->zones[z].text, "view", "",
						  "proto", proto_names[p], NULL);
			else
				metrics_histogram(o, name, bounds, S, c, (double)sum, "zone",
						  m->zones[z].text, "proto", proto_names[p], NULL);
		}
}

void metrics_dns_render(struct metrics *m, struct metrics_out *o)
{
	unsigned nz = atomic_load_explicit(&m->n_zones, memory_order_acquire);
	render_requests(m, o, nz, false);
	render_responses(m, o, nz);
	render_durations(m, o, nz, false);
	render_sizes(m, o, nz, false, false);
	render_sizes(m, o, nz, false, true);
	metrics_family(o, "svcdns_dns_stale_answers_total", "counter",
		       "Answers that carried Extended DNS Error 3 (Stale Answer), by zone.");
	for (unsigned z = 0; z < nz; z++) {
		uint64_t v = 0;
		for (unsigned i = 0; i < m->n_workers; i++)
			v += rd(&m->workers[i]->stale[z]);
		if (v || m->zones[z].kind == METRICS_ZONE_CLUSTER)
			metrics_sample(o, "svcdns_dns_stale_answers_total", (double)v, "zone",
				       m->zones[z].text, NULL);
	}
	uint64_t dropped = 0;
	for (unsigned i = 0; i < m->n_workers; i++)
		dropped += qlog_ring_dropped(m->workers[i]->qlog);
	metrics_family(o, "svcdns_querylog_dropped_total", "counter",
		       "Query log lines dropped because a worker's ring was full.");
	metrics_sample(o, "svcdns_querylog_dropped_total", (double)dropped, NULL);
	if (!metrics_out_compat(o))
		return;
	render_requests(m, o, nz, true);
	render_durations(m, o, nz, true);
	render_sizes(m, o, nz, true, false);
	render_sizes(m, o, nz, true, true);
}
