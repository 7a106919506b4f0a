/* YAML to JSON: turns a YAML stream (one or more documents) into jansson values
 * so that manifests are validated by one code path whatever their format.
 *
 * Owns: scalar resolution (YAML 1.2 core schema), anchors/aliases with limits
 * against alias bombs, and error positions. Must never: know about Kubernetes. */
#ifndef SVCDNS_YAML2JSON_H
#define SVCDNS_YAML2JSON_H

#include <stddef.h>

#include <jansson.h>

/* Limits on what one stream may expand to; aliases count with their copies. */
#define YAML2JSON_MAX_NODES 1000000u
#define YAML2JSON_MAX_DEPTH 64

/* Parses data[0..len) as a YAML stream. On success returns 0 and *out_array is
 * a new JSON array with one element per non-empty document, in order. On
 * failure returns -EINVAL (or -ENOMEM), *out_array is NULL and err holds a
 * one-line message with line and column ("line 3 column 5: ..."). */
int yaml_to_json_docs(const char *data, size_t len, json_t **out_array, char *err, size_t errlen);

#endif
