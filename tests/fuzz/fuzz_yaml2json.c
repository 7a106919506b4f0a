/* Fuzz target: a YAML stream through yaml_to_json_docs() alone. Beyond not
 * crashing: the result honours the documented limits and is JSON that jansson
 * writes and reads back unchanged; a failure leaves a message and no result. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "discovery/yaml2json.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

/* Depth of a value (a scalar is 0, as in yaml2json.c); stops counting past
 * `cap` so that a broken depth limit cannot overflow this stack instead. */
static int depth(const json_t *v, int cap)
{
	if (cap < 0)
		return 0;
	int d = 0;
	size_t i;
	const char *k;
	json_t *c;
	if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, c)
		{
			int cd = depth(c, cap - 1) + 1;
			d = cd > d ? cd : d;
		}
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c)
		{
			int cd = depth(c, cap - 1) + 1;
			d = cd > d ? cd : d;
		}
	}
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *docs = (json_t *)&docs; /* must be overwritten either way */
	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = yaml_to_json_docs((const char *)data, size, &docs, err, sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)), "error message not terminated");
	if (getenv("SVCDNS_FUZZ_TRACE")) { /* what a seed turns into */
		char *t = rc < 0 ? NULL : json_dumps(docs, JSON_COMPACT | JSON_ENCODE_ANY);
		fprintf(stderr, "rc %d: %.2000s\n", rc, rc < 0 ? err : t ? t : "(dump failed)");
		free(t);
	}
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM, "returned %d", rc);
		FUZZ_CHECK(docs == NULL, "a result after an error");
		FUZZ_CHECK(err[0] != '\0', "an error without a message");
		/* Nothing here runs out of memory short of the fuzzer's own limit:
		 * -ENOMEM would tell a user their file is fine and the host is not. */
		FUZZ_CHECK(rc != -ENOMEM, "out of memory reported: %s", err);
		return 0;
	}
	FUZZ_CHECK(rc == 0, "returned %d", rc);
	FUZZ_CHECK(json_is_array(docs), "the result is not an array");

	/* Each document: at most YAML2JSON_MAX_DEPTH containers deep, never null. */
	size_t i;
	json_t *doc;
	json_array_foreach(docs, i, doc)
	{
		FUZZ_CHECK(!json_is_null(doc), "document %zu is null", i);
		int d = depth(doc, YAML2JSON_MAX_DEPTH + 2);
		FUZZ_CHECK(d <= YAML2JSON_MAX_DEPTH, "document %zu is %d levels deep", i, d);
	}

	/* What jansson writes it must read back equal: valid UTF-8 strings,
	 * finite numbers, unique keys. */
	char *text = json_dumps(docs, JSON_COMPACT | JSON_ENCODE_ANY);
	FUZZ_CHECK(text, "json_dumps failed");
	json_error_t jerr;
	json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(back, "jansson cannot read what it wrote: %s", jerr.text);
	FUZZ_CHECK(json_equal(back, docs), "round trip changed the value");
	json_decref(back);
	free(text);
	json_decref(docs);
	return 0;
}
