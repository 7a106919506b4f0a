/* Per-worker DNS counters and the Prometheus text exposition: workers add to
 * their own counters with relaxed atomics (one writer each), a scrape sums
 * them and runs every registered source. See metrics.h. */
#include "common/metrics.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/metrics_qlog.h"

#define MAX_WORKERS 256
#define MAX_SOURCES 32
#define Z	    METRICS_MAX_ZONES
#define T	    METRICS_N_TYPES
#define R	    METRICS_N_RCODES
#define D	    METRICS_N_DUR
#define S	    METRICS_N_SIZE

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

struct mzone {
	uint8_t wire[256]; /* lowercased */
	size_t len;
	enum metrics_zone_kind kind;
	char text[256]; /* with the trailing dot */
};

struct msource {
	char name[64];
	metrics_source_fn fn;
	void *arg;
};

struct metrics {
	struct mzone zones[Z];
	atomic_uint n_zones; /* slots below it are immutable */
	struct metrics_worker *workers[MAX_WORKERS];
	unsigned n_workers; /* control thread only */
	struct msource sources[MAX_SOURCES];
	size_t n_sources;
	atomic_bool qlog_on;
	bool compat;
	char server[96];
	double start_time; /* wall clock, seconds */
};

struct metrics_out {
	char *buf;
	size_t len, cap;
	int err;
	bool compat;
	const char *server;
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

int metrics_new(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->zones[0].wire[0] = 0;
	m->zones[0].len = 1;
	m->zones[0].kind = METRICS_ZONE_OTHER;
	snprintf(m->zones[0].text, sizeof(m->zones[0].text), ".");
	atomic_store(&m->n_zones, 1);
	snprintf(m->server, sizeof(m->server), "dns://:53");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->n_workers; i++) {
		qlog_ring_free(m->workers[i]->qlog);
		free(m->workers[i]);
	}
	free(m);
}

/* Text name to lowercased wire form; 0 or -EINVAL. */
static int zone_wire(const char *text, uint8_t *out, size_t *len)
{
	size_t o = 0, tl = strlen(text);
	if (tl && text[tl - 1] == '.')
		tl--;
	size_t i = 0;
	while (i < tl) {
		size_t start = i;
		while (i < tl && text[i] != '.')
			i++;
		size_t l = i - start;
		if (l == 0 || l > 63 || o + 1 + l + 1 > 255)
			return -EINVAL;
		out[o++] = (uint8_t)l;
		for (size_t k = 0; k < l; k++)
			out[o++] = (uint8_t)tolower((unsigned char)text[start + k]);
		i++;
	}
	out[o++] = 0;
	*len = o;
	return 0;
}

int metrics_zone_add(struct metrics *m, const char *text, enum metrics_zone_kind kind)
{
	uint8_t w[256];
	size_t len;
	if (zone_wire(text, w, &len) < 0)
		return -EINVAL;
	unsigned n = atomic_load_explicit(&m->n_zones, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++)
		if (m->zones[i].len == len && memcmp(m->zones[i].wire, w, len) == 0)
			return (int)i;
	if (n == Z)
		return -ENOSPC;
	struct mzone *z = &m->zones[n];
	memcpy(z->wire, w, len);
	z->len = len;
	z->kind = kind;
	size_t tl = strlen(text);
	snprintf(z->text, sizeof(z->text), "%s%s", text, tl && text[tl - 1] == '.' ? "" : ".");
	for (char *p = z->text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	/* Workers read slots below n_zones only: publish the slot after it is
	 * written. */
	atomic_store_explicit(&m->n_zones, n + 1, memory_order_release);
	return (int)n;
}

void metrics_set_server_label(struct metrics *m, const char *label)
{
	snprintf(m->server, sizeof(m->server), "%s", label);
}

void metrics_set_compat(struct metrics *m, bool on)
{
	m->compat = on;
}

void metrics_qlog_set(struct metrics *m, bool on)
{
	atomic_store_explicit(&m->qlog_on, on, memory_order_relaxed);
}

/* ---- workers ------------------------------------------------------------- */

struct metrics_worker *metrics_worker_new(struct metrics *m)
{
	if (m->n_workers == MAX_WORKERS)
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
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		dur = now > start_ns ? now - start_ns : 0;
	}
	count_response(w, 0, proto ? 1 : 0, t, resp[3] & 0x0F, len, dur);
}

