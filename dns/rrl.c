/* Token buckets per response flow, in one fixed table per worker; the
 * arithmetic is in thousandths of a response so that a bucket refills by
 * `rate` every millisecond without division. See rrl.h. */
#include "dns/rrl.h"

#include "wire/wire.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/shash.h"
#include "dns/limits.h"
#include "wire/dname.h"

#define PROBES 4
#define MILLI  1000 /* one response, in bucket units */

struct bucket {
	uint64_t key;	/* 0: empty */
	uint32_t stamp; /* ms of the last refill (wraps; only differences count) */
	int32_t tokens; /* thousandths of a response */
	uint32_t drops; /* since the bucket was made, for the slip cadence */
};

struct rrl {
	uint32_t rate;
	uint32_t slip;
	int32_t cap; /* rate * MILLI: one second of burst */
	size_t mask;
	struct bucket b[];
};

int rrl_new(unsigned rate, unsigned slip, size_t buckets, struct rrl **out)
{
	if (rate == 0 || rate > LIMITS_RRL_MAX || buckets == 0 || (buckets & (buckets - 1)))
		return -EINVAL;
	int ret = shash_init();
	if (ret < 0)
		return ret;
	struct rrl *r = calloc(1, sizeof(*r) + buckets * sizeof(struct bucket));
	if (!r)
		return -ENOMEM;
	r->rate = rate;
	r->slip = slip;
	r->cap = (int32_t)(rate * MILLI);
	r->mask = buckets - 1;
	*out = r;
	return 0;
}

void rrl_free(struct rrl *r)
{
	free(r);
}

enum rrl_kind rrl_classify(const uint8_t *resp, size_t len)
{
	if (len < WIRE_HDR_LEN)
		return RRL_ERROR;
	switch (wire_hdr_rcode(resp)) {
	case DNS_RCODE_NOERROR:
		return wire_hdr_count(resp, WIRE_AN) ? RRL_ANSWER : RRL_NODATA;
	case DNS_RCODE_NXDOMAIN:
		return RRL_NXDOMAIN;
	default:
		return RRL_ERROR;
	}
}

/* The end of the question of a response we wrote (the name as the client
 * sent it: labels, no compression), or 0 when there is none to read. */
static size_t question_end(const uint8_t *resp, size_t len)
{
	if (len < WIRE_HDR_LEN || wire_hdr_count(resp, WIRE_QD) != 1)
		return 0;
	size_t off = WIRE_HDR_LEN;
	for (;;) {
		if (off >= len || resp[off] > 63)
			return 0;
		uint8_t l = resp[off];
		off += 1u + l;
		if (l == 0)
			break;
	}
	return off + 4 <= len ? off + 4 : 0;
}

/* The flow of a response: network, kind, and the name (lowercased) and type
 * for the kinds counted per name, hashed with the process's key (0 marks an
 * empty bucket, so it is never a key). Returns false for a peer of no family
 * we limit. */
static bool flow_key(const struct sockaddr *peer, const uint8_t *resp, size_t len, uint64_t *key)
{
	uint64_t net;
	enum rrl_kind kind = rrl_classify(resp, len);
	if (peer->sa_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
		net = 4u << 24 | (uint64_t)a[0] << 16 | (uint64_t)a[1] << 8 | a[2];
	} else if (peer->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		net = 6;
		for (int i = 0; i < 7; i++)
			net = net << 8 | a[i];
	} else {
		return false;
	}
	/* kind and type, then the name: a valid name (we answered it) fits. */
	uint8_t buf[8 + DNAME_MAX];
	size_t n = 8;
	size_t qend = question_end(resp, len);
	uint64_t kt = (uint64_t)kind << 16;
	if ((kind == RRL_ANSWER || kind == RRL_NODATA) && qend && qend - 4 - 12 <= DNAME_MAX) {
		if (kind == RRL_ANSWER)
			kt |= wire_rd16(resp + qend - 4);
		for (size_t i = 12; i < qend - 4; i++) {
			uint8_t c = resp[i];
			buf[n++] = c >= 'A' && c <= 'Z' ? c | 0x20 : c;
		}
	}
	memcpy(buf, &kt, 8);
	uint64_t h = shash_bytes(net, buf, n);
	*key = h ? h : 1;
	return true;
}

/* The bucket of `key`: its own if it is in the table, else the emptiest
 * candidate (empty, or idle for a second, which is as good as full), else the
 * one refilled longest ago. */
static struct bucket *bucket_of(struct rrl *r, uint64_t key, uint32_t now, bool *fresh)
{
	struct bucket *victim = NULL;
	uint32_t victim_age = 0;
	for (size_t p = 0; p < PROBES; p++) {
		struct bucket *b = &r->b[(key + p) & r->mask];
		if (b->key == key) {
			*fresh = false;
			return b;
		}
		uint32_t age = b->key ? now - b->stamp : UINT32_MAX;
		if (!victim || age > victim_age) {
			victim = b;
			victim_age = age;
		}
	}
	*fresh = true;
	return victim;
}

enum rrl_verdict rrl_check(struct rrl *r, const struct sockaddr *peer, const uint8_t *resp,
			   size_t len, uint64_t now_ms)
{
	uint64_t key;
	if (!r || len < WIRE_HDR_LEN || !wire_hdr_has(resp, WIRE_QR) ||
	    !flow_key(peer, resp, len, &key))
		return RRL_PASS;
	uint32_t now = (uint32_t)now_ms;
	bool fresh;
	struct bucket *b = bucket_of(r, key, now, &fresh);
	if (fresh) {
		*b = (struct bucket){.key = key, .stamp = now, .tokens = r->cap};
	} else {
		uint32_t elapsed = now - b->stamp;
		/* a second refills any bucket; beyond that the product could
		 * overflow, and a clock that went back counts as no time */
		if (elapsed >= 1000 && elapsed < UINT32_MAX / 2) {
			b->tokens = r->cap;
		} else if (elapsed < 1000) {
			int64_t t = (int64_t)b->tokens + (int64_t)elapsed * r->rate;
			b->tokens = t > r->cap ? r->cap : (int32_t)t;
		}
		b->stamp = now;
	}
	if (b->tokens >= MILLI) {
		b->tokens -= MILLI;
		return RRL_PASS;
	}
	b->drops++;
	if (r->slip && b->drops % r->slip == 0)
		return RRL_SLIP;
	return RRL_DROP;
}

size_t rrl_slip(uint8_t *resp, size_t len)
{
	if (len < WIRE_HDR_LEN)
		return len;
	size_t qend = question_end(resp, len);
	wire_hdr_set(resp, WIRE_TC, true);
	wire_hdr_set_count(resp, WIRE_QD, qend ? 1 : 0);
	wire_hdr_set_count(resp, WIRE_AN, 0);
	wire_hdr_set_count(resp, WIRE_NS, 0);
	wire_hdr_set_count(resp, WIRE_AR, 0);
	return qend ? qend : WIRE_HDR_LEN;
}
