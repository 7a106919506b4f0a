/* The query log: workers copy a fixed-size entry per query into their own
 * ring; the control thread turns entries into log lines. See metrics_qlog.h. */
#include "common/metrics_qlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* What a worker copies: everything the line needs, nothing it points to. */
struct qlog_entry {
	uint8_t family; /* 0: unknown peer */
	uint8_t addr[16];
	uint16_t port;
	uint16_t id;
	uint16_t qtype, qclass;
	uint8_t name_len; /* 0: no question read */
	uint8_t tcp, dnssec_ok, answered;
	uint8_t rcode, rflags, rflags2;
	uint16_t bufsize;
	uint32_t req_len, resp_len;
	uint64_t dur_ns;
	uint8_t name[255];
};

struct qlog_ring {
	/* The producer owns head, the consumer tail; each is written by one
	 * thread only and published with release, read with acquire. */
	_Alignas(64) atomic_size_t head;
	_Alignas(64) atomic_size_t tail;
	_Alignas(64) atomic_uint_fast64_t dropped;
	struct qlog_entry e[QLOG_RING_SIZE];
};

struct qlog_ring *qlog_ring_new(void)
{
	return calloc(1, sizeof(struct qlog_ring));
}

void qlog_ring_free(struct qlog_ring *r)
{
	free(r);
}

static void entry_fill(struct qlog_entry *d, const struct qlog_entry_in *e)
{
	d->family = 0;
	d->port = 0;
	if (e->peer && e->peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)e->peer;
		d->family = AF_INET;
		memcpy(d->addr, &a->sin_addr, 4);
		d->port = ntohs(a->sin_port);
	} else if (e->peer && e->peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)e->peer;
		d->family = AF_INET6;
		memcpy(d->addr, &a->sin6_addr, 16);
		d->port = ntohs(a->sin6_port);
	}
	d->id = e->req_len >= 2 ? (uint16_t)(e->req[0] << 8 | e->req[1]) : 0;
	d->name_len = 0;
	d->qtype = d->qclass = 0;
	/* The question was read and bounds-checked by dns_answer: its name is
	 * plain labels (no compression) ending at qend - 4. */
	if (e->qend > 12 + 4 && e->qend <= e->req_len &&
	    (size_t)e->qend - 12 - 4 <= sizeof(d->name)) {
		size_t nl = (size_t)e->qend - 12 - 4;
		memcpy(d->name, e->req + 12, nl);
		d->name_len = (uint8_t)nl;
		const uint8_t *t = e->req + e->qend - 4;
		d->qtype = (uint16_t)(t[0] << 8 | t[1]);
		d->qclass = (uint16_t)(t[2] << 8 | t[3]);
	}
	d->tcp = e->tcp;
	d->dnssec_ok = e->dnssec_ok;
	d->answered = e->answered;
	d->rcode = e->rcode;
	d->rflags = e->rflags;
	d->rflags2 = e->rflags2;
	d->bufsize = e->bufsize;
	d->req_len = (uint32_t)e->req_len;
	d->resp_len = e->resp_len;
	d->dur_ns = e->dur_ns;
}