/* ---- output -------------------------------------------------------------- */

static void out_vprintf(struct metrics_out *o, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void out_vprintf(struct metrics_out *o, const char *fmt, va_list ap)
{
	if (o->err)
		return;
	for (;;) {
		va_list cp;
		va_copy(cp, ap);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, cp);
		va_end(cp);
		if (n < 0) {
			o->err = -EINVAL;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t ncap = o->cap * 2 + (size_t)n + 1;
		char *nb = realloc(o->buf, ncap);
		if (!nb) {
			o->err = -ENOMEM;
			return;
		}
		o->buf = nb;
		o->cap = ncap;
	}
}

static void out_printf(struct metrics_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
}

static void out_escaped(struct metrics_out *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			out_printf(o, "\\\\");
		else if (*s == '"')
			out_printf(o, "\\\"");
		else if (*s == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *s);
	}
}

static void out_value(struct metrics_out *o, double v)
{
	if (isnan(v))
		out_printf(o, "NaN");
	else if (isinf(v))
		out_printf(o, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		out_printf(o, "%.0f", v);
	else
		out_printf(o, "%.15g", v);
}

void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{k="v",...,extra} with the pairs from ap, then `extra` (preformatted,
 * may be NULL). */
static void out_series(struct metrics_out *o, const char *name, const char *suffix, va_list ap,
		       const char *extra)
{
	out_printf(o, "%s%s", name, suffix);
	bool any = false;
	va_list cp;
	va_copy(cp, ap);
	for (const char *k = va_arg(cp, const char *); k; k = va_arg(cp, const char *)) {
		const char *v = va_arg(cp, const char *);
		out_printf(o, "%s%s=\"", any ? "," : "{", k);
		out_escaped(o, v ? v : "");
		out_printf(o, "\"");
		any = true;
	}
	va_end(cp);
	if (extra) {
		out_printf(o, "%s%s", any ? "," : "{", extra);
		any = true;
	}
	if (any)
		out_printf(o, "}");
}

static void metrics_sample_v(struct metrics_out *o, const char *name, double v, va_list labels)
{
	out_series(o, name, "", labels, NULL);
	out_printf(o, " ");
	out_value(o, v);
	out_printf(o, "\n");
}

void metrics_sample(struct metrics_out *o, const char *name, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	metrics_sample_v(o, name, v, ap);
	va_end(ap);
}

static void histogram_v(struct metrics_out *o, const char *name, const double *bounds, size_t n,
			const uint64_t *counts, double sum, va_list ap)
{
	uint64_t cum = 0;
	char le[64];
	for (size_t i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "le=\"%.9g\"", bounds[i]);
		else
			snprintf(le, sizeof(le), "le=\"+Inf\"");
		out_series(o, name, "_bucket", ap, le);
		out_printf(o, " %llu\n", (unsigned long long)cum);
	}
	out_series(o, name, "_sum", ap, NULL);
	out_printf(o, " ");
	out_value(o, sum);
	out_printf(o, "\n");
	out_series(o, name, "_count", ap, NULL);
	out_printf(o, " %llu\n", (unsigned long long)cum);
}

void metrics_histogram(struct metrics_out *o, const char *name, const double *bounds, size_t n,
		       const uint64_t *counts, double sum, ...)
{
	va_list ap;
	va_start(ap, sum);
	histogram_v(o, name, bounds, n, counts, sum, ap);
	va_end(ap);
}

bool metrics_out_compat(const struct metrics_out *o)
{
	return o->compat;
}

const char *metrics_out_server(const struct metrics_out *o)
{
	return o->server;
}

