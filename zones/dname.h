/* Domain names in wire form: conversion from and to text, lowercasing,
 * hashing, and the bounds-checked reader the query path uses.
 *
 * Owns: the rules for what a valid name is (labels <= 63 octets, names <= 255
 * octets, no compression inside a question). Must never allocate. */
#ifndef SVCDNS_DNAME_H
#define SVCDNS_DNAME_H

#include <stddef.h>
#include <stdint.h>

#define DNAME_MAX 255
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

/* The hash the snapshot tables use, over a lowercased wire name. */
static inline uint32_t dname_hash(const uint8_t *key, size_t len)
{
	/* FNV-1a, then a final avalanche: names differ mostly in their first label,
	 * and this keeps linear probing short without a table of constants. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

#endif
