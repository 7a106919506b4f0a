/* Wire-form domain names; see dname.h. */
#include "zones/dname.h"

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
		if (ll == 0 || ll > DNAME_LABEL_MAX || o + 1 + ll + 1 > cap || o + 1 + ll + 1 > DNAME_MAX)
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

int dname_read_question(const uint8_t *pkt, size_t len, size_t off, uint8_t *key)
{
	size_t o = 0;
	for (;;) {
		if (off >= len)
			return -EBADMSG;
		uint8_t ll = pkt[off];
		if (ll & 0xC0) /* compression or extended label: not in a question */
			return -EBADMSG;
		if (o + 1 + ll > DNAME_MAX || off + 1 + ll > len)
			return -EBADMSG;
		key[o++] = ll;
		off++;
		if (ll == 0)
			return (int)o;
		for (uint8_t j = 0; j < ll; j++) {
			uint8_t c = pkt[off + j];
			key[o++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
		}
		off += ll;
	}
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
