/* Zone transfers: the records of one zone, regenerated from the snapshot's
 * view (the cluster zones) or its static zone, packed into messages. */
#include "zones/xfr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "zones/builder.h"
#include "zones/cluster.h"
#include "wire/dname.h"
#include "wire/wire.h"
#include "zones/zonefile.h"

/* ---- journal ------------------------------------------------------------- */

#define JOURNAL_MAX_DEPTH 128

struct xfr_rr {
	uint8_t *owner;
	uint8_t *rdata;
	uint32_t ttl;
	uint16_t type;
	uint16_t rdlen;
};

struct xfr_rrs {
	struct xfr_rr *v;
	size_t n, cap;
};

struct xfr_diff {
	uint32_t from, to;
	struct xfr_rrs del, add;
	struct xfr_diff *prev;
	unsigned refs;
	unsigned depth;
};

struct xfr_diff *xfr_diff_new(uint32_t from, uint32_t to, struct xfr_diff *prev)
{
	struct xfr_diff *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->from = from;
	d->to = to;
	d->refs = 1;
	/* A bounded chain: secondaries further behind get the whole zone. */
	if (prev && prev->depth + 1 < JOURNAL_MAX_DEPTH) {
		prev->refs++;
		d->prev = prev;
		d->depth = prev->depth + 1;
	}
	return d;
}

static void rrs_clear(struct xfr_rrs *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].owner);
		free(r->v[i].rdata);
	}
	free(r->v);
}

void xfr_diff_release(struct xfr_diff *d)
{
	while (d && --d->refs == 0) {
		struct xfr_diff *prev = d->prev;
		rrs_clear(&d->del);
		rrs_clear(&d->add);
		free(d);
		d = prev;
	}
}

static int rrs_push(void *arg, const uint8_t *owner, uint16_t type, uint32_t ttl,
		    const uint8_t *rdata, uint16_t rdlen)
{
	struct xfr_rrs *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct xfr_rr *nv = realloc(r->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = cap;
	}
	size_t ol = dname_len(owner);
	struct xfr_rr *e = &r->v[r->n];
	e->owner = malloc(ol);
	e->rdata = malloc(rdlen ? rdlen : 1);
	if (!e->owner || !e->rdata) {
		free(e->owner);
		free(e->rdata);
		return -ENOMEM;
	}
	memcpy(e->owner, owner, ol);
	memcpy(e->rdata, rdata, rdlen);
	e->type = type;
	e->ttl = ttl;
	e->rdlen = rdlen;
	r->n++;
	return 0;
}

int xfr_diff_collect(struct xfr_diff *d, struct zb *scratch, bool added)
{
	return zb_data_rrs(scratch, rrs_push, added ? &d->add : &d->del);
}

struct packer {
	uint8_t *buf; /* TCP-framed messages */
	size_t len, cap;
	size_t msg;	/* offset of the current message's length prefix */
	uint16_t count; /* answer records in the current message */
	const uint8_t *req;
	size_t qend;
	bool first;
	int err;
	size_t records;
};

static int grow(struct packer *p, size_t need)
{
	if (p->len + need <= p->cap)
		return 0;
	size_t cap = p->cap ? p->cap * 2 : 65536;
	while (cap < p->len + need)
		cap *= 2;
	uint8_t *nb = realloc(p->buf, cap);
	if (!nb)
		return -ENOMEM;
	p->buf = nb;
	p->cap = cap;
	return 0;
}

static void msg_close(struct packer *p)
{
	if (p->msg == (size_t)-1)
		return;
	wire_wr16(p->buf + p->msg, (uint16_t)(p->len - p->msg - 2));
	wire_hdr_set_count(p->buf + p->msg + 2, WIRE_AN, p->count);
	p->msg = (size_t)-1;
}