int metrics_register_source(struct metrics *m, const char *name, metrics_source_fn fn, void *arg)
{
	for (size_t i = 0; i < m->n_sources; i++)
		if (strcmp(m->sources[i].name, name) == 0) {
			m->sources[i].fn = fn;
			m->sources[i].arg = arg;
			return 0;
		}
	if (m->n_sources == MAX_SOURCES)
		return -ENOSPC;
	struct msource *s = &m->sources[m->n_sources++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fn = fn;
	s->arg = arg;
	return 0;
}

void metrics_unregister_source(struct metrics *m, const char *name)
{
	for (size_t i = 0; i < m->n_sources; i++)
		if (strcmp(m->sources[i].name, name) == 0) {
			m->sources[i] = m->sources[--m->n_sources];
			return;
		}
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
	if (!o->compat)
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

static void render_dns(struct metrics *m, struct metrics_out *o)
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
	if (!o->compat)
		return;
	render_requests(m, o, nz, true);
	render_durations(m, o, nz, true);
	render_sizes(m, o, nz, true, false);
	render_sizes(m, o, nz, true, true);
}

/* Process facts, under the names Prometheus client libraries use. */
static void render_process(struct metrics *m, struct metrics_out *o)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		metrics_family(o, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in seconds.");
		metrics_sample(o, "process_cpu_seconds_total", cpu, NULL);
	}
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		unsigned long vsz, rss;
		if (fscanf(f, "%lu %lu", &vsz, &rss) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			metrics_family(o, "process_resident_memory_bytes", "gauge",
				       "Resident memory size in bytes.");
			metrics_sample(o, "process_resident_memory_bytes", (double)rss * page,
				       NULL);
			metrics_family(o, "process_virtual_memory_bytes", "gauge",
				       "Virtual memory size in bytes.");
			metrics_sample(o, "process_virtual_memory_bytes", (double)vsz * page, NULL);
		}
		fclose(f);
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		unsigned long n = 0;
		while (readdir(d))
			n++;
		closedir(d);
		metrics_family(o, "process_open_fds", "gauge", "Number of open file descriptors.");
		metrics_sample(o, "process_open_fds", (double)(n > 3 ? n - 3 : 0), NULL);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		metrics_family(o, "process_max_fds", "gauge",
			       "Maximum number of open file descriptors.");
		metrics_sample(o, "process_max_fds", (double)rl.rlim_cur, NULL);
	}
	metrics_family(o, "process_start_time_seconds", "gauge",
		       "Start time of the process since unix epoch in seconds.");
	metrics_sample(o, "process_start_time_seconds", m->start_time, NULL);
	metrics_family(o, "svcdns_build_info", "gauge",
		       "Always 1; the version svcdns was built from is a label.");
	metrics_sample(o, "svcdns_build_info", 1, "version", SVCDNS_VERSION, NULL);
	if (o->compat) {
		metrics_family(o, "coredns_build_info", "gauge",
			       "A metric with a constant '1' value labeled by version, revision, "
			       "and goversion from which CoreDNS was built.");
		metrics_sample(o, "coredns_build_info", 1, "version", SVCDNS_VERSION, "revision",
			       "svcdns", "goversion", "none", NULL);
		metrics_family(o, "coredns_panics_total", "counter",
			       "A metrics that counts the number of panics.");
		metrics_sample(o, "coredns_panics_total", 0, NULL);
	}
}

int metrics_render(struct metrics *m, char **body, size_t *len)
{
	struct metrics_out o = {.compat = m->compat, .server = m->server};
	o.cap = 64 << 10;
	o.buf = malloc(o.cap);
	if (!o.buf)
		return -ENOMEM;
	o.buf[0] = '\0';
	render_process(m, &o);
	render_dns(m, &o);
	for (size_t i = 0; i < m->n_sources; i++)
		m->sources[i].fn(&o, m->sources[i].arg);
	if (o.err) {
		free(o.buf);
		return o.err;
	}
	*body = o.buf;
	*len = o.len;
	return 0;
}

/* ---- the query log --------------------------------------------------------- */

size_t metrics_qlog_drain(struct metrics *m)
{
	size_t n = 0;
	for (unsigned i = 0; i < m->n_workers; i++)
		n += qlog_ring_drain(m->workers[i]->qlog, QLOG_RING_SIZE);
	return n;
}
