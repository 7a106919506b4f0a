/* How to reach the Kubernetes API server: the in-cluster service account, a
 * kubeconfig file (a context of it), or --api-server/--token-file/--ca-file.
 *
 * Owns: reading those sources into one connection description, decoding the
 * *-data fields, resolving relative paths, and keeping the bearer token fresh
 * (a token file is read again when it changes: bound service-account tokens
 * rotate). Must never: open connections or log a token's value. */
#ifndef SVCDNS_KUBECONFIG_H
#define SVCDNS_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where the service-account files live in a pod. The environment variable
 * SVCDNS_SERVICEACCOUNT_DIR replaces it (tests run "in a pod" that way). */
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* A token file is also read again after this long even if it looks unchanged
 * (client-go does the same once a minute). */
#define KUBE_TOKEN_REREAD_MS 60000

struct kube_conn {
	char *server;  /* "https://host:port[/prefix]", no trailing '/' */
	char *origin;  /* for logs: "in-cluster", "kubeconfig F context C", "--api-server" */
	bool insecure; /* insecure-skip-tls-verify */
	char *ca_file; /* PEM file, or NULL */
	char *ca_pem;  /* certificate-authority-data, decoded, or NULL */
	size_t ca_pem_len;
	char *cert_file, *key_file; /* client certificate and key files, or NULL */
	char *cert_pem, *key_pem;   /* the same from *-data fields */
	size_t cert_pem_len, key_pem_len;
	char *proxy;	 /* proxy-url or NULL */
	char *namespace; /* the pod's or the context's namespace, or NULL */

	/* bearer token: either fixed (kubeconfig "token") or read from a file */
	char *token;
	char *token_file;
	bool token_dirty;	/* read the file again before the next request */
	uint64_t token_read_ms; /* monotonic time of the last read */
	dev_t tf_dev;
	ino_t tf_ino;
	off_t tf_size;
	int64_t tf_mtime_ns;
};

/* Each loader fills *out (zeroed first) and returns 0, or logs the reason
 * (naming the file and the field) and returns a negative error code with *out
 * left empty. */
int kubeconfig_load(const char *path, const char *context, struct kube_conn *out);
int kubeconfig_in_cluster(struct kube_conn *out);

/* Applies the command-line overrides (each may be NULL) on top of whatever
 * was loaded, as kubectl's --server/--token/--certificate-authority do. With
 * no base configuration, api_server is required. */
int kubeconfig_override(struct kube_conn *c, const char *api_server, const char *token_file,
			const char *ca_file);

void kubeconfig_free(struct kube_conn *c);

/* The token to send now (NULL when there is none): a token file is read again
 * when its inode, size or mtime changed, when kubeconfig_token_stale() was
 * called, or every KUBE_TOKEN_REREAD_MS. A file that cannot be read keeps
 * the previous token (logged once per failure). now_ms is a monotonic clock. */
const char *kubeconfig_token(struct kube_conn *c, uint64_t now_ms);
/* The API server rejected the token: read the file again before next use. */
void kubeconfig_token_stale(struct kube_conn *c);

/* Standard base64 (whitespace ignored). Returns the decoded length in *len,
 * NUL-terminated in a new buffer, or -EINVAL/-ENOMEM. Exposed for tests. */
int kubeconfig_base64_decode(const char *in, char **out, size_t *len);

#endif
