/* What the option table says to people: --help, the manual page svcdns(8)
 * and the README's table of flags, all written from options_table. */
#include "daemon/options.h"
#include "daemon/options_table.h"

#include <stdio.h>
#include <string.h>

#define HELP_WIDTH  79
#define HELP_INDENT 28

/* What an option does, in words: its help, then its default, what a bare
 * number means, whether it repeats and whether a reload applies it, in the
 * help's closing parenthesis or a new one. The README's table has columns
 * for the default and the reload rule. */
static void describe(const struct opt_def *d, bool table, char *out, size_t cap)
{
	char more[256];
	size_t len = 0;
	more[0] = '\0';
	if (!table && d->def)
		len += (size_t)snprintf(more + len, sizeof(more) - len, "; default %s", d->def);
	if (d->kind == OPT_DURATION && len < sizeof(more))
		len += (size_t)snprintf(more + len, sizeof(more) - len, "; a bare number is %s",
					d->bare == OPT_MS ? "milliseconds" : "seconds");
	if ((d->flags & OPT_REPEAT) && len < sizeof(more))
		len += (size_t)snprintf(more + len, sizeof(more) - len, "; repeatable");
	if (!table && (d->flags & OPT_RELOAD) && len < sizeof(more))
		snprintf(more + len, sizeof(more) - len, "; a reload applies it");
	size_t hl = strlen(d->help);
	if (!more[0])
		snprintf(out, cap, "%s", d->help);
	else if (hl && d->help[hl - 1] == ')')
		snprintf(out, cap, "%.*s%s)", (int)hl - 1, d->help, more);
	else
		snprintf(out, cap, "%s (%s)", d->help, more + 2);
}

/* ---- --help ------------------------------------------------------------------- */

/* Writes `text` from column `col`, wrapping at HELP_WIDTH to HELP_INDENT. */
static void wrap(FILE *f, const char *text, size_t col)
{
	while (*text) {
		size_t word = strcspn(text, " ");
		if (col > HELP_INDENT && col + 1 + word > HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_INDENT, "");
			col = HELP_INDENT;
		} else if (col > HELP_INDENT) {
			fputc(' ', f);
			col++;
		}
		fwrite(text, 1, word, f);
		col += word;
		text += word;
		text += strspn(text, " ");
	}
	fputc('\n', f);
}

void options_print_help(FILE *f)
{
	char text[768];
	fprintf(f, "usage: svcdns --manifests DIR | --kubeconfig FILE | --api-server URL "
		   "[options]\n"
		   "       svcdns --config FILE [options]\n"
		   "\n"
		   "Durations are written 250ms, 5s, 2m or 1h; a bare number is in the unit\n"
		   "each option names. A reload (SIGHUP, or a change of --config FILE) applies\n"
		   "the options marked so at once; the others at the next start.\n");
	for (size_t i = 0; i < options_table_len; i++) {
		const struct opt_def *d = &options_table[i];
		if (d->section)
			fprintf(f, "\n%s:\n", d->section);
		int col =
		    fprintf(f, "  --%s%s%s%s", d->name,
			    !d->arg		      ? ""
			    : (d->flags & OPT_OPTVAL) ? "[="
						      : " ",
			    d->arg ? d->arg : "", d->arg && (d->flags & OPT_OPTVAL) ? "]" : "");
		if (col + 2 > HELP_INDENT) {
			fprintf(f, "\n");
			col = 0;
		}
		fprintf(f, "%*s", HELP_INDENT - col, "");
		describe(d, false, text, sizeof(text));
		wrap(f, text, HELP_INDENT);
	}
}

/* ---- svcdns(8) ---------------------------------------------------------------- */

