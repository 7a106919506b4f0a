/* Freshness on the query path: the Stale Answer EDE and generation.<zone>,
 * written from a few atomics the control thread keeps. See
 * lifecycle_freshness.h. */
#include "dns/lifecycle_freshness.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "wire/dname.h"
#include "wire/wire.h"

#define GEN_LABEL                                                                                  \
	"\x0a"                                                                                     \
	"generation"

static uint8_t g_key[DNAME_MAX + 1]; /* generation.<zone>, set before workers start */
static size_t g_keylen;
static _Atomic uint64_t g_heard_ns;
static atomic_bool g_stale;
static atomic_bool g_hold;
static _Atomic uint64_t g_held;

int freshness_set_zone(const char *zone)
{
	uint8_t z[DNAME_MAX];
	int zl = dname_from_text(zone, z, sizeof(z));
	if (zl < 0 || (size_t)zl + 11 > DNAME_MAX)
		return -EINVAL;
	memcpy(g_key, GEN_LABEL, 11);
	memcpy(g_key + 11, z, (size_t)zl);
	g_keylen = 11 + (size_t)zl;
	return 0;
}

void freshness_set_heard(uint64_t heard_ns, bool stale)
{
	atomic_store_explicit(&g_heard_ns, heard_ns, memory_order_relaxed);
	atomic_store_explicit(&g_stale, stale, memory_order_relaxed);
}

void freshness_set_startup_hold(bool hold)
{
	atomic_store_explicit(&g_hold, hold, memory_order_relaxed);
}

bool freshness_startup_hold(void)
{
	if (!atomic_load_explicit(&g_hold, memory_order_relaxed))
		return false;
	atomic_fetch_add_explicit(&g_held, 1, memory_order_relaxed);
	return true;
}

uint64_t freshness_startup_held(void)
{
	return atomic_load_explicit(&g_held, memory_order_relaxed);
}

/* Decimal digits of v at p; returns how many. No printf on the query path. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* Seconds with one decimal ("3.2s") from nanoseconds. */
static size_t put_secs(char *p, uint64_t ns)
{
	uint64_t tenths = ns / 100000000u;
	size_t n = put_u64(p, tenths / 10);
	p[n++] = '.';
	p[n++] = (char)('0' + tenths % 10);
	p[n++] = 's';
	return n;
}

static size_t put_str(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return n;
}

size_t freshness_ede(uint8_t *out, size_t cap)
{
	if (!atomic_load_explicit(&g_stale, memory_order_relaxed))
		return 0;
	char text[64];
	size_t tl = put_str(text, "no news from the data source for ");
	uint64_t heard = atomic_load_explicit(&g_heard_ns, memory_order_relaxed);
	uint64_t now = clock_now_ns();
	tl += put_u64(text + tl, heard && now > heard ? (now - heard) / 1000000000u : 0);
	text[tl++] = 's';
	size_t len = 4 + 2 + tl;
	if (len > cap)
		return 0;
	wire_wr16(out, DNS_EDNS_EDE);
	wire_wr16(out + 2, (uint16_t)(2 + tl));
	wire_wr16(out + 4, DNS_EDE_STALE);
	memcpy(out + 6, text, tl);
	return len;
}

bool freshness_is_generation(const uint8_t *key, size_t keylen, uint16_t qtype)
{
	return g_keylen && keylen == g_keylen && (qtype == DNS_T_TXT || qtype == DNS_T_ANY) &&
	       memcmp(key, g_key, keylen) == 0;
}

size_t freshness_generation_txt(const struct snapshot *s, uint8_t *out, size_t cap)
{
	char strs[6][48];
	size_t lens[6], rdlen = 0;
	uint64_t now = clock_now_ns();
	uint64_t heard = atomic_load_explicit(&g_heard_ns, memory_order_relaxed);
	bool stale = atomic_load_explicit(&g_stale, memory_order_relaxed);

	lens[0] = put_str(strs[0], "generation=");
	lens[0] += put_u64(strs[0] + lens[0], s->generation);
	lens[1] = put_str(strs[1], "serial=");
	lens[1] += put_u64(strs[1] + lens[1], s->serial);
	lens[2] = put_str(strs[2], "snapshot-age=");
	lens[2] += put_secs(strs[2] + lens[2], now > s->built_ns ? now - s->built_ns : 0);
	lens[3] = put_str(strs[3], "source-age=");
	lens[3] += put_secs(strs[3] + lens[3], heard && now > heard ? now - heard : 0);
	lens[4] = put_str(strs[4], stale ? "stale=yes" : "stale=no");
	lens[5] = put_str(strs[5], heard ? "source=kubernetes" : "source=manifests");
	for (size_t i = 0; i < 6; i++)
		rdlen += 1 + lens[i];
	if (12 + rdlen > cap)
		return 0;
	/* owner: pointer to the question name; CH TXT, TTL 0 (it changes). */
	static const uint8_t head[10] = {0xC0, 0x0C, 0, 16, 0, 3, 0, 0, 0, 0};
	memcpy(out, head, 10);
	wire_wr16(out + 10, (uint16_t)rdlen);
	size_t n = 12;
	for (size_t i = 0; i < 6; i++) {
		out[n++] = (uint8_t)lens[i];
		memcpy(out + n, strs[i], lens[i]);
		n += lens[i];
	}
	return n;
}
