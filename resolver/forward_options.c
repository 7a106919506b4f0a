/* The forwarder's command-line options: defaults, and reading each
 * --upstream, --stub-domain, --policy, cache and timeout flag into a
 * struct forward_options, with a message naming the flag when a value is bad. */
#include "resolver/forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void forward_options_init(struct forward_options *o)
{
	memset(o, 0, sizeof(*o));
	o->policy = UPSTREAM_SEQUENTIAL;
	o->timeout_ms = 2000;
	o->max_concurrent = 1000;
	o->cache_bytes = 32u << 20;
	o->cache_max_ttl = 3600;
	o->cache_max_neg_ttl = 1800;
	o->cache_servfail_ttl = 5;
	o->prefetch = true;
	o->zone = "cluster.local";
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end || v > max || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

/* "10000" entries, or a memory size: "64M", "512KiB", "1G", "65536B". */
static int parse_cache_size(const char *s, size_t *bytes, size_t *entries)
{
	static const struct {
		const char *suffix;
		unsigned long long mult;
	} units[] = {
	    {"b", 1},		{"k", 1ull << 10},  {"kb", 1ull << 10},	 {"kib", 1ull << 10},
	    {"m", 1ull << 20},	{"mb", 1ull << 20}, {"mib", 1ull << 20}, {"g", 1ull << 30},
	    {"gb", 1ull << 30}, {"gib", 1ull << 30}};
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	if (*end == '\0') {
		*entries = (size_t)v;
		*bytes = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix) == 0) {
			if (v > (1ull << 40) / units[i].mult)
				return -EINVAL;
			*bytes = (size_t)(v * units[i].mult);
			*entries = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_stub(const char *arg, struct fwd_stub_option *st)
{
	const char *eq = strchr(arg, '=');
	uint8_t wire[DNAME_MAX];
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(st->domain))
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	memcpy(st->domain, arg, (size_t)(eq - arg));
	if (dname_from_text(st->domain, wire, sizeof(wire)) < 0)
		return -EINVAL;
	const char *p = eq + 1;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		char one[80];
		if (l == 0 || l >= sizeof(one) || st->n == FWD_MAX_STUB_SERVERS)
			return -EINVAL;
		memcpy(one, p, l);
		one[l] = '\0';
		if (dns_listen_parse(one, &st->servers[st->n]) < 0)
			return -EINVAL;
		st->n++;
		p += l + (comma ? 1 : 0);
	}
	return st->n ? 0 : -EINVAL;
}

int forward_option(struct forward_options *o, int code, const char *arg)
{
	unsigned long v;
	switch (code) {
	case FWD_OPT_UPSTREAM:
		if (strcmp(arg, "none") == 0) {
			o->upstream_none = true;
			return 0;
		}
		if (o->n_upstreams == FWD_MAX_UPSTREAMS ||
		    dns_listen_parse(arg, &o->upstreams[o->n_upstreams]) < 0) {
			fprintf(stderr,
				"svcdns: --upstream %s: expected ADDR[:PORT], [V6]:PORT or "
				"none (at most %d)\n",
				arg, FWD_MAX_UPSTREAMS);
			return -EINVAL;
		}
		o->n_upstreams++;
		return 0;
	case FWD_OPT_RESOLV_CONF:
		o->resolv_conf = arg;
		return 0;
	case FWD_OPT_STUB_DOMAIN:
		if (o->n_stubs == FWD_MAX_STUBS || parse_stub(arg, &o->stubs[o->n_stubs]) < 0) {
			fprintf(stderr,
				"svcdns: --stub-domain %s: expected DOMAIN=ADDR[:PORT][,ADDR...]\n",
				arg);
			return -EINVAL;
		}
		o->n_stubs++;
		return 0;
	case FWD_OPT_POLICY:
		if (strcmp(arg, "sequential") == 0)
			o->policy = UPSTREAM_SEQUENTIAL;
		else if (strcmp(arg, "round_robin") == 0)
			o->policy = UPSTREAM_ROUND_ROBIN;
		else if (strcmp(arg, "random") == 0)
			o->policy = UPSTREAM_RANDOM;
		else {
			fprintf(stderr,
				"svcdns: --policy %s: expected sequential, round_robin or "
				"random\n",
				arg);
			return -EINVAL;
		}
		return 0;
	case FWD_OPT_TIMEOUT:
		if (parse_ulong(arg, 60000, &v) < 0 || v == 0) {
			fprintf(stderr, "svcdns: --upstream-timeout %s: expected 1..60000 ms\n",
				arg);
			return -EINVAL;
		}
		o->timeout_ms = (unsigned)v;
		return 0;
	case FWD_OPT_MAX_CONCURRENT:
		if (parse_ulong(arg, 1000000, &v) < 0 || v == 0) {
			fprintf(stderr, "svcdns: --max-concurrent %s: expected a positive number\n",
				arg);
			return -EINVAL;
		}
		o->max_concurrent = (unsigned)v;
		return 0;
	case FWD_OPT_ALLOW_RECURSION:
		if (o->n_allow == FWD_MAX_ALLOW || net_cidr_parse(arg, &o->allow[o->n_allow]) < 0) {
			fprintf(stderr,
				"svcdns: --allow-recursion %s: expected a CIDR like 10.0.0.0/8\n",
				arg);
			return -EINVAL;
		}
		o->n_allow++;
		return 0;
	case FWD_OPT_CACHE_SIZE:
		if (parse_cache_size(arg, &o->cache_bytes, &o->cache_entries) < 0) {
			fprintf(stderr,
				"svcdns: --cache-size %s: expected entries (10000) or a size "
				"(64M, 512K)\n",
				arg);
			return -EINVAL;
		}
		return 0;
	case FWD_OPT_CACHE_MAX_TTL:
	case FWD_OPT_CACHE_MAX_NEG_TTL:
	case FWD_OPT_CACHE_SERVFAIL_TTL:
	case FWD_OPT_SERVE_STALE:
		if (parse_ulong(arg, 30u * 86400u, &v) < 0) {
			fprintf(stderr, "svcdns: %s: expected seconds (at most 30 days)\n", arg);
			return -EINVAL;
		}
		if (code == FWD_OPT_CACHE_MAX_TTL)
			o->cache_max_ttl = (uint32_t)v;
		else if (code == FWD_OPT_CACHE_MAX_NEG_TTL)
			o->cache_max_neg_ttl = (uint32_t)v;
		else if (code == FWD_OPT_CACHE_SERVFAIL_TTL)
			o->cache_servfail_ttl = (uint32_t)v;
		else
			o->serve_stale_s = (uint32_t)v;
		return 0;
	case FWD_OPT_NO_PREFETCH:
		o->prefetch = false;
		return 0;
	case FWD_OPT_AUTOPATH:
		o->autopath = true;
		return 0;
	default:
		return -EINVAL;
	}
}
