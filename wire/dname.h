/* Domain names in wire form: conversion from and to text, lowercasing,
 * the snapshot's (unkeyed) hash, and the bounds-checked reader the query
 * path uses.
 *
 * Owns: the rules for what a valid name is (labels <= 63 octets, names <= 255
 * octets, no compression inside a question). Must never allocate. */
#ifndef SVCDNS_DNAME_H
#define SVCDNS_DNAME_H

#include <stddef.h>
#include <stdint.h>

#define DNAME_MAX	255
#define DNAME_LABEL_MAX 63

/* Text ("a.b.c" or "a.b.c.", "." for the root) to wire form, lowercased.
 * Returns the wire length or -EINVAL. Backslash escapes are not accepted: the
 * names here come from Kubernetes objects and flags, which never need them. */
int dname_from_text(const char *text, uint8_t *out, size_t cap);

/* Wire form (known valid) to text with a trailing dot. Bytes outside
 * [-_a-zA-Z0-9*] are written as \DDD. Returns the text length or -ENOSPC. */
int dname_to_text(const uint8_t *name, char *out, size_t cap);

/* Length of a valid, uncompressed wire name. */
size_t dname_len(const uint8_t *name);

/* Number of labels (the root has 0). */
int dname_labels(const uint8_t *name);

/* ASCII-lowercases a wire name in place (label lengths are below 'A'). */
void dname_lower(uint8_t *name, size_t len);

/* Reads an uncompressed name at pkt[off] and copies it, lowercased, to key.
 * Returns the wire length (consumed bytes) or -EBADMSG when the name runs past
 * the end, a label type other than 00 is used, or it exceeds 255 octets. */
int dname_read_question(const uint8_t *pkt, size_t len, size_t off, uint8_t *key);

/* Skips a possibly compressed name (for RRs after the question); returns the
 * offset after it, or -EBADMSG. Never follows pointers. */
int dname_skip(const uint8_t *pkt, size_t len, size_t off);

/* A Service's name as the CHAOS views ask it, `<svc>.<ns>.svc.<rest>` in a
 * lowercased wire name: sets the two labels (pointers into key, and their
 * lengths) and returns the offset of <rest>, or 0 when the name is not of
 * that form. */
size_t dname_service_labels(const uint8_t *key, size_t keylen, const uint8_t **name,
			    size_t *name_len, const uint8_t **ns, size_t *ns_len);

/* The hash of the snapshot's tables (zones/), over a lowercased wire name.
 * Eight bytes a step: names are 20-60 bytes and this runs for every query
 * (and for each suffix tried on a miss).
 *
 * It has no key, and names that share a hash are easy to construct (the
 * state after a word is known, so the next word can cancel it). Use it only
 * for tables whose entries the cluster defines (API objects, zone files,
 * flags): a query merely probes those, and a chain is as long as the table's
 * own names make it, whatever is asked; whoever can add names there is
 * already trusted with the server's memory. A table that stores what a client
 * chooses (cached or in-flight names, rate-limit flows, source addresses)
 * must hash with common/shash.h: with this function a client could send
 * names that all land in one bucket and make every lookup walk them all. */
static inline uint32_t dname_hash(const uint8_t *key, size_t len)
{
	const uint64_t k = 0x9E3779B97F4A7C15ull;
	uint64_t h = (uint64_t)len * k;
	while (len >= 8) {
		uint64_t v;
		__builtin_memcpy(&v, key, 8);
		h = (h ^ v) * k;
		h ^= h >> 29;
		key += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = 0;
		__builtin_memcpy(&v, key, len);
		h = (h ^ v) * k;
		h ^= h >> 29;
	}
	h *= 0xBF58476D1CE4E5B9ull;
	return (uint32_t)(h ^ (h >> 32));
}

#endif
