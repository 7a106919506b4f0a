/* The operator's side of svcdns on the control loop: HTTP endpoint, ready
 * state, freshness, query log, shutdown in order and reloads. See lifecycle.h. */
#include "daemon/lifecycle.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/metrics_qlog.h"
#include "discovery/kube.h"
#include "daemon/http_views.h"
#include "daemon/options.h"
#include "dns/lifecycle_freshness.h"
#include "resolver/forward.h"
#include "zones/zonefile.h"

#define TICK_MS	       250 /* freshness and readiness */
#define DRAIN_POLL_MS  20
#define DRAIN_MAX_MS   5000  /* in-flight TCP answers get this long after lameduck */
#define CHECK_MAX_MS   10000 /* a --check-config child is killed after this */
#define CONFIG_POLL_MS 1000
#define MAX_ZONES      64
#define MAX_RETIRED    16

/* Settings a reload made, kept until no snapshot built with them remains. */
struct settings {
	struct snapshot_config cfg;
	struct static_zone **zones; /* owned here (the first settings' are main's) */
	size_t n_zones;
	uint64_t first_gen; /* the first snapshot built with them, 0: none yet */
};

struct lifecycle {
	struct lifecycle_options o;
	struct lifecycle_hooks h;
	bool started;
	const struct snapshot_config *first;
	struct settings *cur; /* NULL: the first settings are in force */
	struct settings *retired[MAX_RETIRED];
	size_t n_retired;
	struct metrics *metrics;
	struct views_state st;
	struct http_server *http;
	uv_timer_t tick, qlog, shutdown;
	uv_signal_t sighup;
	uv_timer_t cfg_poll;
	bool cfg_polling;
	struct stat cfg_st; /* the config file as last seen; cfg_seen: it existed */
	bool cfg_seen, cfg_missing_told;
	bool shutting_down, stopping;
	bool handed_over, drain_done;
	uint64_t start_ns;
	uint64_t hold_until_ns; /* --startup-timeout in force until then; 0: over */
	uint64_t drain_deadline;
	uint64_t changed_ns; /* first unserved change, 0: none */
	bool was_ready;
	bool was_stale;
	char last_reason[160];
	/* The options of the last reload applied (owned); NULL: h.opts. */
	struct svcdns_options *applied;
	/* A --check-config child in flight. */
	uv_process_t check;
	uv_pipe_t check_err;
	uv_timer_t check_timer;
	bool checking, check_exited, check_eof, reload_again;
	int64_t check_status;
	int check_signal;
	char check_out[4096];
	size_t check_len;
	char reload_why[64];
	char argv0[256]; /* how getopt names the program in its messages */
};

/* ---- setup --------------------------------------------------------------------- */

static void server_label(const struct dns_listen *listen, size_t n, char *out, size_t cap)
{
	uint16_t port = 53;
	bool same = true;
	for (size_t i = 0; i < n; i++) {
		const struct sockaddr_storage *ss = &listen[i].addr;
		uint16_t p =
		    ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
						   : ((const struct sockaddr_in6 *)ss)->sin6_port);
		if (i && p != port)
			same = false;
		port = i ? port : p;
	}
	if (n && !same)
		snprintf(out, cap, "dns://%s", listen[0].text);
	else
		snprintf(out, cap, "dns://:%u", (unsigned)port);
}

static void zone_labels(struct metrics *m, const struct snapshot_config *cfg)
{
	metrics_zone_add(m, cfg->zone, METRICS_ZONE_CLUSTER);
	metrics_zone_add(m, "svc.", METRICS_ZONE_CLUSTER);
	metrics_zone_add(m, "in-addr.arpa.", METRICS_ZONE_CLUSTER);
	metrics_zone_add(m, "ip6.arpa.", METRICS_ZONE_CLUSTER);
	for (size_t i = 0; i < cfg->n_static_zones; i++)
		if (metrics_zone_add(m, zonefile_origin(cfg->static_zones[i]),
				     METRICS_ZONE_STATIC) == -ENOSPC)
			log_warn("metrics: no zone label left for %s; counted under \".\"",
				 zonefile_origin(cfg->static_zones[i]));
}

