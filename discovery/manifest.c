/* Manifest files: the bytes of one JSON or YAML file become validated model
 * objects. Validation follows the API server closely enough that a manifest
 * accepted here would be accepted by `kubectl apply`, and every rejection is
 * one log line naming the file, the object and the reason. */
#include "discovery/manifest.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/file.h"
#include "common/jarena.h"
#include "common/log.h"
#include "discovery/manifest_fields.h"
#include "discovery/yaml2json.h"

/* Lists may nest (a List of Lists); real files never go deeper than this. */
#define MAX_LIST_DEPTH 4

/* ---- files ---------------------------------------------------------------- */

void manifest_result_free(struct manifest_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_objs; i++)
		model_object_free(&r->objs[i]);
	free(r->objs);
	for (size_t i = 0; i < r->n_rejected; i++) {
		free(r->rejected[i].ns);
		free(r->rejected[i].name);
	}
	free(r->rejected);
	*r = (struct manifest_result){0};
}

/* A DNS label from a file name: "My_Demo.yaml" -> "my-demo". */
static void file_stem(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	const char *dot = strrchr(base, '.');
	size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < outlen; i++) {
		char ch = (char)tolower((unsigned char)base[i]);
		if (!mf_is_lower_alnum(ch))
			ch = '-';
		if (ch == '-' && (n == 0 || out[n - 1] == '-'))
			continue;
		out[n++] = ch;
	}
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "pod");
}

