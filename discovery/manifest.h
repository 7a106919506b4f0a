/* Manifest files: JSON or YAML documents as kubectl reads and writes them.
 *
 * Owns: turning the bytes of one file into model objects (single objects, List
 * objects, multi-document YAML), validating each object the way the API server
 * would, and watching a directory so that a changed file swaps its objects.
 * Must never: build snapshots or touch DNS; it only feeds the model store.
 *
 * Every problem is logged once, naming the file, the object (kind ns/name, or
 * its index in the file) and the reason. */
#ifndef SVCDNS_MANIFEST_H
#define SVCDNS_MANIFEST_H

#include <stddef.h>

#include <uv.h>

#include "discovery/model.h"

/* Files larger than this are refused with a clear error. */
#define MANIFEST_MAX_FILE (16u << 20)

/* The result of decoding one file. */
struct manifest_result {
	struct model_object *objs; /* valid objects, in file order */
	size_t n_objs;
	size_t n_invalid; /* objects rejected (each already logged) */
	/* Identities of rejected objects that could be named (kind/ns/name), so that
	 * the caller can carry their previous version forward. */
	struct manifest_rejected {
		enum model_kind kind;
		char *ns;
		char *name;
	} * rejected;
	size_t n_rejected;
};

void manifest_result_free(struct manifest_result *r);

/* Decodes a buffer holding a file's contents. `path` names the file in logs
 * and decides the format (.json, otherwise YAML; YAML is a superset of JSON, so
 * content wins when it starts with '{' or '['). Returns 0 when the file could
 * be read as a whole (individual objects may still be rejected: see
 * r->n_invalid), or -EINVAL when the file cannot be parsed at all (logged; r is
 * left empty). Never crashes on any input. */
int manifest_decode(const char *path, const char *data, size_t len, struct manifest_result *r);

/* Reads and decodes one file (refusing files over MANIFEST_MAX_FILE and files
 * holding NUL bytes). Same return convention as manifest_decode, plus -errno
 * for I/O errors. */
int manifest_read_file(const char *path, struct manifest_result *r);

/* Decodes one object that is already a jansson value (the API source reuses
 * this). `where` names the origin in logs. On success *out holds the object
 * and 0 is returned; 1 means "ignored kind" (logged at debug); negative means
 * invalid (logged, with the reason). */
struct json_t;
int manifest_decode_object(const char *where, struct json_t *obj, struct model_object *out);
/* The same for an item of a list, which has neither kind nor apiVersion: these
 * stand in for whichever is absent. Adding them to the item would cost a
 * tenth of its decoding. */
int manifest_decode_item(const char *where, struct json_t *obj, const char *kind,
			 const char *api_version, struct model_object *out);
/* The same for a Pod of the API watched only for its address (--pods
 * verified): only its namespace, name, phase and addresses are kept, so that
 * 150,000 Pods cost little; 1 (nothing to store) for a Pod that is Succeeded or
 * Failed or has no address yet. */
int manifest_decode_pod_addrs(const char *where, struct json_t *obj, struct model_object *out);

/* ---- the directory source ------------------------------------------------ */
struct manifest_dir;

/* Called on the loop thread after the store changed. */
typedef void (*manifest_changed_cb)(void *arg);

/* Loads DIR into the store now (synchronously, sorted by file name), then
 * watches it: inotify for latency plus a periodic rescan as a safety net.
 * Returns 0, or a negative code when DIR cannot be read at all (logged, with
 * the reason: the caller has nothing to add). */
int manifest_dir_start(uv_loop_t *loop, const char *dir, struct model_store *store,
		       manifest_changed_cb cb, void *arg, struct manifest_dir **out);
void manifest_dir_stop(struct manifest_dir *md);

#endif