int lifecycle_new(const struct lifecycle_options *o, const struct snapshot_config *scfg,
		  const struct dns_listen *listen, size_t n_listen, struct lifecycle **out)
{
	int ret;
	struct lifecycle *lc = calloc(1, sizeof(*lc));
	if (!lc)
		return -ENOMEM;
	lc->o = *o;
	lc->first = scfg;
	if ((ret = metrics_new(&lc->metrics)) < 0)
		goto fail;
	char label[128];
	server_label(listen, n_listen, label, sizeof(label));
	metrics_set_server_label(lc->metrics, label);
	metrics_set_compat(lc->metrics, o->compat);
	metrics_qlog_set(lc->metrics, o->log_queries);
	zone_labels(lc->metrics, scfg);
	if ((ret = views_register(lc->metrics, &lc->st)) < 0)
		goto fail;
	if ((ret = freshness_set_zone(scfg->zone)) < 0)
		goto fail;
	lc->start_ns = uv_hrtime();
	*out = lc;
	return 0;
fail:
	metrics_free(lc->metrics);
	free(lc);
	return ret;
}

struct metrics *lifecycle_metrics(struct lifecycle *lc)
{
	return lc ? lc->metrics : NULL;
}

/* ---- readiness and freshness ---------------------------------------------------- */

static double source_age_s(struct lifecycle *lc, uint64_t *heard_ns)
{
	uint64_t now = uv_hrtime();
	if (!lc->h.kube) {
		*heard_ns = 0;
		return 0;
	}
	double since = kube_source_seconds_since_contact(lc->h.kube);
	/* Never heard from: as old as the process. */
	uint64_t heard = since < 0 ? lc->start_ns : now - (uint64_t)(since * 1e9);
	if (heard == 0)
		heard = 1;
	*heard_ns = heard;
	return (double)(now - heard) / 1e9;
}

/* The resources whose first list has not been applied, for /ready and the
 * log: "services, endpointslices", or why none is named. */
static void unsynced(const struct lifecycle *lc, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (int r = 0; lc->h.kube && r < KUBE_RESOURCES && n < cap; r++)
		if (!kube_resource_synced(lc->h.kube, (enum kube_resource)r))
			n += (size_t)snprintf(buf + n, cap - n, "%s%s",
					      n ? ", " : "not yet listed: ",
					      kube_resource_name((enum kube_resource)r));
	if (!n)
		snprintf(buf, cap, "every resource listed, the snapshot is being built");
}

const char *lifecycle_not_ready(struct lifecycle *lc, char *buf, size_t cap)
{
	char which[128];
	const struct snapshot *s = snapshot_current();
	uint64_t heard;
	double age = source_age_s(lc, &heard);
	if (lc->handed_over)
		snprintf(buf, cap, "handed over to a new process");
	else if (lc->shutting_down)
		snprintf(buf, cap, "shutting down");
	else if (!s)
		snprintf(buf, cap, "no snapshot built yet");
	else if (!s->synced) {
		unsynced(lc, which, sizeof(which));
		snprintf(buf, cap, "waiting for the first full sync with the Kubernetes API (%s)",
			 which);
	} else if (!lc->h.server)
		snprintf(buf, cap, "the DNS listeners are not open");
	else if (lc->o.unready_after_s && lc->h.kube && age > lc->o.unready_after_s)
		snprintf(buf, cap,
			 "no news from the Kubernetes API for %.0f s (--unready-after %u s)", age,
			 lc->o.unready_after_s);
	else
		return NULL;
	return buf;
}

static void retire_settings(struct lifecycle *lc);

/* Contact is proven at least three times per threshold, so that one lost
 * probe never makes a quiet, healthy cluster stale or unready. */
static unsigned probe_ms_for(const struct lifecycle_options *o)
{
	unsigned s = o->stale_after_s;
	if (o->unready_after_s && o->unready_after_s < s)
		s = o->unready_after_s;
	unsigned ms = s * 1000u / 3;
	return ms > 10000 ? 10000 : ms < 250 ? 250 : ms;
}

/* --startup-timeout: cluster names go unanswered until the first sync or the
 * deadline (checked at every tick), then SERVFAIL until synced. */