/* Text for roff: backslashes and hyphens escaped, no line read as a request. */
static void roff(FILE *f, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

static void man_paragraphs(FILE *f, const char *const *paras)
{
	for (size_t i = 0; paras[i]; i++) {
		if (i)
			fputs(".PP\n", f);
		roff(f, paras[i]);
		fputc('\n', f);
	}
}

static const char *const man_description[] = {
    "svcdns is the nameserver pods find in their resolv.conf. It answers the names of "
    "Kubernetes Services and their endpoints as the Kubernetes DNS specification (schema "
    "1.1.0) says, forwards every other name to upstream resolvers with a cache, and can "
    "forward ClusterIP and NodePort traffic to the ready endpoints itself (--proxy).",
    "Its data comes from a directory of manifests (--manifests), from the Kubernetes API "
    "(--kubeconfig, --api-server, or the service account of its pod), or both.",
    NULL,
};

static const char *const man_durations[] = {
    "Every time value is written with a unit: 250ms, 5s, 2m, 1h (fractions such as 1.5s "
    "are accepted). A bare number is in the unit the option's description names, as it "
    "was before units were accepted: --api-timeout 2000 is two seconds, --stale-after 2 "
    "is two seconds.",
    NULL,
};

static const char *const man_config[] = {
    "--config FILE holds more options, one per line, with the names of the command line: "
    "the leading -- is optional, a value follows the name after a space or =, a flag "
    "stands alone, and lines starting with # are comments. The file's options come "
    "before the command line's: an option given once is taken from the command line "
    "when both name it, repeatable ones add up.",
    "svcdns reloads the file when it changes and on SIGHUP. A reload first runs svcdns "
    "--check-config with the new configuration; one it rejects is logged with the file, "
    "the line and the reason, and changes nothing. Options described as applied by a "
    "reload take effect at once; a change to any other is logged as needing a restart.",
    NULL,
};

static const char *const man_signals[] = {
    "SIGTERM: with --http, /ready fails at once and queries are answered for --lameduck "
    "more, then TCP answers in flight are drained and svcdns exits. SIGINT, or a second "
    "signal: the same without lameduck. SIGHUP: reload the configuration.",
    NULL,
};

static const char *const man_exit[] = {
    "0 after a clean stop, --help, --version or a good --check-config; 1 when the "
    "program cannot start (a listen address in use, a zone file that cannot be read, no "
    "snapshot can be built); 2 for a command line or configuration file it cannot use.",
    NULL,
};

void options_print_man(FILE *f)
{
	char text[768];
	fprintf(f, ".TH SVCDNS 8 \"\" \"svcdns %s\" \"System Manager's Manual\"\n", SVCDNS_VERSION);
	fputs(".SH NAME\nsvcdns \\- DNS service discovery for Kubernetes\n"
	      ".SH SYNOPSIS\n.B svcdns\n.BI \\-\\-manifests \" DIR\"\n|\n"
	      ".BI \\-\\-kubeconfig \" FILE\"\n|\n.BI \\-\\-api\\-server \" URL\"\n"
	      ".RI [ options ]\n.SH DESCRIPTION\n",
	      f);
	man_paragraphs(f, man_description);
	fputs(".SH OPTIONS\n", f);
	for (size_t i = 0; i < options_table_len; i++) {
		const struct opt_def *d = &options_table[i];
		if (d->section) {
			fputs(".SS ", f);
			roff(f, d->section);
			fputc('\n', f);
		}
		fputs(".TP\n", f);
		fputs(d->arg ? ".BI " : ".B ", f);
		fputs("\\-\\-", f);
		roff(f, d->name);
		if (d->arg) {
			fputs((d->flags & OPT_OPTVAL) ? " \"[=" : " \" ", f);
			roff(f, d->arg);
			fputs((d->flags & OPT_OPTVAL) ? "]\"" : "\"", f);
		}
		fputc('\n', f);
		describe(d, false, text, sizeof(text));
		roff(f, text);
		fputc('\n', f);
	}
	fputs(".SH DURATIONS\n", f);
	man_paragraphs(f, man_durations);
	fputs(".SH CONFIGURATION FILE\n", f);
	man_paragraphs(f, man_config);
	fputs(".SH SIGNALS\n", f);
	man_paragraphs(f, man_signals);
	fputs(".SH EXIT STATUS\n", f);
	man_paragraphs(f, man_exit);
	fputs(".SH SEE ALSO\n.BR dig (1),\n.BR kdig (1)\n", f);
}

/* ---- the README's table ------------------------------------------------------- */

/* A table cell: pipes escaped, angle brackets kept from reading as HTML. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else
			fputc(*s, f);
	}
}

void options_print_markdown(FILE *f)
{
	char text[768];
	fputs("<!-- flags: generated by svcdns --flags-markdown; tests/integration/test_flags.py "
	      "holds them equal -->\n",
	      f);
	for (size_t i = 0; i < options_table_len; i++) {
		const struct opt_def *d = &options_table[i];
		if (d->section) {
			fputs(i ? "\n**" : "**", f);
			md_cell(f, d->section);
			fputs(
			    "**\n\n| Flag | Default | Reload | What it does |\n|---|---|---|---|\n",
			    f);
		}
		fputs("| `--", f);
		md_cell(f, d->name);
		if (d->arg) {
			fputs((d->flags & OPT_OPTVAL) ? "[=" : " ", f);
			md_cell(f, d->arg);
			if (d->flags & OPT_OPTVAL)
				fputc(']', f);
		}
		fputs("` | ", f);
		if (d->def) {
			fputc('`', f);
			md_cell(f, d->def);
			fputc('`', f);
		}
		fputs(d->flags & OPT_RELOAD   ? " | applied | "
		      : d->kind == OPT_ACTION ? " | | "
					      : " | restart | ",
		      f);
		describe(d, true, text, sizeof(text));
		md_cell(f, text);
		fputs(" |\n", f);
	}
	fputs("<!-- end of flags -->\n", f);
}
