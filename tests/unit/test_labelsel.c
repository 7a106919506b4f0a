/* The label selector parser (--namespace-labels) against the API server's
 * grammar: what it accepts and what each accepted selector matches, what it
 * refuses and why, and hostile input (random bytes, huge and deeply nested
 * text) that must be refused or accepted without a crash or a leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery/labelsel.h"

/* Labels as "k=v k2=v2" (space-separated), NULL items for none. */
static struct model_labels labels_of(const char *text, struct model_label *items, char *buf)
{
	struct model_labels l = {.items = items, .n = 0};
	strcpy(buf, text);
	for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		*eq = '\0';
		items[l.n].key = tok;
		items[l.n].value = eq + 1;
		l.n++;
	}
	return l;
}

static bool matches(const char *selector, const char *labels)
{
	struct label_selector *s;
	struct model_label items[8];
	char buf[256], why[256];
	assert_int_equal(label_selector_parse(selector, &s, why, sizeof(why)), 0);
	struct model_labels l = labels_of(labels, items, buf);
	bool m = label_selector_matches(s, &l);
	label_selector_free(s);
	return m;
}

static void test_matches(void **state)
{
	(void)state;
	static const struct {
		const char *sel, *labels;
		bool want;
	} cases[] = {
	    {"", "", true},
	    {"  ", "team=a", true},
	    {"team=a", "team=a", true},
	    {"team=a", "team=b", false},
	    {"team=a", "", false},
	    {"team==a", "team=a", true},
	    {"team!=a", "team=b", true},
	    {"team!=a", "", true}, /* no label: != holds */
	    {"team!=a", "team=a", false},
	    {"team in (a, b)", "team=b", true},
	    {"team in (a,b)", "team=c", false},
	    {"team in (a,b)", "", false},
	    {"team notin (a,b)", "team=c", true},
	    {"team notin (a,b)", "", true},
	    {"team notin (a,b)", "team=a", false},
	    {"team", "team=", true},
	    {"team", "x=y", false},
	    {"!team", "x=y", true},
	    {"!team", "", true},
	    {"!team", "team=a", false},
	    {"team=a,env=prod", "team=a env=prod", true},
	    {"team=a, env=prod", "team=a env=dev", false},
	    {"team=a\t,\n!legacy", "team=a", true},
	    {"team=", "team=", true}, /* an empty value */
	    {"team=", "team=a", false},
	    {"team in ()", "team=", true},
	    {"team in (,a)", "team=", true},
	    {"team in (a,)", "team=a", true},
	    {"tier>2", "tier=3", true},
	    {"tier>2", "tier=2", false},
	    {"tier<10", "tier=9", true},
	    {"tier<10", "tier=x", false},
	    {"tier<10", "", false},
	    {"example.com/team=a", "example.com/team=a", true},
	    {"in=notin", "in=notin", true}, /* keywords are words in a key's place */
	    {"k in (in,notin)", "k=notin", true},
	    {"a.b_c-D=X.y_z-9", "a.b_c-D=X.y_z-9", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (matches(cases[i].sel, cases[i].labels) != cases[i].want)
			fail_msg("selector \"%s\" on labels \"%s\": want %d", cases[i].sel,
				 cases[i].labels, cases[i].want);
	}
	/* NULL labels are no labels */
	struct label_selector *s;
	char why[128];
	assert_int_equal(label_selector_parse("!a,b!=c", &s, why, sizeof(why)), 0);
	assert_true(label_selector_matches(s, NULL));
	assert_int_equal(label_selector_count(s), 2);
	label_selector_free(s);
}

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *sel, *why;
	} cases[] = {
	    {"a b", "found 'b' at 3, expected: in, notin"},
	    {"a=b=c", "found '=' at 4, expected: ',' or the end"},
	    {"a===b", "found '=' at 4, expected: a value"},
	    {",", "found ',' at 1, expected: a label key"},
	    {"a=b,", "expected: a requirement after ','"},
	    {"a=b,,c=d", "found ',' at 5, expected: a requirement after ','"},
	    {"a in b", "found 'b' at 6, expected: '('"},
	    {"a in (b", "found the end, expected: ',' or ')'"},
	    {"a in (b c)", "found 'c' at 9, expected: ',' or ')'"},
	    {"a in (b))", "found ')' at 9, expected: ',' or the end"},
	    {"a notin", "found the end, expected: '('"},
	    {"a (b)", "found '(' at 3"},
	    {"!", "found the end, expected: a label key"},
	    {"!!a", "found '!' at 2, expected: a label key"},
	    {"!a=b", "found '=' at 3, expected: ',' or the end"},
	    {"a ! b", "found '!' at 3"},
	    {"a=(b)", "found '(' at 3, expected: a value"},
	    {"-a=b", "'-a' is not a valid label key"},
	    {"a/=b", "'a/' is not a valid label key"},
	    {"/a=b", "'/a' is not a valid label key"},
	    {"A_B.c/d=e", "'A_B.c/d' is not a valid label key"},
	    {"a/b/c=d", "'a/b/c' is not a valid label key"},
	    {"a=-b", "'-b' (for a) is not a valid label value"},
	    {"a in (x, -y)", "'-y' (for a) is not a valid label value"},
	    {"a=b\xc3\xa9", "is not a valid label value"},
	    {"a>b", "> and < compare with an integer"},
	    {"a<", "> and < compare with an integer"},
	    {"a>99999999999999999999", "> and < compare with an integer"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct label_selector *s = (struct label_selector *)1;
		char why[256];
		int rc = label_selector_parse(cases[i].sel, &s, why, sizeof(why));
		if (rc != -22 || s != NULL || !strstr(why, cases[i].why))
			fail_msg("selector \"%s\": rc %d, why \"%s\", want \"%s\"", cases[i].sel,
				 rc, why, cases[i].why);
	}
	/* 64 characters in a key's name, 63 allowed */
	char key[128];
	memset(key, 'k', 64);
	strcpy(key + 64, "=v");
	struct label_selector *s;
	char why[256];
	assert_int_equal(label_selector_parse(key, &s, why, sizeof(why)), -22);
	strcpy(key + 63, "=v");
	assert_int_equal(label_selector_parse(key, &s, why, sizeof(why)), 0);
	label_selector_free(s);
}

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/* Random strings over the grammar's own alphabet and over all bytes: every
 * one is accepted or refused with a reason, and an accepted one matches
 * without trouble. ASan and LSan watch for the rest. */
