/* Address and prefix parsing, formatting and membership. See netaddr.h. */
#include "common/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A dotted quad whose octets are decimal numbers of any length up to 255, so
 * that "10.96.05.77" is 10.96.5.77: the API server stores such addresses (its
 * parser reads leading zeros as decimal, never as octal) and we must serve
 * them as it means them. Exactly four octets, nothing else. */
static int ipv4_sloppy(const char *text, size_t len, uint8_t out[4])
{
	size_t i = 0;

	for (int octet = 0; octet < 4; octet++) {
		unsigned v = 0;
		size_t digits = 0;
		if (octet > 0) {
			if (i >= len || text[i] != '.')
				return -EINVAL;
			i++;
		}
		while (i < len && text[i] >= '0' && text[i] <= '9') {
			v = v * 10 + (unsigned)(text[i++] - '0');
			if (v > 255)
				return -EINVAL;
			digits++;
		}
		if (digits == 0)
			return -EINVAL;
		out[octet] = (uint8_t)v;
	}
	return i == len ? 0 : -EINVAL;
}

int net_addr_parse(const char *text, struct net_addr *out)
{
	char buf[INET6_ADDRSTRLEN + 64];

	memset(out, 0, sizeof(*out));
	if (!text)
		return -EINVAL;
	size_t len = strlen(text);
	if (ipv4_sloppy(text, len, out->bytes) == 0) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, out->bytes) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	/* An IPv6 address ending in a dotted quad with leading zeros
	 * ("::ffff:10.0.05.1"): the same leniency for the embedded part. */
	const char *colon = memrchr(text, ':', len);
	uint8_t v4[4];
	if (colon && len < sizeof(buf) &&
	    ipv4_sloppy(colon + 1, len - (size_t)(colon + 1 - text), v4) == 0) {
		int n = snprintf(buf, sizeof(buf), "%.*s%u.%u.%u.%u", (int)(colon + 1 - text), text,
				 v4[0], v4[1], v4[2], v4[3]);
		if (n > 0 && (size_t)n < sizeof(buf) && inet_pton(AF_INET6, buf, out->bytes) == 1) {
			out->family = AF_INET6;
			return 0;
		}
	}
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

void net_addr_format(const struct net_addr *a, char *buf, size_t len)
{
	if ((a->family != AF_INET && a->family != AF_INET6) ||
	    !inet_ntop(a->family, a->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

int net_addr_cmp(const struct net_addr *a, const struct net_addr *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : 1;
	return memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16);
}

int net_cidr_parse(const char *text, struct net_cidr *out)
{
	char host[64];

	memset(out, 0, sizeof(*out));
	if (!text)
		return -EINVAL;
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (net_addr_parse(host, &out->base) < 0)
		return -EINVAL;
	unsigned max = out->base.family == AF_INET ? 32 : 128;
	unsigned long p = max;
	if (slash) {
		char *end;
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		p = strtoul(slash + 1, &end, 10);
		if (*end || p > max)
			return -EINVAL;
	}
	out->prefix = (uint8_t)p;
	/* Host bits cleared: a membership test compares whole bytes. */
	for (unsigned bit = out->prefix; bit < max; bit++)
		out->base.bytes[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return 0;
}

bool net_cidr_contains_raw(const struct net_cidr *c, uint8_t family, const uint8_t *bytes)
{
	if (c->base.family != family)
		return false;
	unsigned whole = c->prefix / 8, rest = c->prefix % 8;
	if (memcmp(c->base.bytes, bytes, whole) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (c->base.bytes[whole] & mask) == (bytes[whole] & mask);
}

bool net_cidr_contains(const struct net_cidr *c, const struct net_addr *a)
{
	return net_cidr_contains_raw(c, a->family, a->bytes);
}
