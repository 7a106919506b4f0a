/* The DNS wire layer's vocabulary: record types, classes, opcodes, rcodes, the
 * twelve-byte header read and written through accessors, and big-endian
 * integer helpers. Every module that touches DNS messages (dns/, zones/,
 * resolver/, the tests) uses these instead of its own constants or bit masks,
 * so that a flag lives in exactly one place.
 *
 * Owns: the numbers the RFCs assign and the header layout (RFC 1035 4.1.1,
 * RFC 2535 for AD/CD). Must never: allocate, log, or know anything of zones,
 * the cluster or the program; everything here is inline and callable from any
 * thread, the query path included. Bounds are the caller's: every accessor
 * reads or writes the first WIRE_HDR_LEN bytes of a buffer that has them. */
#ifndef SVCDNS_WIRE_H
#define SVCDNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- numbers ----------------------------------------------------------------- */

enum dns_type {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_MD = 3,
	DNS_T_MF = 4,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_MB = 7,
	DNS_T_MG = 8,
	DNS_T_MR = 9,
	DNS_T_PTR = 12,
	DNS_T_HINFO = 13,
	DNS_T_MINFO = 14,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_RP = 17,
	DNS_T_AFSDB = 18,
	DNS_T_RT = 21,
	DNS_T_AAAA = 28,
	DNS_T_SRV = 33,
	DNS_T_DNAME = 39,
	DNS_T_OPT = 41,
	DNS_T_DS = 43,
	DNS_T_IXFR = 251,
	DNS_T_AXFR = 252,
	DNS_T_ANY = 255,
};

enum dns_class { DNS_C_IN = 1, DNS_C_CH = 3, DNS_C_NONE = 254, DNS_C_ANY = 255 };

enum dns_opcode { DNS_OP_QUERY = 0, DNS_OP_NOTIFY = 4, DNS_OP_UPDATE = 5 };

enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_NOTAUTH = 9,	/* RFC 2136: not authoritative for the zone asked */
	DNS_RCODE_BADVERS = 16, /* extended (RFC 6891): upper bits in the OPT TTL */
};

/* EDNS option codes and Extended DNS Error info-codes (RFC 8914). */
enum { DNS_EDNS_COOKIE = 10, DNS_EDNS_EDE = 15 };
enum { DNS_EDE_OTHER = 0, DNS_EDE_STALE = 3, DNS_EDE_FILTERED = 17, DNS_EDE_PROHIBITED = 18 };
/* The DO bit of the OPT record's flags (RFC 3225), the TTL's low 16 bits. */
#define DNS_EDNS_FLAG_DO 0x8000

#define WIRE_HDR_LEN 12
#define WIRE_OPT_LEN 11 /* an OPT record with no options: root, type, class, TTL, rdlen */
/* Largest UDP payload svcdns sends with EDNS (the DNS flag day 2020 value):
 * bigger answers go over TCP instead of being fragmented. */
#define DNS_EDNS_MAX_UDP 1232
#define DNS_MAX_MSG	 65535

/* ---- integers ------------------------------------------------------------------ */

static inline uint16_t wire_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t wire_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wire_wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wire_wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* One CH TXT record of a single string (len <= 255) owned by the question's
 * name (a pointer to offset 12), TTL 0, at out; its size, or 0 when it does
 * not fit in cap. */
static inline size_t wire_put_ch_txt(uint8_t *out, size_t cap, const char *text, size_t len)
{
	size_t rr = 12 + 1 + len;
	if (len > 255 || rr > cap)
		return 0;
	out[0] = 0xC0;
	out[1] = 0x0C;
	wire_wr16(out + 2, DNS_T_TXT);
	wire_wr16(out + 4, DNS_C_CH);
	wire_wr32(out + 6, 0);
	wire_wr16(out + 10, (uint16_t)(len + 1));
	out[12] = (uint8_t)len;
	memcpy(out + 13, text, len);
	return rr;
}

/* ---- the header ---------------------------------------------------------------
 * Byte 2: QR(0x80) OPCODE(0x78) AA(0x04) TC(0x02) RD(0x01);
 * byte 3: RA(0x80) Z(0x40) AD(0x20) CD(0x10) RCODE(0x0f). */
enum wire_flag {
	WIRE_QR = 0x8000,
	WIRE_AA = 0x0400,
	WIRE_TC = 0x0200,
	WIRE_RD = 0x0100,
	WIRE_RA = 0x0080,
	WIRE_Z = 0x0040,
	WIRE_AD = 0x0020,
	WIRE_CD = 0x0010,
};

static inline uint16_t wire_hdr_id(const uint8_t *m)
{
	return wire_rd16(m);
}

static inline void wire_hdr_set_id(uint8_t *m, uint16_t id)
{
	wire_wr16(m, id);
}

/* The opcode and rcode fields inside the flags word. */
#define WIRE_OPCODE_BITS 0x7800
#define WIRE_RCODE_BITS	 0x000f

/* The flags word (bytes 2-3) with opcode and rcode included. */
static inline uint16_t wire_hdr_flags(const uint8_t *m)
{
	return wire_rd16(m + 2);
}

/* Writes the whole flags word at once: a response header built from the
 * query's in one store rather than a flag at a time. */
static inline void wire_hdr_set_flags(uint8_t *m, uint16_t flags)
{
	wire_wr16(m + 2, flags);
}

static inline bool wire_hdr_has(const uint8_t *m, enum wire_flag f)
{
	return (wire_hdr_flags(m) & f) != 0;
}

static inline void wire_hdr_set(uint8_t *m, enum wire_flag f, bool on)
{
	uint16_t v = wire_hdr_flags(m);
	wire_wr16(m + 2, on ? (uint16_t)(v | f) : (uint16_t)(v & ~f));
}

static inline unsigned wire_hdr_opcode(const uint8_t *m)
{
	return (m[2] >> 3) & 0x0f;
}

static inline void wire_hdr_set_opcode(uint8_t *m, unsigned op)
{
	m[2] = (uint8_t)((m[2] & ~0x78) | (op & 0x0f) << 3);
}

/* The header's four rcode bits (an extended rcode's upper bits are in OPT). */
static inline unsigned wire_hdr_rcode(const uint8_t *m)
{
	return m[3] & 0x0f;
}

static inline void wire_hdr_set_rcode(uint8_t *m, unsigned rcode)
{
	m[3] = (uint8_t)((m[3] & 0xf0) | (rcode & 0x0f));
}

/* Section counts: question, answer, authority, additional. */
enum wire_section { WIRE_QD = 0, WIRE_AN = 1, WIRE_NS = 2, WIRE_AR = 3 };

static inline uint16_t wire_hdr_count(const uint8_t *m, enum wire_section s)
{
	return wire_rd16(m + 4 + 2 * s);
}

static inline void wire_hdr_set_count(uint8_t *m, enum wire_section s, uint16_t n)
{
	wire_wr16(m + 4 + 2 * s, n);
}

#endif
