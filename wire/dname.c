/* Wire-form domain names; see dname.h. */
#include "wire/dname.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int dname_from_text(const char *text, uint8_t *out, size_t cap)
{
	size_t tlen = strlen(text);
	if (tlen == 1 && text[0] == '.') {
		if (cap < 1)
			return -EINVAL;
		out[0] = 0;
		return 1;
	}
	if (tlen > 0 && text[tlen - 1] == '.')
		tlen--;
	if (tlen == 0)
		return -EINVAL;
	size_t o = 0, start = 0;
	while (start <= tlen) {
		size_t end = start;
		while (end < tlen && text[end] != '.')
			end++;
		size_t ll = end - start;
		if (ll == 0 || ll > DNAME_LABEL_MAX || o + 1 + ll + 1 > cap ||
		    o + 1 + ll + 1 > DNAME_MAX)
			return -EINVAL;
		out[o++] = (uint8_t)ll;
		for (size_t i = 0; i < ll; i++) {
			uint8_t c = (uint8_t)text[start + i];
			if (c == '\\' || c == 0)
				return -EINVAL;
			out[o++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
		}
		start = end + 1;
	}
	out[o++] = 0;
	return (int)o;
}

int dname_to_text(const uint8_t *name, char *out, size_t cap)
{
	size_t o = 0;
	if (name[0] == 0) {
		if (cap < 2)
			return -ENOSPC;
		out[0] = '.';
		out[1] = '\0';
		return 1;
	}
	for (size_t i = 0; name[i]; i += name[i] + 1) {
		for (size_t j = 1; j <= name[i]; j++) {
			uint8_t c = name[i + j];
			int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*';
			if (o + 5 >= cap)
				return -ENOSPC;
			if (ok)
				out[o++] = (char)c;
			else
				o += (size_t)snprintf(out + o, cap - o, "\\%03u", c);
		}
		if (o + 2 >= cap)
			return -ENOSPC;
		out[o++] = '.';
	}
	out[o] = '\0';
	return (int)o;
}

size_t dname_len(const uint8_t *name)
{
	size_t i = 0;
	while (name[i])
		i += name[i] + 1u;
	return i + 1;
}

int dname_labels(const uint8_t *name)
{
	int n = 0;
	for (size_t i = 0; name[i]; i += name[i] + 1u)
		n++;
	return n;
}

void dname_lower(uint8_t *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			name[i] = (uint8_t)(name[i] + 32);
}

/* ASCII-lowercases eight bytes at once: a byte becomes b | 0x20 exactly when
 * it lies in 'A'..'Z'. Label lengths (0..63) are below 'A', so a whole wire
 * name can go through this unchanged in structure. */
static inline uint64_t lower8(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull;
	uint64_t low7 = v & (0x7F * ones);
	uint64_t ge_a = low7 + (0x80 - 'A') * ones;	/* high bit: b >= 'A' */
	uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ones; /* high bit: b > 'Z' */
	uint64_t upper = (ge_a ^ gt_z) & ~v & (0x80 * ones);
	return v | (upper >> 2);
}

int dname_read_question(const uint8_t *pkt, size_t len, size_t off, uint8_t *key)
{
	/* First the extent, label by label (no per-byte work), then one copy
	 * lowercased a word at a time. */
	size_t start = off, o = 0;
	for (;;) {
		if (off >= len)
			return -EBADMSG;
		uint8_t ll = pkt[off];
		if (ll & 0xC0) /* compression or extended label: not in a question */
			return -EBADMSG;
		if (o + 1 + ll > DNAME_MAX || off + 1 + ll > len)
			return -EBADMSG;
		o += 1u + ll;
		off += 1u + ll;
		if (ll == 0)
			break;
	}
	const uint8_t *src = pkt + start;
	size_t i = 0;
	for (; i + 8 <= o; i += 8) {
		uint64_t v;
		memcpy(&v, src + i, 8);
		v = lower8(v);
		memcpy(key + i, &v, 8);
	}
	if (i < o && o >= 8) {
		/* The tail as one last word overlapping the one before:
		 * lowercasing twice changes nothing. */
		uint64_t v;
		memcpy(&v, src + o - 8, 8);
		v = lower8(v);
		memcpy(key + o - 8, &v, 8);
		return (int)o;
	}
	for (; i < o; i++) {
		uint8_t c = src[i];
		key[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
	}
	return (int)o;
}

int dname_skip(const uint8_t *pkt, size_t len, size_t off)
{
	size_t total = 0;
	for (;;) {
		if (off >= len)
			return -EBADMSG;
		uint8_t ll = pkt[off];
		if ((ll & 0xC0) == 0xC0) {
			if (off + 2 > len)
				return -EBADMSG;
			return (int)(off + 2);
		}
		if (ll & 0xC0)
			return -EBADMSG;
		total += ll + 1u;
		if (total > DNAME_MAX || off + 1 + ll > len)
			return -EBADMSG;
		off += 1u + ll;
		if (ll == 0)
			return (int)off;
	}
}

size_t dname_service_labels(const uint8_t *key, size_t keylen, const uint8_t **name,
			    size_t *name_len, const uint8_t **ns, size_t *ns_len)
{
	if (keylen < 1)
		return 0;
	size_t l1 = key[0], o2 = 1 + l1;
	if (!l1 || o2 >= keylen)
		return 0;
	size_t l2 = key[o2], o3 = o2 + 1 + l2;
	if (!l2 || o3 + 4 >= keylen || key[o3] != 3 || memcmp(key + o3 + 1, "svc", 3) != 0)
		return 0;
	*name = key + 1;
	*name_len = l1;
	*ns = key + o2 + 1;
	*ns_len = l2;
	return o3 + 4;
}
