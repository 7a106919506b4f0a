/* Connection settings for the Kubernetes API: kubeconfig files (YAML, read
 * through yaml2json), the in-cluster service account, command-line overrides,
 * and the bearer token that is read again whenever its file changes. */
#include "discovery/kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/file.h"
#include "common/log.h"
#include "discovery/yaml2json.h"

#define MAX_CONFIG_FILE (4u << 20)
#define MAX_TOKEN_FILE	(64u << 10)

/* Reads a small file whole, NUL-terminated. -EFBIG above `max`. */
static int read_small(const char *path, size_t max, char **out, size_t *out_len)
{
	return file_read_all(path, max, out, out_len);
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int kubeconfig_base64_decode(const char *in, char **out, size_t *len)
{
	size_t n = strlen(in);
	char *buf = malloc(n / 4 * 3 + 4);
	uint32_t acc = 0;
	size_t o = 0, bits = 0, pad = 0, sextets = 0;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
			continue;
		if (*p == '=') {
			pad++;
			continue;
		}
		int v = b64_value(*p);
		if (v < 0 || pad)
			goto bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		sextets++;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)(acc >> bits & 0xff);
		}
	}
	/* Leftover bits must be padding zeros; one leftover sextet is no byte. */
	if (pad > 2 || (pad && (sextets + pad) % 4) || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
		goto bad;
	buf[o] = '\0';
	*out = buf;
	*len = o;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* A path from a kubeconfig is relative to the file's own directory. */
static int resolve_path(const char *dir, const char *p, char **out)
{
	*out = NULL;
	if (!p || !*p)
		return 0;
	if (p[0] == '/')
		return dup_opt(p, out);
	if (asprintf(out, "%s/%s", dir, p) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

void kubeconfig_free(struct kube_conn *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->origin);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->proxy);
	free(c->namespace);
	free(c->token);
	free(c->token_file);
	*c = (struct kube_conn){0};
}

/* The entry of `list` (clusters, users, contexts) whose "name" is `name`. */
static json_t *named(json_t *root, const char *list, const char *name, const char *field)
{
	json_t *arr = json_object_get(root, list), *it;
	size_t i;

	json_array_foreach(arr, i, it)
	{
		const char *n = json_string_value(json_object_get(it, "name"));
		if (n && strcmp(n, name) == 0)
			return json_object_get(it, field);
	}
	return NULL;
}

/* A string field, or NULL; a present field of another type is an error. */
static int str_field(const char *path, const char *what, json_t *obj, const char *key,
		     const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		log_error("kubeconfig %s: %s: %s must be a string", path, what, key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

static int data_field(const char *path, const char *what, json_t *obj, const char *key, char **out,
		      size_t *len)
{
	const char *s;
	int rc = str_field(path, what, obj, key, &s);

	if (rc < 0 || !s)
		return rc;
	rc = kubeconfig_base64_decode(s, out, len);
	if (rc == -EINVAL)
		log_error("kubeconfig %s: %s: %s is not valid base64", path, what, key);
	return rc;
}

/* The cluster's part of a connection: server, CA, proxy. Paths in it are
 * relative to the kubeconfig's directory. */
static int load_cluster(const char *path, const char *dir, const char *name, json_t *cluster,
			struct kube_conn *out)
{
	const char *s;
	char what[300];
	int rc;

	snprintf(what, sizeof(what), "cluster \"%s\"", name);
	if ((rc = str_field(path, what, cluster, "server", &s)) < 0)
		return rc;
	if (!s || !*s) {
		log_error("kubeconfig %s: %s: no server", path, what);
		return -EINVAL;
	}
	if ((rc = dup_opt(s, &out->server)) < 0)
		return rc;
	json_t *insecure = json_object_get(cluster, "insecure-skip-tls-verify");
	out->insecure = json_is_true(insecure);
	if ((rc = str_field(path, what, cluster, "certificate-authority", &s)) < 0 ||
	    (rc = resolve_path(dir, s, &out->ca_file)) < 0 ||
	    (rc = data_field(path, what, cluster, "certificate-authority-data", &out->ca_pem,
			     &out->ca_pem_len)) < 0 ||
	    (rc = str_field(path, what, cluster, "proxy-url", &s)) < 0 ||
	    (rc = dup_opt(s, &out->proxy)) < 0)
		return rc;
	if (json_object_get(cluster, "tls-server-name"))
		log_warn("kubeconfig %s: %s: tls-server-name is not supported; the server's "
			 "certificate must match the host in its URL",
			 path, what);
	return 0;
}

/* The user's part: a token, a token file or a client certificate and key. */
static int load_user(const char *path, const char *dir, const char *name, json_t *user,
		     struct kube_conn *out)
{
	const char *s;
	char what[300];
	int rc;

	snprintf(what, sizeof(what), "user \"%s\"", name);
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
		log_error("kubeconfig %s: %s: exec and auth-provider plugins are not "
			  "supported; use a token, a token file or a client certificate",
			  path, what);
		return -ENOTSUP;
	}
	if (json_object_get(user, "username") || json_object_get(user, "password"))
		log_warn("kubeconfig %s: %s: basic authentication is not supported; "
			 "ignored",
			 path, what);
	if ((rc = str_field(path, what, user, "token", &s)) < 0 ||
	    (rc = dup_opt(s, &out->token)) < 0 ||
	    (rc = str_field(path, what, user, "tokenFile", &s)) < 0 ||
	    (rc = resolve_path(dir, s, &out->token_file)) < 0 ||
	    (rc = str_field(path, what, user, "client-certificate", &s)) < 0 ||
	    (rc = resolve_path(dir, s, &out->cert_file)) < 0 ||
	    (rc = str_field(path, what, user, "client-key", &s)) < 0 ||
	    (rc = resolve_path(dir, s, &out->key_file)) < 0 ||
	    (rc = data_field(path, what, user, "client-certificate-data", &out->cert_pem,
			     &out->cert_pem_len)) < 0 ||
	    (rc = data_field(path, what, user, "client-key-data", &out->key_pem,
			     &out->key_pem_len)) < 0)
		return rc;
	/* client-go: a token given inline wins over tokenFile */
	if (out->token && out->token_file) {
		free(out->token_file);
		out->token_file = NULL;
	}
	if ((out->cert_file || out->cert_pem) != (out->key_file || out->key_pem)) {
		log_error("kubeconfig %s: %s: a client certificate needs its key and the "
			  "other way round",
			  path, what);
		return -EINVAL;
	}
	return 0;
}

int kubeconfig_load(const char *path, const char *context, struct kube_conn *out)
{
	char *text = NULL, *pathcopy = NULL, err[256] = "";
	json_t *docs = NULL;
	size_t len = 0;
	const char *s, *ctx_name, *cluster_name, *user_name;
	int rc;

	*out = (struct kube_conn){0};
	rc = read_small(path, MAX_CONFIG_FILE, &text, &len);
	if (rc < 0) {
		log_error("kubeconfig %s: cannot be read: %s", path, strerror(-rc));
		goto fail;
	}
	rc = yaml_to_json_docs(text, len, &docs, err, sizeof(err));
	if (rc < 0) {
		log_error("kubeconfig %s: not valid YAML: %s", path, err);
		goto fail;
	}
	json_t *root = json_array_get(docs, 0);
	if (!json_is_object(root)) {
		log_error("kubeconfig %s: expected a mapping (kind: Config)", path);
		rc = -EINVAL;
		goto fail;
	}
	ctx_name = context ? context : json_string_value(json_object_get(root, "current-context"));
	if (!ctx_name || !*ctx_name) {
		log_error("kubeconfig %s: no current-context; give --context", path);
		rc = -EINVAL;
		goto fail;
	}
	json_t *ctx = named(root, "contexts", ctx_name, "context");
	if (!json_is_object(ctx)) {
		log_error("kubeconfig %s: no context named \"%s\"", path, ctx_name);
		rc = -ENOENT;
		goto fail;
	}
	cluster_name = json_string_value(json_object_get(ctx, "cluster"));
	user_name = json_string_value(json_object_get(ctx, "user"));
	json_t *cluster = cluster_name ? named(root, "clusters", cluster_name, "cluster") : NULL;
	if (!json_is_object(cluster)) {
		log_error("kubeconfig %s: context \"%s\": no cluster named \"%s\"", path, ctx_name,
			  cluster_name ? cluster_name : "");
		rc = -ENOENT;
		goto fail;
	}
	/* A context without a user is allowed (an unauthenticated API server). */
	json_t *user = user_name && *user_name ? named(root, "users", user_name, "user") : NULL;
	if (user_name && *user_name && !json_is_object(user)) {
		log_error("kubeconfig %s: context \"%s\": no user named \"%s\"", path, ctx_name,
			  user_name);
		rc = -ENOENT;
		goto fail;
	}

	pathcopy = strdup(path);
	if (!pathcopy) {
		rc = -ENOMEM;
		goto fail;
	}
	const char *dir = dirname(pathcopy);

	if ((rc = load_cluster(path, dir, cluster_name, cluster, out)) < 0 ||
	    (user && (rc = load_user(path, dir, user_name, user, out)) < 0))
		goto fail;
	if ((rc = str_field(path, "context", ctx, "namespace", &s)) < 0 ||
	    (rc = dup_opt(s, &out->namespace)) < 0)
		goto fail;
	if (asprintf(&out->origin, "kubeconfig %s context %s", path, ctx_name) < 0) {
		out->origin = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	out->token_dirty = true;
	rc = 0;
	goto done;
fail:
	if (rc == -ENOMEM)
		log_error("kubeconfig %s: out of memory", path);
	kubeconfig_free(out);
done:
	free(pathcopy);
	free(text);
	json_decref(docs);
	return rc;
}

static int trimmed_file(const char *path, size_t max, char **out)
{
	int rc = read_small(path, max, out, NULL);
	if (rc < 0)
		return rc;
	size_t n = strlen(*out);
	while (n && (*out)[n - 1] <= ' ')
		(*out)[--n] = '\0';
	return 0;
}

int kubeconfig_in_cluster(struct kube_conn *out)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("SVCDNS_SERVICEACCOUNT_DIR");
	int rc;

	*out = (struct kube_conn){0};
	if (!dir || !*dir)
		dir = KUBE_SA_DIR;
	if (!host || !*host || !port || !*port) {
		log_error("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
			  "set: not running in a pod? Give --kubeconfig or --api-server");
		return -ENOENT;
	}
	/* An IPv6 service host needs brackets in a URL. */
	bool v6 = strchr(host, ':') != NULL;
	if (asprintf(&out->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) <
		0 ||
	    asprintf(&out->token_file, "%s/token", dir) < 0 ||
	    asprintf(&out->ca_file, "%s/ca.crt", dir) < 0 ||
	    !(out->origin = strdup("in-cluster service account"))) {
		rc = -ENOMEM;
		goto fail;
	}
	if (access(out->token_file, R_OK) < 0 || access(out->ca_file, R_OK) < 0) {
		rc = -errno;
		log_error("in-cluster: %s/token and ca.crt must be readable (%s); is "
			  "automountServiceAccountToken off?",
			  dir, strerror(-rc));
		goto fail;
	}
	char *nsfile = NULL;
	if (asprintf(&nsfile, "%s/namespace", dir) >= 0) {
		if (trimmed_file(nsfile, 256, &out->namespace) < 0)
			out->namespace = NULL; /* only used in logs */
		free(nsfile);
	}
	out->token_dirty = true;
	return 0;
fail:
	if (rc == -ENOMEM)
		log_error("in-cluster: out of memory");
	kubeconfig_free(out);
	return rc;
}

static int replace_str(char **field, const char *value)
{
	char *d = strdup(value);
	if (!d)
		return -ENOMEM;
	free(*field);
	*field = d;
	return 0;
}

int kubeconfig_override(struct kube_conn *c, const char *api_server, const char *token_file,
			const char *ca_file)
{
	int rc = 0;

	if (!c->server && !api_server) {
		log_error("--token-file and --ca-file need --api-server or --kubeconfig");
		return -EINVAL;
	}
	if (api_server) {
		if (strncmp(api_server, "https://", 8) != 0 &&
		    strncmp(api_server, "http://", 7) != 0) {
			log_error("--api-server %s: expected an http:// or https:// URL",
				  api_server);
			return -EINVAL;
		}
		if ((rc = replace_str(&c->server, api_server)) < 0)
			return rc;
		if (!c->origin && (rc = replace_str(&c->origin, "--api-server")) < 0)
			return rc;
	}
	if (token_file) {
		if ((rc = replace_str(&c->token_file, token_file)) < 0)
			return rc;
		free(c->token);
		c->token = NULL;
		c->token_dirty = true;
		if (access(token_file, R_OK) < 0) {
			rc = -errno;
			log_error("--token-file %s: %s", token_file, strerror(-rc));
			return rc;
		}
	}
	if (ca_file) {
		if ((rc = replace_str(&c->ca_file, ca_file)) < 0)
			return rc;
		free(c->ca_pem);
		c->ca_pem = NULL;
		c->ca_pem_len = 0;
		c->insecure = false;
	}
	size_t n = strlen(c->server);
	while (n && c->server[n - 1] == '/')
		c->server[--n] = '\0';
	if (strncmp(c->server, "http://", 7) == 0 && (c->token || c->token_file))
		log_warn("%s: the API server is plain http://: the token is sent unencrypted",
			 c->origin);
	return 0;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

const char *kubeconfig_token(struct kube_conn *c, uint64_t now_ms)
{
	struct stat st;
	char *tok = NULL;

	if (!c->token_file)
		return c->token;
	if (stat(c->token_file, &st) < 0) {
		log_warn("token file %s: %s; keeping the previous token", c->token_file,
			 strerror(errno));
		return c->token;
	}
	bool changed = st.st_dev != c->tf_dev || st.st_ino != c->tf_ino ||
		       st.st_size != c->tf_size || ts_ns(&st.st_mtim) != c->tf_mtime_ns;
	if (!changed && !c->token_dirty && now_ms - c->token_read_ms < KUBE_TOKEN_REREAD_MS)
		return c->token;
	int rc = trimmed_file(c->token_file, MAX_TOKEN_FILE, &tok);
	if (rc < 0 || !*tok) {
		log_warn("token file %s: %s; keeping the previous token", c->token_file,
			 rc < 0 ? strerror(-rc) : "empty");
		free(tok);
		return c->token;
	}
	if (c->token && strcmp(c->token, tok) != 0)
		log_info("token file %s: new token read", c->token_file);
	free(c->token);
	c->token = tok;
	c->tf_dev = st.st_dev;
	c->tf_ino = st.st_ino;
	c->tf_size = st.st_size;
	c->tf_mtime_ns = ts_ns(&st.st_mtim);
	c->token_read_ms = now_ms;
	c->token_dirty = false;
	return c->token;
}

void kubeconfig_token_stale(struct kube_conn *c)
{
	c->token_dirty = true;
}