static void startup_hold_tick(struct lifecycle *lc)
{
	if (!lc->hold_until_ns)
		return;
	const struct snapshot *s = snapshot_current();
	bool synced = s && s->synced;
	if (!synced && uv_hrtime() < lc->hold_until_ns)
		return;
	lc->hold_until_ns = 0;
	freshness_set_startup_hold(false);
	unsigned long long held = (unsigned long long)freshness_startup_held();
	if (!synced) {
		char which[128];
		unsynced(lc, which, sizeof(which));
		log_warn("--startup-timeout %u ms passed before the first full sync with the "
			 "Kubernetes API (%s): cluster names are answered SERVFAIL until it ends "
			 "(%llu queries went unanswered meanwhile)",
			 lc->o.startup_timeout_ms, which, held);
	} else if (held) {
		log_info("first full sync within --startup-timeout: %llu queries for cluster "
			 "names went unanswered before it (their clients ask again)",
			 held);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	uint64_t heard;
	startup_hold_tick(lc);
	if (lc->h.kube)
		kube_source_set_probe_ms(lc->h.kube, probe_ms_for(&lc->o));
	double age = source_age_s(lc, &heard);
	bool stale = lc->h.kube && age > lc->o.stale_after_s;
	freshness_set_heard(heard, stale);
	lc->st.source_age = age;
	lc->st.stale = stale;
	if (stale != lc->was_stale) {
		if (stale)
			log_warn("freshness: no proof of contact with the Kubernetes API for %.0f "
				 "s; cluster answers carry Extended DNS Error 3 (Stale Answer)",
				 age);
		else
			log_info("freshness: the Kubernetes API answers again; answers are fresh");
		lc->was_stale = stale;
	}
	char why[160];
	const char *reason = lifecycle_not_ready(lc, why, sizeof(why));
	lc->st.ready = reason == NULL;
	if (!reason && !lc->was_ready)
		log_info("ready");
	else if (reason && (lc->was_ready || strcmp(reason, lc->last_reason) != 0) &&
		 !lc->shutting_down)
		log_info("not ready: %s", reason);
	lc->was_ready = reason == NULL;
	snprintf(lc->last_reason, sizeof(lc->last_reason), "%s", reason ? reason : "");
	retire_settings(lc);
}

static void on_qlog(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	metrics_qlog_drain(lc->metrics);
}

/* ---- HTTP ---------------------------------------------------------------------- */

static void on_http(void *arg, const char *path, struct http_reply *out)
{
	struct lifecycle *lc = arg;
	char why[200];
	if (strcmp(path, "/metrics") == 0) {
		/* Fresh values for the gauges the tick keeps. */
		on_tick(&lc->tick);
		if (metrics_render(lc->metrics, &out->body, &out->len) < 0) {
			http_reply_text(out, 500, "text/plain; charset=utf-8", "out of memory\n");
			return;
		}
		out->status = 200;
		out->content_type = "text/plain; version=0.0.4; charset=utf-8";
	} else if (strcmp(path, "/health") == 0) {
		http_reply_text(out, 200, "text/plain; charset=utf-8", "OK\n");
	} else if (strcmp(path, "/ready") == 0) {
		const char *reason = lifecycle_not_ready(lc, why, sizeof(why));
		if (!reason) {
			http_reply_text(out, 200, "text/plain; charset=utf-8", "OK\n");
		} else {
			char text[256];
			snprintf(text, sizeof(text), "not ready: %s\n", reason);
			http_reply_text(out, 503, "text/plain; charset=utf-8", text);
		}
	} else if (strcmp(path, "/debug/model") == 0) {
		int ret = views_debug_model(&out->body, &out->len);
		if (ret == 0) {
			out->status = 200;
			out->content_type = "application/json";
		} else {
			http_reply_text(out, ret == -ENOENT ? 503 : 500,
					"text/plain; charset=utf-8",
					ret == -ENOENT ? "no snapshot yet\n" : "out of memory\n");
		}
	} else if (strcmp(path, "/") == 0) {
		http_reply_text(out, 200, "text/plain; charset=utf-8",
				"svcdns: /metrics /health /ready /debug/model\n");
	} else {
		http_reply_text(out, 404, "text/plain; charset=utf-8", "not found\n");
	}
}

/* ---- snapshots ------------------------------------------------------------------- */

const struct snapshot_config *lifecycle_snapshot_config(struct lifecycle *lc,
							const struct snapshot_config *first)
{
	return lc && lc->cur ? &lc->cur->cfg : first;
}

void lifecycle_data_changed(struct lifecycle *lc)
{
	if (lc && !lc->changed_ns)
		lc->changed_ns = uv_hrtime();
}

void lifecycle_published(struct lifecycle *lc, const struct snapshot *s, uint64_t build_ns)
{
	if (!lc)
		return;
	lc->st.builds[s->incremental ? 1 : 0]++;
	views_observe(lc->st.build_hist, &lc->st.build_sum, (double)build_ns / 1e9);
	if (lc->changed_ns) {
		views_observe(lc->st.serve_hist, &lc->st.serve_sum,
			      (double)(uv_hrtime() - lc->changed_ns) / 1e9);
		lc->changed_ns = 0;
	}
	if (lc->cur && !lc->cur->first_gen && s->cfg == &lc->cur->cfg)
		lc->cur->first_gen = s->generation;
}

static void settings_free(struct settings *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_zones; i++)
		zonefile_free(st->zones[i]);
	free(st->zones);
	free(st);
}