void qlog_ring_push(struct qlog_ring *r, const struct qlog_entry_in *e)
{
	size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (head - tail >= QLOG_RING_SIZE) {
		atomic_store_explicit(&r->dropped,
				      atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		return;
	}
	entry_fill(&r->e[head % QLOG_RING_SIZE], e);
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

uint64_t qlog_ring_dropped(const struct qlog_ring *r)
{
	return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

static const char *type_text(uint16_t t, char *buf, size_t cap)
{
	static const struct {
		uint16_t t;
		const char *n;
	} names[] = {{1, "A"},	     {2, "NS"},	    {5, "CNAME"}, {6, "SOA"},	 {12, "PTR"},
		     {15, "MX"},     {16, "TXT"},   {28, "AAAA"}, {33, "SRV"},	 {35, "NAPTR"},
		     {39, "DNAME"},  {41, "OPT"},   {43, "DS"},	  {46, "RRSIG"}, {47, "NSEC"},
		     {48, "DNSKEY"}, {50, "NSEC3"}, {64, "SVCB"}, {65, "HTTPS"}, {99, "SPF"},
		     {251, "IXFR"},  {252, "AXFR"}, {255, "ANY"}, {257, "CAA"}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].t == t)
			return names[i].n;
	snprintf(buf, cap, "TYPE%u", (unsigned)t);
	return buf;
}

static const char *class_text(uint16_t c, char *buf, size_t cap)
{
	if (c == 1)
		return "IN";
	if (c == 3)
		return "CH";
	if (c == 4)
		return "HS";
	if (c == 255)
		return "ANY";
	snprintf(buf, cap, "CLASS%u", (unsigned)c);
	return buf;
}

static const char *rcode_text(unsigned rc, char *buf, size_t cap)
{
	static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
					    "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
					    "NXRRSET", "NOTAUTH", "NOTZONE"};
	if (rc < sizeof(names) / sizeof(names[0]))
		return names[rc];
	if (rc == 16)
		return "BADVERS";
	snprintf(buf, cap, "RCODE%u", rc);
	return buf;
}

/* The name as text: printable bytes as they are, the rest and the label
 * separators escaped as in master files, so a hostile name stays one token. */
static size_t name_text(const uint8_t *n, size_t len, char *out, size_t cap)
{
	size_t o = 0, i = 0;
	if (len == 0 || cap < 8)
		return (size_t)snprintf(out, cap, "-");
	while (i < len && n[i] != 0 && o + 6 < cap) {
		size_t l = n[i++];
		for (size_t k = 0; k < l && i < len && o + 6 < cap; k++, i++) {
			uint8_t c = n[i];
			if (c == '.' || c == '\\' || c == '"')
				o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
			else if (c <= 0x20 || c >= 0x7f)
				o += (size_t)snprintf(out + o, cap - o, "\\%03u", c);
			else
				out[o++] = (char)c;
		}
		out[o++] = '.';
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return o;
}

static size_t entry_format(const struct qlog_entry *e, char *buf, size_t cap)
{
	char addr[INET6_ADDRSTRLEN + 2] = "-", name[4 * 255 + 8], tb[16], cb[16], rb[16];
	char flags[32] = "";
	if (e->family == AF_INET) {
		inet_ntop(AF_INET, e->addr, addr, sizeof(addr));
	} else if (e->family == AF_INET6) {
		addr[0] = '[';
		inet_ntop(AF_INET6, e->addr, addr + 1, sizeof(addr) - 2);
		strcat(addr, "]");
	}
	name_text(e->name, e->name_len, name, sizeof(name));
	if (e->answered) {
		static const struct {
			uint8_t byte, bit;
			const char *n;
		} fl[] = {{2, 0x80, "qr"}, {2, 0x04, "aa"}, {2, 0x02, "tc"}, {2, 0x01, "rd"},
			  {3, 0x80, "ra"}, {3, 0x20, "ad"}, {3, 0x10, "cd"}};
		size_t o = 0;
		for (size_t i = 0; i < sizeof(fl) / sizeof(fl[0]); i++)
			if ((fl[i].byte == 2 ? e->rflags : e->rflags2) & fl[i].bit)
				o += (size_t)snprintf(flags + o, sizeof(flags) - o, "%s%s",
						      o ? "," : "", fl[i].n);
		if (!o)
			snprintf(flags, sizeof(flags), "-");
	}
	/* CoreDNS's common log format:
	 * {remote}:{port} - {id} "{type} {class} {name} {proto} {size} {do} {bufsize}"
	 * {rcode} {rflags} {rsize} {duration} */
	int n;
	if (e->answered)
		n = snprintf(buf, cap, "%s:%u - %u \"%s %s %s %s %u %s %u\" %s %s %u %.6fs", addr,
			     e->port, e->id, type_text(e->qtype, tb, sizeof(tb)),
			     class_text(e->qclass, cb, sizeof(cb)), name, e->tcp ? "tcp" : "udp",
			     e->req_len, e->dnssec_ok ? "true" : "false", e->bufsize,
			     rcode_text(e->rcode, rb, sizeof(rb)), flags, e->resp_len,
			     (double)e->dur_ns / 1e9);
	else
		n = snprintf(buf, cap, "%s:%u - %u \"%s %s %s %s %u %s %u\" FORWARDED - 0 -", addr,
			     e->port, e->id, type_text(e->qtype, tb, sizeof(tb)),
			     class_text(e->qclass, cb, sizeof(cb)), name, e->tcp ? "tcp" : "udp",
			     e->req_len, e->dnssec_ok ? "true" : "false", e->bufsize);
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t qlog_format(const struct qlog_entry_in *e, char *buf, size_t cap)
{
	struct qlog_entry d;
	entry_fill(&d, e);
	return entry_format(&d, buf, cap);
}

size_t qlog_ring_drain(struct qlog_ring *r, size_t max)
{
	size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	size_t n = 0;
	char line[1400];
	while (tail != head && n < max) {
		entry_format(&r->e[tail % QLOG_RING_SIZE], line, sizeof(line));
		/* The entry's slot is free for the worker once tail moves past it. */
		tail++;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
		log_info("query %s", line);
		n++;
	}
	return n;
}