static int push_obj(struct manifest_result *r, const struct model_object *o, size_t *cap)
{
	if (r->n_objs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct model_object *n = realloc(r->objs, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->objs = n;
		*cap = ncap;
	}
	r->objs[r->n_objs++] = *o;
	return 0;
}

static int push_rejected(struct manifest_result *r, const struct dctx *c)
{
	struct manifest_rejected *n = realloc(r->rejected, (r->n_rejected + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	r->rejected = n;
	struct manifest_rejected *e = &r->rejected[r->n_rejected];
	*e = (struct manifest_rejected){.kind = c->kind};
	if (mf_dup_str(c->ns, &e->ns) < 0 || mf_dup_str(c->name, &e->name) < 0) {
		free(e->ns);
		free(e->name);
		return -ENOMEM;
	}
	r->n_rejected++;
	return 0;
}

/* Flattens List objects (kubectl get -o json/yaml writes them) into `flat`. */
static int expand(json_t *doc, int depth, json_t *flat, char *err, size_t errlen)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	json_t *items = json_object_get(doc, "items");
	size_t klen = kind ? strlen(kind) : 0;

	if (kind && klen >= 4 && strcmp(kind + klen - 4, "List") == 0 && json_is_array(items)) {
		size_t i;
		json_t *it;
		if (depth >= MAX_LIST_DEPTH) {
			snprintf(err, errlen, "Lists nested deeper than %d levels", MAX_LIST_DEPTH);
			return -EINVAL;
		}
		json_array_foreach(items, i, it)
		{
			int rc = json_is_object(it) ? expand(it, depth + 1, flat, err, errlen)
						    : (json_array_append(flat, it) ? -ENOMEM : 0);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	return json_array_append(flat, doc) ? -ENOMEM : 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* Parses the bytes into an array of top-level documents. */
static int parse_docs(const char *path, const char *data, size_t len, json_t **docs, char *err,
		      size_t errlen)
{
	size_t i = 0;
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		i = 3; /* a UTF-8 byte order mark, as some editors write */
	size_t start = i;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	bool json_ext = has_suffix(path, ".json");
	bool looks_json = i < len && (data[i] == '{' || data[i] == '[');

	*docs = NULL;
	if (json_ext || looks_json) {
		json_error_t jerr;
		json_t *v = json_loadb(data + start, len - start, JSON_REJECT_DUPLICATES, &jerr);
		if (v) {
			if (!(*docs = json_array()) || json_array_append_new(*docs, v)) {
				json_decref(*docs);
				*docs = NULL;
				return -ENOMEM;
			}
			return 0;
		}
		if (json_ext) {
			snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column,
				 jerr.text);
			return -EINVAL;
		}
		/* flow-style YAML also starts with '{': let the YAML parser judge */
	}
	return yaml_to_json_docs(data, len, docs, err, errlen);
}

/* Kinds whose Pods a controller would create. svcdns runs no controllers: a
 * Service selecting those Pods gets no endpoints from these objects. */
static bool is_workload_kind(const char *kind)
{
	static const char *const workloads[] = {
	    "Deployment", "StatefulSet",	   "DaemonSet", "ReplicaSet", "Job",
	    "CronJob",	  "ReplicationController",
	};
	for (size_t i = 0; kind && i < sizeof(workloads) / sizeof(workloads[0]); i++)
		if (strcmp(kind, workloads[i]) == 0)
			return true;
	return false;
}

/* One line per file for its workloads (the first named, the rest counted):
 * without it, a Deployment's Service shows endpoints=0/0 and nothing says why. */
static void log_workloads(const char *where, json_t *first, size_t n)
{
	json_t *meta = json_object_get(first, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	char more[64] = "";

	if (n > 1)
		snprintf(more, sizeof(more), " and %zu more workload%s", n - 1, n > 2 ? "s" : "");
	log_warn("%s: %.40s %.63s/%.253s%s: not expanded into Pods (svcdns runs no controllers), "
		 "so Services get no endpoints from Deployments, StatefulSets, DaemonSets, "
		 "ReplicaSets or Jobs; write the Pods or EndpointSlices instead",
		 where, json_string_value(json_object_get(first, "kind")),
		 ns && *ns ? ns : "default", name ? name : "(no name)", more);
}

static int decode_file(const char *path, const char *data, size_t len, struct manifest_result *r)
{
	char where[4200], err[512] = "", stem[64];
	json_t *docs = NULL, *flat = NULL;
	size_t cap = 0, unnamed_pods = 0, n_workloads = 0, i;
	json_t *doc, *first_workload = NULL;
	int rc = 0;

	*r = (struct manifest_result){0};
	snprintf(where, sizeof(where), "manifest %s", path);
	if (len > MANIFEST_MAX_FILE) {
		log_warn("%s: larger than %u bytes, refused", where, MANIFEST_MAX_FILE);
		return -EINVAL;
	}
	if (data && memchr(data, '\0', len)) {
		log_warn("%s: holds a NUL byte (not a text file?), refused", where);
		return -EINVAL;
	}
	if ((rc = parse_docs(path, data ? data : "", data ? len : 0, &docs, err, sizeof(err))) <
	    0) {
		if (rc == -ENOMEM)
			log_error("%s: out of memory", where);
		else
			log_warn("%s: cannot be parsed: %s", where, err);
		goto out;
	}
	if (!(flat = json_array())) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(docs, i, doc)
	{
		if (!json_is_object(doc)) {
			/* not a manifest at all: keep whatever the file held before */
			log_warn("%s: document %zu is %s %s, not an object", where, i + 1,
				 json_is_array(doc) || json_is_integer(doc) ? "an" : "a",
				 mf_jtype(doc));
			rc = -EINVAL;
			goto out;
		}
		if ((rc = expand(doc, 0, flat, err, sizeof(err))) < 0) {
			log_warn("%s: document %zu: %s", where, i + 1, err);
			goto out;
		}
	}

	file_stem(path, stem, sizeof(stem));
	json_array_foreach(flat, i, doc)
	{
		if (is_workload_kind(json_string_value(json_object_get(doc, "kind"))) &&
		    n_workloads++ == 0)
			first_workload = doc;
		struct dctx c = {
		    .where = where, .index = i + 1, .stem = stem, .unnamed_pods = &unnamed_pods};
		struct model_object o = {0};
		int orc = mf_decode_one(&c, doc, &o);
		if (orc == 0) {
			/* Packed now, while the document tree is alive, the object's
			 * pieces are reused by the next object's and the tree frees
			 * into one region that the next file's tree fills again;
			 * packed later by the store, the blocks would land in that
			 * region and break it up (loading took twice as long). If
			 * this fails, the store tries again. */
			(void)model_object_pack(&o);
			if ((rc = push_obj(r, &o, &cap)) < 0) {
				model_object_free(&o);
				goto out;
			}
		} else if (orc == -ENOMEM) {
			rc = orc;
			goto out;
		} else if (orc < 0) {
			r->n_invalid++;
			if (c.kind_known && c.name && (rc = push_rejected(r, &c)) < 0)
				goto out;
		}
	}
	if (n_workloads)
		log_workloads(where, first_workload, n_workloads);
	rc = 0;
out:
	if (rc == -ENOMEM)
		log_error("%s: out of memory", where);
	if (rc < 0)
		manifest_result_free(r);
	json_decref(flat);
	json_decref(docs);
	return rc < 0 && rc != -ENOMEM ? -EINVAL : rc;
}

int manifest_decode(const char *path, const char *data, size_t len, struct manifest_result *r)
{
	/* The file's JSON tree lives only inside decode_file: every value of it
	 * comes from the thread's parse region (common/jarena.h). */
	jarena_begin();
	int rc = decode_file(path, data, len, r);
	jarena_end();
	return rc;
}

int manifest_read_file(const char *path, struct manifest_result *r)
{
	char *buf = NULL;
	size_t len = 0;

	*r = (struct manifest_result){0};
	int rc = file_read_all(path, MANIFEST_MAX_FILE, &buf, &len);
	if (rc == -EFBIG)
		log_warn("manifest %s: larger than %u bytes, refused", path, MANIFEST_MAX_FILE);
	else if (rc == -EINVAL)
		log_warn("manifest %s: not a regular file", path);
	else if (rc < 0)
		log_warn("manifest %s: cannot read: %s", path, strerror(-rc));
	if (rc < 0)
		return rc;
	rc = manifest_decode(path, buf, len, r);
	free(buf);
	return rc;
}