/* Settings replaced by a reload are freed once no snapshot can refer to
 * them: the current one was built with newer settings and no older
 * snapshot is left. */
static void retire_settings(struct lifecycle *lc)
{
	if (!lc->n_retired || !lc->cur || !lc->cur->first_gen)
		return;
	const struct snapshot *s = snapshot_current();
	if (!s || s->cfg != &lc->cur->cfg || snapshot_reclaim() != 0)
		return;
	for (size_t i = 0; i < lc->n_retired; i++)
		settings_free(lc->retired[i]);
	lc->n_retired = 0;
}

/* ---- reload ---------------------------------------------------------------------- */

/* Loads the zone files a configuration names into a new settings block.
 * Returns 0, or a negative errno after zonefile_load logged why. */
static int load_settings(struct lifecycle *lc, const struct svcdns_options *no, uint32_t ttl,
			 struct settings **out, char *err, size_t errlen)
{
	const char *const *files = no->zone_files;
	size_t n = no->n_zone_files;
	struct settings *st = calloc(1, sizeof(*st));
	if (!st || n > MAX_ZONES) {
		free(st);
		snprintf(err, errlen, n > MAX_ZONES ? "more than %d zone files" : "out of memory",
			 MAX_ZONES);
		return n > MAX_ZONES ? -E2BIG : -ENOMEM;
	}
	st->cfg = *lifecycle_snapshot_config(lc, lc->first);
	st->cfg.ttl = ttl;
	st->zones = calloc(n ? n : 1, sizeof(*st->zones));
	if (!st->zones) {
		free(st);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char spec[4096];
		snprintf(spec, sizeof(spec), "%s", files[i]);
		char *eq = strchr(spec, '=');
		if (!eq || eq == spec || !eq[1]) {
			snprintf(err, errlen, "--zone-file %s: expected ORIGIN=FILE", files[i]);
			settings_free(st);
			return -EINVAL;
		}
		*eq = '\0';
		if (zonefile_load(spec, eq + 1, &st->zones[st->n_zones]) < 0) {
			snprintf(err, errlen, "--zone-file %s: cannot be loaded", files[i]);
			settings_free(st);
			return -EINVAL;
		}
		st->n_zones++;
	}
	st->cfg.static_zones = (const struct static_zone *const *)st->zones;
	st->cfg.n_static_zones = st->n_zones;
	*out = st;
	return 0;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* What a reload changed, for its log line. */
struct changes {
	char text[512];
	size_t len;
};

static void changed(struct changes *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void changed(struct changes *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (c->len < sizeof(c->text))
		c->len += (size_t)vsnprintf(c->text + c->len, sizeof(c->text) - c->len, fmt, ap);
	va_end(ap);
}

/* The options the table marks reloadable that live in the lifecycle. */
static void apply_lifecycle(struct lifecycle *lc, const struct svcdns_options *no,
			    struct changes *c)
{
	struct lifecycle_options lo = no->lc;
	lo.http = lc->o.http; /* not reloadable: the endpoint stays */
	if (no->log_level != (int)log_get_level())
		changed(c, " log-level=%s", level_names[no->log_level & 3]);
	log_set_level((enum log_level)no->log_level);
	if (lo.log_queries != lc->o.log_queries) {
		changed(c, " log-queries=%s", lo.log_queries ? "on" : "off");
		metrics_qlog_set(lc->metrics, lo.log_queries);
		if (lo.log_queries)
			uv_timer_start(&lc->qlog, on_qlog, QLOG_DRAIN_MS, QLOG_DRAIN_MS);
		else
			uv_timer_stop(&lc->qlog);
	}
	if (lo.compat != lc->o.compat)
		changed(c, " metrics-compat=%s", lo.compat ? "coredns" : "none");
	metrics_set_compat(lc->metrics, lo.compat);
	if (lo.stale_after_s != lc->o.stale_after_s ||
	    lo.unready_after_s != lc->o.unready_after_s || lo.lameduck_ms != lc->o.lameduck_ms)
		changed(c, " stale-after=%us unready-after=%us lameduck=%ums", lo.stale_after_s,
			lo.unready_after_s, lo.lameduck_ms);
	lc->o = lo;
}

/* Applies a configuration that --check-config accepted: the options the
 * table marks reloadable take effect, a change to any other is named. */
static int apply(struct lifecycle *lc, char *err, size_t errlen)
{
	struct svcdns_options *no = NULL;
	struct settings *st = NULL;
	struct changes c = {.len = 0};
	char restart[512];
	int ret;

	/* Read exactly as at a start; every value is valid before any applies. */
	if ((ret = options_load(lc->h.opts->argc, lc->h.opts->argv, &no, err, errlen)) < 0)
		goto out;
	const struct snapshot_config *cur = lifecycle_snapshot_config(lc, lc->first);
	if (no->ttl != cur->ttl || no->n_zone_files > 0 || cur->n_static_zones > 0) {
		if ((ret = load_settings(lc, no, no->ttl, &st, err, errlen)) < 0)
			goto out;
	}
	apply_lifecycle(lc, no, &c);
	if (st) {
		if (no->ttl != cur->ttl)
			changed(&c, " ttl=%u", no->ttl);
		if (st->n_zones || cur->n_static_zones)
			changed(&c, " zone-files=%zu(re-read)", st->n_zones);
		zone_labels(lc->metrics, &st->cfg);
		if (lc->cur && lc->n_retired < MAX_RETIRED)
			lc->retired[lc->n_retired++] = lc->cur;
		else if (lc->cur)
			log_warn(
			    "reload: too many reloads in a row; keeping old zone data in memory");
		lc->cur = st;
		st = NULL;
		lc->h.rebuild(lc->h.arg);
	}
	size_t n_restart = options_restart_needed(lc->applied ? lc->applied : lc->h.opts, no,
						  restart, sizeof(restart));
	options_free(lc->applied);
	lc->applied = no;
	no = NULL;
	if (c.len == 0 && n_restart == 0)
		log_info("reload (%s): nothing changed", lc->reload_why);
	else
		log_info("reload (%s): applied%s", lc->reload_why, c.len ? c.text : " nothing");
	if (n_restart)
		log_warn("reload (%s): these options changed but take effect only at a restart:%s",
			 lc->reload_why, restart);
	ret = 0;
out:
	settings_free(st);
	options_free(no);
	return ret;
}

static void reload_start(struct lifecycle *lc, const char *why);

static void check_done(struct lifecycle *lc)
{
	char err[512] = "";
	if (!lc->check_exited || !lc->check_eof)
		return;
	lc->checking = false;
	uv_timer_stop(&lc->check_timer);
	lc->check_out[lc->check_len] = '\0';
	/* What the check said is wrong: its error lines ("svcdns: ..." from the
	 * option parser, "[error]" log lines), joined into one log line. */
	char why[sizeof(lc->check_out)] = "";
	size_t wl = 0;
	for (char *line = lc->check_out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		const char *msg = strstr(line, "[error] ") ? strstr(line, "[error] ") + 8 : NULL;
		size_t al = strlen(lc->argv0);
		if (strncmp(line, "svcdns: ", 8) == 0)
			msg = line + 8;
		else if (al && strncmp(line, lc->argv0, al) == 0 &&
			 strncmp(line + al, ": ", 2) == 0)
			msg = line + al + 2; /* getopt's own messages */
		if (msg)
			wl += (size_t)snprintf(why + wl, sizeof(why) - wl, "%s%s", wl ? "; " : "",
					       msg);
		if (wl >= sizeof(why))
			break;
	}
	if (lc->shutting_down)
		return;
	if (lc->check_status != 0 || lc->check_signal) {
		lc->st.reloads_failed++;
		log_error("reload (%s) rejected, the running configuration stays: %s",
			  lc->reload_why,
			  wl ? why
			     : (lc->check_signal ? "the check was killed"
						 : "the configuration check failed"));
	} else if (apply(lc, err, sizeof(err)) < 0) {
		lc->st.reloads_failed++;
		log_error("reload (%s) rejected, the running configuration stays: %s",
			  lc->reload_why, err);
	} else {
		lc->st.reloads_ok++;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		lc->st.last_reload = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	if (lc->reload_again) {
		lc->reload_again = false;
		reload_start(lc, "changed again during a reload");
	}
}

static void on_check_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_check_exit(uv_process_t *p, int64_t status, int signum)
{
	struct lifecycle *lc = p->data;
	lc->check_status = status;
	lc->check_signal = signum;
	lc->check_exited = true;
	uv_close((uv_handle_t *)p, on_check_closed);
	check_done(lc);
}

static void on_check_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct lifecycle *lc = h->data;
	static char discard[1024];
	(void)suggested;
	/* Keep the beginning: the reason comes first, the usage text after it. */
	size_t room = sizeof(lc->check_out) - 1 - lc->check_len;
	buf->base = room ? lc->check_out + lc->check_len : discard;
	buf->len = room ? room : sizeof(discard);
}

static void on_check_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct lifecycle *lc = s->data;
	if (nread > 0) {
		if (buf->base != lc->check_out + lc->check_len)
			return; /* past what is kept */
		lc->check_len += (size_t)nread;
		return;
	}
	if (nread < 0) {
		lc->check_eof = true;
		uv_close((uv_handle_t *)s, on_check_closed);
		check_done(lc);
	}
}

static void on_check_timeout(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	if (lc->checking && !lc->check_exited)
		uv_process_kill(&lc->check, SIGKILL);
}

/* A reload first runs `svcdns --check-config` with the new configuration: the
 * very parser a restart would use checks every option, without this process
 * changing anything. Only then is what can change applied here. */
static void reload_start(struct lifecycle *lc, const char *why)
{
	int oac = lc->h.opts->argc;
	char *const *oav = lc->h.opts->argv;
	if (lc->shutting_down)
		return;
	if (lc->checking) {
		lc->reload_again = true;
		return;
	}
	snprintf(lc->reload_why, sizeof(lc->reload_why), "%s", why);
	log_info("reload (%s): checking the configuration", why);
	snprintf(lc->argv0, sizeof(lc->argv0), "%s", oav[0]);
	char **args = calloc((size_t)oac + 2, sizeof(*args));
	if (!args) {
		log_error("reload (%s): out of memory", why);
		return;
	}
	args[0] = oav[0];
	args[1] = "--check-config";
	memcpy(args + 2, oav + 1, (size_t)(oac - 1) * sizeof(*args));
	uv_pipe_init(lc->h.loop, &lc->check_err, 0);
	lc->check_err.data = lc;
	uv_stdio_container_t stdio[3] = {
	    {.flags = UV_IGNORE},
	    {.flags = UV_IGNORE},
	    {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
	     .data.stream = (uv_stream_t *)&lc->check_err},
	};
	uv_process_options_t po = {
	    .exit_cb = on_check_exit,
	    .file = "/proc/self/exe",
	    .args = args,
	    .stdio_count = 3,
	    .stdio = stdio,
	};
	lc->check.data = lc;
	lc->check_len = 0;
	lc->check_exited = lc->check_eof = false;
	int ret = uv_spawn(lc->h.loop, &lc->check, &po);
	free(args);
	if (ret < 0) {
		log_error("reload (%s): cannot run the configuration check (%s)", why,
			  uv_strerror(ret));
		uv_close((uv_handle_t *)&lc->check_err, on_check_closed);
		uv_close((uv_handle_t *)&lc->check, on_check_closed);
		lc->st.reloads_failed++;
		return;
	}
	lc->checking = true;
	uv_read_start((uv_stream_t *)&lc->check_err, on_check_alloc, on_check_read);
	uv_timer_start(&lc->check_timer, on_check_timeout, CHECK_MAX_MS, 0);
}

static void on_sighup(uv_signal_t *h, int signum)
{
	(void)signum;
	reload_start(h->data, "SIGHUP");
}

/* The config file's identity and times: a rewrite in place changes mtime or
 * size, an atomic replace the inode. */
static bool cfg_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Compared with what was seen at start, taken before the listeners open:
 * uv_fs_poll takes its first look later, from the thread pool, so a change
 * written right after svcdns first answered could go unnoticed. A stat of one
 * local file a second is nothing on the loop thread. */
static void on_cfg_poll(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	struct stat st;
	if (stat(lc->h.opts->config, &st) < 0) {
		if (!lc->cfg_missing_told)
			log_warn("config %s: %s; the running configuration stays",
				 lc->h.opts->config, strerror(errno));
		lc->cfg_missing_told = true;
		lc->cfg_seen = false;
		return;
	}
	lc->cfg_missing_told = false;
	if (lc->cfg_seen && cfg_same(&st, &lc->cfg_st))
		return;
	lc->cfg_st = st;
	lc->cfg_seen = true;
	reload_start(lc, "config file changed");
}

/* ---- start and stop --------------------------------------------------------------- */

int lifecycle_start(struct lifecycle *lc, const struct lifecycle_hooks *h)
{
	int ret;
	lc->h = *h;
	lc->st.kube = h->kube;
	lc->st.fwd = h->fwd;
	lc->st.proxy = h->proxy;
	lc->st.pipeline = h->pipeline;
	if (h->kube && lc->o.startup_timeout_ms) {
		lc->hold_until_ns = lc->start_ns + (uint64_t)lc->o.startup_timeout_ms * 1000000u;
		freshness_set_startup_hold(true);
	}
	if (lc->o.http) {
		struct http_config hc = {
		    .listen = lc->o.http, .fd = h->http_fd, .handler = on_http, .arg = lc};
		if ((ret = http_start(h->loop, &hc, &lc->http)) < 0)
			return ret;
	}
	uv_timer_init(h->loop, &lc->tick);
	uv_timer_init(h->loop, &lc->qlog);
	uv_timer_init(h->loop, &lc->shutdown);
	uv_timer_init(h->loop, &lc->check_timer);
	uv_signal_init(h->loop, &lc->sighup);
	lc->tick.data = lc->qlog.data = lc->shutdown.data = lc->check_timer.data = lc;
	lc->sighup.data = lc;
	uv_timer_start(&lc->tick, on_tick, 0, TICK_MS);
	if (lc->o.log_queries)
		uv_timer_start(&lc->qlog, on_qlog, QLOG_DRAIN_MS, QLOG_DRAIN_MS);
	uv_signal_start(&lc->sighup, on_sighup, SIGHUP);
	if (h->opts->config) {
		uv_timer_init(h->loop, &lc->cfg_poll);
		lc->cfg_poll.data = lc;
		lc->cfg_seen = stat(h->opts->config, &lc->cfg_st) == 0;
		uv_timer_start(&lc->cfg_poll, on_cfg_poll, CONFIG_POLL_MS, CONFIG_POLL_MS);
		lc->cfg_polling = true;
	}
	lc->started = true;
	return 0;
}

void lifecycle_set_server(struct lifecycle *lc, struct dns_server *server)
{
	lc->h.server = server;
}

static void finish(struct lifecycle *lc)
{
	if (lc->stopping)
		return;
	lc->stopping = true;
	lc->h.stop(lc->h.arg);
}

/* Forwarded queries still waiting for their upstream: their answers go out
 * through the listening sockets, which stay open until the stop. */
static uint64_t forward_in_flight(const struct lifecycle *lc)
{
	struct forward_stats fs = {0};
	if (lc->h.fwd)
		forward_stats_get(lc->h.fwd, &fs);
	return fs.in_flight;
}

static void on_drain_poll(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	bool drained = !lc->h.server || dns_server_drained(lc->h.server);
	bool late = uv_hrtime() > lc->drain_deadline;
	if (drained && forward_in_flight(lc) == 0)
		log_info("drained: every answer in flight was sent%s",
			 lc->shutting_down ? "; exiting" : "; waiting for SIGTERM to exit");
	else if (late)
		log_warn("drain: answers still in flight after %u ms; %s", DRAIN_MAX_MS,
			 lc->shutting_down ? "exiting anyway" : "waiting for SIGTERM to exit");
	else
		return;
	uv_timer_stop(&lc->shutdown);
	lc->drain_done = true;
	if (lc->shutting_down)
		finish(lc);
}

static void on_lameduck_over(uv_timer_t *t)
{
	struct lifecycle *lc = t->data;
	if (lc->h.server) {
		dns_server_drain(lc->h.server);
		lc->drain_deadline = uv_hrtime() + (uint64_t)DRAIN_MAX_MS * 1000000u;
	}
	uv_timer_start(&lc->shutdown, on_drain_poll, 0, DRAIN_POLL_MS);
}

void lifecycle_shutdown(struct lifecycle *lc, int signum)
{
	if (lc->stopping)
		return;
	if (lc->shutting_down || (lc->handed_over && lc->drain_done)) {
		log_info(lc->handed_over ? "signal %d: exiting (handed over)"
					 : "signal %d again: stopping now",
			 signum);
		finish(lc);
		return;
	}
	if (lc->handed_over) {
		/* The drain in progress ends the process once it is over. */
		lc->shutting_down = lc->st.shutting_down = true;
		log_info("signal %d: exiting once drained (handed over)", signum);
		return;
	}
	lc->shutting_down = lc->st.shutting_down = true;
	lc->st.ready = false;
	/* Lameduck exists so that readiness probes take this instance out of the
	 * Service before it stops answering; without --http nothing can see the
	 * readiness change, and waiting would only delay the exit. */
	unsigned ms = signum == SIGTERM && lc->http ? lc->o.lameduck_ms : 0;
	if (ms)
		log_info("signal %d: not ready; answering queries for %u ms more (lameduck)",
			 signum, ms);
	else
		log_info("signal %d: shutting down", signum);
	if (!lc->started) {
		finish(lc);
		return;
	}
	uv_timer_start(&lc->shutdown, on_lameduck_over, ms, 0);
}

void lifecycle_handed_over(struct lifecycle *lc)
{
	if (lc->handed_over || lc->stopping || !lc->started)
		return;
	lc->handed_over = true;
	lc->st.ready = false;
	/* The new process has the same HTTP socket: probes and scrapes go to it. */
	http_stop(lc->http);
	lc->http = NULL;
	log_info("handover: draining; the new process answers from now on");
	uv_timer_stop(&lc->shutdown);
	on_lameduck_over(&lc->shutdown);
}

int lifecycle_http_fd(const struct lifecycle *lc)
{
	return lc->http ? http_listener_fd(lc->http) : -1;
}

void lifecycle_stop(struct lifecycle *lc)
{
	if (!lc || !lc->started)
		return;
	http_stop(lc->http);
	lc->http = NULL;
	/* What the query log still holds is written before the exit. */
	metrics_qlog_drain(lc->metrics);
	uv_close((uv_handle_t *)&lc->tick, NULL);
	uv_close((uv_handle_t *)&lc->qlog, NULL);
	uv_close((uv_handle_t *)&lc->shutdown, NULL);
	uv_close((uv_handle_t *)&lc->check_timer, NULL);
	uv_close((uv_handle_t *)&lc->sighup, NULL);
	if (lc->cfg_polling)
		uv_close((uv_handle_t *)&lc->cfg_poll, NULL);
	if (lc->checking) {
		if (!lc->check_exited) {
			uv_process_kill(&lc->check, SIGKILL);
			uv_close((uv_handle_t *)&lc->check, on_check_closed);
		}
		if (!lc->check_eof)
			uv_close((uv_handle_t *)&lc->check_err, on_check_closed);
	}
	lc->started = false;
}

void lifecycle_free(struct lifecycle *lc)
{
	if (!lc)
		return;
	for (size_t i = 0; i < lc->n_retired; i++)
		settings_free(lc->retired[i]);
	settings_free(lc->cur);
	options_free(lc->applied);
	metrics_free(lc->metrics);
	free(lc);
}
