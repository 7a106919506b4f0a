/* Kubernetes label selectors in their text form, parsed as kube-apiserver
 * parses a `labelSelector` (k8s.io/apimachinery labels.Parse): `k=v`, `k==v`,
 * `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>N`, `k<N`, requirements
 * joined by commas (all must hold), spaces, tabs and newlines around tokens.
 * Keys and values are checked like the API server checks labels.
 *
 * Owns: the parser, the compiled selector and matching it against labels.
 * Must never: keep state between calls or log; an error is returned in words.
 * Callable from any thread; a compiled selector is immutable. */
#ifndef SVCDNS_LABELSEL_H
#define SVCDNS_LABELSEL_H

#include <stdbool.h>
#include <stddef.h>

#include "discovery/model.h"

struct label_selector;

/* Compiles text into *out (NULL text or "" selects everything). Returns 0,
 * -EINVAL with the reason in why[0..cap) ("found ')', expected: identifier
 * at 4"), or -ENOMEM. Bounded by the text's length: no recursion. */
int label_selector_parse(const char *text, struct label_selector **out, char *why, size_t cap);
void label_selector_free(struct label_selector *s);

/* Whether every requirement holds for labels (NULL: no labels at all). */
bool label_selector_matches(const struct label_selector *s, const struct model_labels *labels);

/* How many requirements it has (0: it selects everything). */
size_t label_selector_count(const struct label_selector *s);

#endif
