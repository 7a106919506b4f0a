/* The shape of one entry of the option table; internal to daemon/ (the
 * parser in options.c and the generators in options_doc.c read it).
 *
 * Owns: the kinds of values an option can take and what each entry states.
 * Must never: hold state; entries are constant. */
#ifndef SVCDNS_OPTIONS_TABLE_H
#define SVCDNS_OPTIONS_TABLE_H

#include <stddef.h>

#include "daemon/options.h"

enum opt_kind {
	OPT_FLAG,     /* no value: sets a bool */
	OPT_STRING,   /* const char * */
	OPT_UINT,     /* unsigned, lo..hi */
	OPT_DURATION, /* unsigned in `unit`; lo..hi in milliseconds */
	OPT_CIDR,     /* struct net_cidr */
	OPT_ADDR,     /* struct net_addr */
	OPT_LISTEN,   /* struct dns_listen: ADDR:PORT, [V6]:PORT, ADDR (port 53) */
	OPT_CUSTOM,   /* parse() stores the value */
	OPT_ACTION,   /* no value: what to do instead of running (`lo` is the action) */
};

enum opt_unit { OPT_MS, OPT_S };

#define OPT_RELOAD 1u /* a reload applies a change at once (lifecycle.c) */
#define OPT_REPEAT 2u /* may be given several times; the values add up */
#define OPT_OPTVAL 4u /* the value may be left out: --NAME alone, or --NAME=VALUE */

struct opt_def {
	const char *name;
	const char *arg; /* the value's name in help, NULL: takes none */
	enum opt_kind kind;
	unsigned flags;
	/* The default as text, parsed like a given value before any is (for a
	 * repeatable option: its values, space-separated, when none is given).
	 * NULL: none, or one computed at start, which the help states. */
	const char *def;
	const char *help;
	const char *section; /* starts a group of options in help and man page */
	size_t off;	     /* the field in struct svcdns_options */
	size_t count_off;    /* OPT_REPEAT with a generic kind: the size_t count */
	size_t max_n;	     /* OPT_REPEAT: room for values */
	unsigned long long lo, hi;
	enum opt_unit unit; /* OPT_DURATION: of the field */
	enum opt_unit bare; /* OPT_DURATION: of a number without a unit */
	/* OPT_CUSTOM: stores `arg` (which lives as long as *o) or writes why it
	 * cannot into why[0..cap) and returns -EINVAL. */
	int (*parse)(struct svcdns_options *o, const char *arg, char *why, size_t cap);
};

/* The table (options.c), in the order help lists it; at most
 * OPTIONS_TABLE_MAX entries (the getopt_long array is static). */
#define OPTIONS_TABLE_MAX 128
extern const struct opt_def options_table[];
extern const size_t options_table_len;

/* A duration as the help writes it: "0", "250ms", "30s", "5m", "1h". */
void options_format_ms(unsigned long long ms, char *out, size_t cap);

#endif
