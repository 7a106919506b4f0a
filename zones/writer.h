/* The message writer the builder renders answers with: bytes appended behind
 * a question, names compressed against what the message already holds (a
 * dictionary of name suffixes and their offsets), records laid out as RFC
 * 1035 has them.
 *
 * Internal to zones/ (render.c, answers.c). Build-time only, on the control
 * thread. Must never: write past MSG_LIMIT (it marks itself full and stops
 * instead), or compress a name where RFC 3597 forbids it. */
#ifndef SVCDNS_ZONES_WRITER_H
#define SVCDNS_ZONES_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire/wire.h"

#define MSG_LIMIT 65000 /* room for header, question and OPT within 64 KiB */
#define DICT_SIZE 2048

struct dict_entry {
	uint32_t gen;
	uint32_t hash;
	uint16_t off; /* message offset of the name suffix */
	uint8_t len;
	const uint8_t *name; /* lowercased suffix */
};

/* The dictionary's entries count only when their `gen` is the writer's: a new
 * answer starts by moving `gen` on, not by clearing DICT_SIZE entries. */
struct writer {
	uint8_t *buf;
	size_t len;
	size_t base; /* message offset of buf[0] */
	bool full;
	struct dict_entry *dict;
	uint32_t gen;
	bool compress;
	/* The question's suffixes, entered into the dictionary on its first
	 * use: most answers (addresses, TXT) never compress a name. */
	const uint8_t *qname_pending;
	/* Names are never compressed against message offsets in
	 * [no_ptr_lo, no_ptr_hi): a section that moves at query time. */
	size_t no_ptr_lo, no_ptr_hi;
};

static inline void writer_put(struct writer *w, const void *p, size_t n)
{
	if (w->full || w->base + w->len + n > MSG_LIMIT) {
		w->full = true;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline void writer_put16(struct writer *w, uint16_t v)
{
	uint8_t b[2];
	wire_wr16(b, v);
	writer_put(w, b, 2);
}

static inline void writer_put32(struct writer *w, uint32_t v)
{
	uint8_t b[4];
	wire_wr32(b, v);
	writer_put(w, b, 4);
}

/* Writes a (lowercase, uncompressed) name, compressing it against what the
 * message already holds when `compress` and the writer allow. */
void writer_put_name(struct writer *w, const uint8_t *name, bool compress);

/* Writes one IN-class record. `owner_ptr` >= 0: the owner is a pointer to
 * that offset (owner unused); else `owner`, compressed. */
void writer_put_rr(struct writer *w, const uint8_t *owner, int owner_ptr, uint16_t type,
		   uint32_t ttl, const uint8_t *rdata, uint16_t rdlen);

#endif