static void test_hostile(void **state)
{
	(void)state;
	static const char alphabet[] = "ab=!(),<> \t\nin notin 0/.-_";
	unsigned seed = 7;
	char text[96], why[256];
	size_t accepted = 0;

	for (int i = 0; i < 200000; i++) {
		size_t n = rnd(&seed) % (sizeof(text) - 1);
		bool any_byte = i % 4 == 0;
		for (size_t k = 0; k < n; k++) {
			char c = any_byte ? (char)(1 + rnd(&seed) % 255)
					  : alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
			text[k] = c;
		}
		text[n] = '\0';
		struct label_selector *s;
		int rc = label_selector_parse(text, &s, why, sizeof(why));
		if (rc == 0) {
			accepted++;
			struct model_label l = {.key = "a", .value = "b"};
			struct model_labels ls = {.items = &l, .n = 1};
			(void)label_selector_matches(s, &ls);
			label_selector_free(s);
		} else {
			assert_int_equal(rc, -22);
			assert_true(why[0] != '\0');
		}
	}
	assert_true(accepted > 100);

	/* a megabyte: of parentheses, of commas, one huge key, many requirements */
	size_t big = 1u << 20;
	char *t = malloc(big + 1);
	assert_non_null(t);
	struct label_selector *s;
	memset(t, '(', big);
	t[big] = '\0';
	assert_int_equal(label_selector_parse(t, &s, why, sizeof(why)), -22);
	memset(t, ',', big);
	assert_int_equal(label_selector_parse(t, &s, why, sizeof(why)), -22);
	memset(t, 'a', big);
	assert_int_equal(label_selector_parse(t, &s, why, sizeof(why)), -22);
	assert_non_null(strstr(why, "not a valid label key"));
	assert_true(strlen(why) < 300);
	size_t len = 0;
	while (len + 8 < big)
		len += (size_t)sprintf(t + len, "%sa%u=b", len ? "," : "", rnd(&seed) % 1000);
	assert_int_equal(label_selector_parse(t, &s, why, sizeof(why)), 0);
	assert_true(label_selector_count(s) > 10000);
	label_selector_free(s);
	/* a small error buffer truncates, never overruns */
	char tiny[8];
	assert_int_equal(label_selector_parse("a b", &s, tiny, sizeof(tiny)), -22);
	assert_int_equal(strlen(tiny), 7);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_matches),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
