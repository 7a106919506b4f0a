/* Decoding manifests, shared by its parts: manifest_fields.c (typed field
 * access and the API server's name rules), manifest_service.c,
 * manifest_slice.c, manifest_pod.c and manifest_import.c (one kind each), manifest_object.c (one
 * object: kind, metadata, Namespace) and manifest.c (files of documents).
 *
 * Owns: the decoding context of one object (struct dctx) and the limits that
 * bound the work per object. Must never: keep anything between calls; every
 * rejection is logged once, through mf_bad(), naming the object. Callable from
 * any thread (the API source decodes list pages in the thread pool).
 * Internal to discovery/. */
#ifndef SVCDNS_MANIFEST_FIELDS_H
#define SVCDNS_MANIFEST_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "discovery/model.h"

/* API server limits that also bound our work per object. */
#define MAX_SLICE_ENDPOINTS 1000
#define MAX_ENDPOINT_ADDRS  100
#define MAX_PORTS	    1000

/* Where one object comes from and what it is called, for log lines. */
struct dctx {
	const char *where;     /* "manifest demo.yaml", or the API source's name */
	size_t index;	       /* 1-based position in the file, 0 when unknown */
	const char *stem;      /* file stem for generated Pod names, or NULL */
	size_t *unnamed_pods;  /* Pods given a generated name so far in this file */
	const char *kind_name; /* as written, once read; NULL before */
	const char *dflt_kind; /* for an object without kind (a list item), or NULL */
	const char *dflt_api;  /* likewise for apiVersion */
	char id[400];	       /* mf_ctx_id()'s buffer */
	bool kind_known;
	enum model_kind kind;
	const char *ns;	  /* borrowed from the JSON (or "default") */
	const char *name; /* borrowed, or generated_name */
	char generated_name[80];
	/* What happens because of the next rejection, when it is not the whole
	 * object ("only this endpoint is dropped"); NULL otherwise. */
	const char *consequence;
	bool pod_addrs_only; /* manifest_decode_pod_addrs */
};

/* "Service default/web", "object #3", for a log line. */
const char *mf_ctx_id(struct dctx *c);
/* Logs why the object (or the part c->consequence names) is rejected;
 * returns -EINVAL. */
int mf_bad(struct dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "object", "string", ...: what a JSON value is, for a log line. */
const char *mf_jtype(const json_t *v);

/* ---- name rules (k8s.io/apimachinery/pkg/util/validation) ---------------- */

static inline bool mf_is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

bool mf_is_dns1123_label(const char *s);
bool mf_is_dns1035_label(const char *s);
bool mf_is_dns1123_subdomain(const char *s);
/* IANA_SVC_NAME: what a named port may be called. */
bool mf_is_iana_svc_name(const char *s);
/* A label key: a qualified name with an optional DNS-subdomain prefix. */
bool mf_is_label_key(const char *s);
/* A label value: empty, or at most 63 alphanumerics, '-', '_', '.' that
 * start and end alphanumeric. */
bool mf_is_label_value(const char *s);

/* ---- typed field access; each failure is logged once and returns -EINVAL --- */

static inline bool mf_absent(const json_t *v)
{
	return !v || json_is_null(v);
}

/* A string field: NULL when absent or null. */
int mf_get_str(struct dctx *c, const json_t *v, const char *path, const char **out);
int mf_get_bool(struct dctx *c, const json_t *v, const char *path, bool dflt, bool *out);
/* An object field: NULL when absent or null. */
int mf_get_obj(struct dctx *c, const json_t *v, const char *path, json_t **out);
/* An array field: NULL when absent or null; at most `max` items. */
int mf_get_arr(struct dctx *c, const json_t *v, const char *path, size_t max, json_t **out);
/* A port number given as a JSON integer in 1..65535. */
int mf_get_port(struct dctx *c, const json_t *v, const char *path, uint16_t *out);
/* TCP when absent. */
int mf_get_proto(struct dctx *c, const json_t *v, const char *path, uint8_t *out);
/* A string-to-string map: labels, or a selector (`why` explains the rule). */
int mf_get_labels(struct dctx *c, const json_t *v, const char *path, const char *why,
		  struct model_labels *out);
void mf_labels_free(struct model_labels *l);
/* One address, of either family. */
int mf_parse_ip(struct dctx *c, const char *text, const char *path, struct net_addr *out);
/* A copy of s (NULL for NULL); -ENOMEM. */
int mf_dup_str(const char *s, char **out);
/* An RFC 3339 time ("2024-05-01T10:00:00Z", fractions of a second and
 * offsets included) in milliseconds since the epoch; 0 when s is not one. */
int64_t mf_rfc3339_ms(const char *s);

/* Field paths for error messages are made for every field, as each one may
 * be needed; by hand, because snprintf for each was a tenth of decoding a
 * large list. Both truncate as snprintf would. */
static inline void mf_path_join(char *out, size_t cap, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la >= cap)
		la = cap - 1;
	memcpy(out, a, la);
	if (lb >= cap - la)
		lb = cap - la - 1;
	memcpy(out + la, b, lb);
	out[la + lb] = '\0';
}

static inline void mf_path_index(char *out, size_t cap, const char *base, size_t i)
{
	char num[24];
	size_t n = sizeof(num);

	num[--n] = '\0';
	num[--n] = ']';
	do
		num[--n] = (char)('0' + i % 10);
	while ((i /= 10) && n > 1);
	num[--n] = '[';
	mf_path_join(out, cap, base, num + n);
}

/* ---- the kinds -------------------------------------------------------------
 * Each decodes the rest of an object whose kind, metadata and name
 * mf_decode_one has checked. Return 0 or a negative code (logged). */
int mf_decode_service(struct dctx *c, const json_t *obj, struct model_service **out);
int mf_decode_slice(struct dctx *c, const json_t *obj, struct model_slice **out);
int mf_decode_pod(struct dctx *c, const json_t *obj, struct model_pod **out);
/* A ServiceImport, as a model_service with imported set (manifest_import.c). */
int mf_decode_import(struct dctx *c, const json_t *obj, struct model_service **out);
/* Namespace, name, phase and addresses only; 1 when the Pod does not count
 * (Succeeded, Failed, or no address). */
int mf_decode_pod_addrs(struct dctx *c, const json_t *obj, struct model_pod **out);

/* Decodes one object; c->kind_known/ns/name tell the caller who was
 * rejected. Returns 0, 1 for an ignored kind, or a negative code. */
int mf_decode_one(struct dctx *c, json_t *obj, struct model_object *out);

#endif