static int msg_open(struct packer *p)
{
	/* The first message echoes the question; later ones carry none, as
	 * RFC 5936 section 2.2.1 allows. */
	size_t qlen = p->first ? p->qend - WIRE_HDR_LEN : 0;
	if (grow(p, 2 + WIRE_HDR_LEN + qlen) < 0)
		return -ENOMEM;
	p->msg = p->len;
	uint8_t *h = p->buf + p->len + 2;
	memset(h, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(h, wire_hdr_id(p->req));
	wire_hdr_set(h, WIRE_QR, true);
	wire_hdr_set(h, WIRE_AA, true);
	wire_hdr_set(h, WIRE_RD, wire_hdr_has(p->req, WIRE_RD));
	wire_hdr_set_count(h, WIRE_QD, p->first ? 1 : 0);
	memcpy(h + WIRE_HDR_LEN, p->req + WIRE_HDR_LEN, qlen);
	p->len += 2 + WIRE_HDR_LEN + qlen;
	p->count = 0;
	p->first = false;
	return 0;
}

static int add_rr(void *arg, const uint8_t *owner, uint16_t type, uint32_t ttl,
		  const uint8_t *rdata, uint16_t rdlen)
{
	struct packer *p = arg;
	size_t olen = dname_len(owner);
	size_t rr = olen + 10 + rdlen;
	if (p->msg != (size_t)-1 && p->len - p->msg - 2 + rr > XFR_MSG_MAX)
		msg_close(p);
	if (p->msg == (size_t)-1 && msg_open(p) < 0)
		return -ENOMEM;
	if (grow(p, rr) < 0)
		return -ENOMEM;
	uint8_t *o = p->buf + p->len;
	memcpy(o, owner, olen);
	o += olen;
	wire_wr16(o, type);
	wire_wr16(o + 2, DNS_C_IN);
	wire_wr32(o + 4, ttl);
	wire_wr16(o + 8, rdlen);
	memcpy(o + 10, rdata, rdlen);
	p->len += rr;
	p->count++;
	p->records++;
	return 0;
}

/* The client's serial from the SOA in an IXFR's authority section. */
static int ixfr_serial(const uint8_t *req, size_t len, size_t qend, uint32_t *serial)
{
	if (wire_hdr_count(req, WIRE_NS) == 0)
		return -EBADMSG;
	int o = dname_skip(req, len, qend);
	if (o < 0 || (size_t)o + 10 > len)
		return -EBADMSG;
	uint16_t type = wire_rd16(req + o);
	uint16_t rdlen = wire_rd16(req + o + 8);
	size_t rd = (size_t)o + 10;
	if (type != DNS_T_SOA || rd + rdlen > len)
		return -EBADMSG;
	int m = dname_skip(req, rd + rdlen, rd);
	if (m < 0)
		return -EBADMSG;
	int r = dname_skip(req, rd + rdlen, (size_t)m);
	if (r < 0 || (size_t)r + 4 > rd + rdlen)
		return -EBADMSG;
	*serial = wire_rd32(req + r);
	return 0;
}

static uint32_t soa_serial_of(const uint8_t *rdata)
{
	size_t l1 = dname_len(rdata);
	size_t l2 = dname_len(rdata + l1);
	return wire_rd32(rdata + l1 + l2);
}

/* Keeps the SOA aside so that it can close the transfer, and remembers its
 * serial for IXFR. */
struct soa_keep {
	struct packer *p;
	uint8_t owner[DNAME_MAX];
	uint8_t rdata[2 * DNAME_MAX + 20];
	uint16_t rdlen;
	uint32_t ttl;
	bool have;
};

static int add_rr_keep_soa(void *arg, const uint8_t *owner, uint16_t type, uint32_t ttl,
			   const uint8_t *rdata, uint16_t rdlen)
{
	struct soa_keep *k = arg;
	if (type == DNS_T_SOA && !k->have && rdlen <= sizeof(k->rdata)) {
		memcpy(k->owner, owner, dname_len(owner));
		memcpy(k->rdata, rdata, rdlen);
		k->rdlen = rdlen;
		k->ttl = ttl;
		k->have = true;
	}
	return add_rr(k->p, owner, type, ttl, rdata, rdlen);
}

/* Learns the zone's SOA and stops. */
static int soa_only(void *arg, const uint8_t *owner, uint16_t type, uint32_t ttl,
		    const uint8_t *rdata, uint16_t rdlen)
{
	struct soa_keep *k = arg;
	if (type == DNS_T_SOA && rdlen <= sizeof(k->rdata)) {
		memcpy(k->owner, owner, dname_len(owner));
		memcpy(k->rdata, rdata, rdlen);
		k->rdlen = rdlen;
		k->ttl = ttl;
		k->have = true;
	}
	return -ECANCELED;
}

/* The SOA with another serial: the journal's versions of the zone. */
static int add_soa_serial(struct packer *p, const struct soa_keep *k, uint32_t serial)
{
	uint8_t rd[sizeof(k->rdata)];
	memcpy(rd, k->rdata, k->rdlen);
	size_t l1 = dname_len(rd);
	size_t l2 = dname_len(rd + l1);
	wire_wr32(rd + l1 + l2, serial);
	return add_rr(p, k->owner, DNS_T_SOA, k->ttl, rd, k->rdlen);
}

static int add_diff_part(struct packer *p, const struct xfr_rrs *r, const uint8_t *apex)
{
	size_t al = dname_len(apex);
	for (size_t i = 0; i < r->n; i++) {
		const struct xfr_rr *e = &r->v[i];
		size_t ol = dname_len(e->owner);
		/* only this zone's records: the reverse zones have their own */
		if (ol < al || memcmp(e->owner + ol - al, apex, al) != 0)
			continue;
		int ret = add_rr(p, e->owner, e->type, e->ttl, e->rdata, e->rdlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* RFC 1995 section 4: the new SOA, then for each version in turn its old
 * SOA, the records deleted, its new SOA, the records added; the new SOA
 * last. False when the journal does not reach back to `theirs`. */
static bool ixfr_from_journal(struct packer *p, const struct xfr_diff *head, uint32_t theirs,
			      const uint8_t *apex, const struct soa_keep *k)
{
	const struct xfr_diff *chain[JOURNAL_MAX_DEPTH + 1];
	size_t n = 0;
	for (const struct xfr_diff *d = head; d && n <= JOURNAL_MAX_DEPTH; d = d->prev) {
		chain[n++] = d;
		if (d->from == theirs)
			break;
	}
	if (!n || chain[n - 1]->from != theirs)
		return false;
	/* a name under the apex's label boundary check is enough here: the
	 * cluster zone's apex is never a suffix of another zone's name */
	if (add_rr(p, k->owner, DNS_T_SOA, k->ttl, k->rdata, k->rdlen) < 0)
		return false;
	for (size_t i = n; i-- > 0;) {
		const struct xfr_diff *d = chain[i];
		if (add_soa_serial(p, k, d->from) < 0 || add_diff_part(p, &d->del, apex) < 0 ||
		    add_soa_serial(p, k, d->to) < 0 || add_diff_part(p, &d->add, apex) < 0)
			return false;
	}
	return add_rr(p, k->owner, DNS_T_SOA, k->ttl, k->rdata, k->rdlen) == 0;
}

size_t xfr_dynamic_zones(const struct snapshot_config *cfg, uint8_t names[][255], size_t max)
{
	static const char *const rev[] = {"in-addr.arpa", "ip6.arpa"};
	size_t n = 0;
	if (n < max && dname_from_text(cfg->zone, names[n], 255) > 0)
		n++;
	for (size_t i = 0; i < 2 && n < max; i++)
		if (dname_from_text(rev[i], names[n], 255) > 0)
			n++;
	return n;
}

int xfr_answer(const struct snapshot *s, const uint8_t *req, size_t len, size_t qend, uint8_t **out,
	       size_t *out_len)
{
	uint8_t apex[DNAME_MAX];
	struct packer p = {.msg = (size_t)-1, .req = req, .qend = qend, .first = true};
	struct soa_keep keep = {.p = &p};
	struct arena *a = NULL;
	struct zb *b = NULL;
	int ret = -ENOENT;

	if (!s->cfg || !s->view || dname_read_question(req, len, WIRE_HDR_LEN, apex) < 0)
		return -ENOENT;
	uint16_t qtype = wire_rd16(req + qend - 4);

	/* The records are regenerated from the data the snapshot was built from:
	 * the snapshot itself holds rendered answers, not records. */
	ret = -ENOMEM;
	if (!(a = arena_new()) || !(b = zb_new(a)))
		goto out;
	if ((ret = cluster_records(b, s->cfg, s->view, s->serial, s->withheld, s->n_withheld)) < 0)
		goto out;
	for (size_t i = 0; i < s->cfg->n_static_zones; i++)
		if ((ret = zonefile_records(b, s->cfg->static_zones[i])) < 0)
			goto out;

	/* RFC 1995: a client already at our serial gets our SOA alone. No journal
	 * of changes is kept, so any other client gets the whole zone, in AXFR
	 * form, which section 4 allows. */
	if (qtype == DNS_T_IXFR) {
		uint32_t theirs;
		if (ixfr_serial(req, len, qend, &theirs) < 0) {
			ret = -EBADMSG;
			goto out;
		}
		ret = zb_zone_rrs(b, apex, soa_only, &keep);
		if (ret != -ECANCELED || !keep.have) {
			ret = -ENOENT;
			goto out;
		}
		uint32_t ours = soa_serial_of(keep.rdata);
		if (theirs == ours || (int32_t)(theirs - ours) > 0) {
			ret = add_rr(&p, keep.owner, DNS_T_SOA, keep.ttl, keep.rdata, keep.rdlen);
			goto done;
		}
		/* The changes since their serial, if the journal reaches back. */
		if (ours == s->serial && ixfr_from_journal(&p, s->journal, theirs, apex, &keep)) {
			ret = 0;
			goto done;
		}
		free(p.buf);
		p = (struct packer){.msg = (size_t)-1, .req = req, .qend = qend, .first = true};
		keep.have = false;
	}
	if ((ret = zb_zone_rrs(b, apex, add_rr_keep_soa, &keep)) < 0 || !keep.have) {
		if (ret == 0)
			ret = -ENOENT;
		goto out;
	}
	ret = add_rr(&p, keep.owner, DNS_T_SOA, keep.ttl, keep.rdata, keep.rdlen);
done:
	if (ret < 0)
		goto out;
	msg_close(&p);
	log_info("zone transfer: %zu records, serial %u", p.records, soa_serial_of(keep.rdata));
	*out = p.buf;
	*out_len = p.len;
	p.buf = NULL;
	ret = 0;
out:
	free(p.buf);
	zb_free(b);
	arena_free(a);
	return ret;
}
