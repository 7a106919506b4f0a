/* The watch half of a reflector: one stream of events from the last
 * resourceVersion, each applied to the store as it comes; a 410 sends the
 * reflector back to listing, an ended watch is resumed. */
#include "discovery/kube_reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

/* client-go asks the server to end a watch after 5 to 10 minutes, so that
 * load spreads over the API servers; we do the same. */
#define WATCH_TIMEOUT_MIN_S 300

static enum kube_event_type event_type(const char *s)
{
	for (int t = 0; t < KUBE_EV_TYPES; t++)
		if (s && strcmp(s, kube_event_type_name((enum kube_event_type)t)) == 0)
			return (enum kube_event_type)t;
	return KUBE_EV_TYPES;
}

static int on_event_line(void *arg, const char *line, size_t len)
{
	struct reflector *r = arg;
	json_error_t jerr;
	char ex[120];
	json_t *ev = json_loadb(line, len, 0, &jerr);
	json_t *obj = json_object_get(ev, "object");
	enum kube_event_type t = event_type(json_string_value(json_object_get(ev, "type")));
	int rc = 0;

	if (!json_is_object(obj) || t == KUBE_EV_TYPES) {
		kube_excerpt(line, len, ex, sizeof(ex));
		log_warn("api %s: watch: skipping a line that is not an event (%s): %s", r->d->name,
			 ev ? "no known type or no object" : jerr.text, ex);
		r->bad_lines++;
		goto out;
	}
	r->events[t]++;
	if (t == KUBE_EV_ERROR) {
		long code = (long)json_integer_value(json_object_get(obj, "code"));
		const char *m = json_string_value(json_object_get(obj, "message"));
		kube_excerpt(m ? m : "", m ? strlen(m) : 0, ex, sizeof(ex));
		if (code == 410) {
			log_info("api %s: watch: resourceVersion %s is gone (410: %s); listing "
				 "again",
				 r->d->name, r->rv ? r->rv : "?", ex);
			r->want_relist = true;
		} else {
			log_warn("api %s: watch: ERROR event %ld: %s", r->d->name, code, ex);
			r->watch_failed = "the API server sent an ERROR event";
		}
		rc = -EPROTO; /* ends this watch; its done callback decides what next */
		goto out;
	}
	r->watch_progress = true;
	r->failures = 0;
	json_t *meta = json_object_get(obj, "metadata");
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (t == KUBE_EV_BOOKMARK) {
		if (rv)
			kube_set_str(&r->rv, rv);
		goto out;
	}
	struct ident id;
	int irc = kube_object_ident(r, obj, &id);
	if (irc < 0) {
		kube_excerpt(line, len, ex, sizeof(ex));
		log_warn("api %s: watch: %s event without a usable name: %s", r->d->name,
			 kube_event_type_name(t), ex);
		r->bad_lines++;
	} else if (irc == 0) {
		bool changed = t == KUBE_EV_DELETED ? kube_object_delete(r, &id)
						    : kube_object_upsert(r, obj, &id);
		log_debug("api %s: %s %s rv %s%s", r->d->name, kube_event_type_name(t), id.key,
			  id.rv ? id.rv : "?", changed ? "" : " (no change)");
		if (changed)
			kube_notify(r->ks);
	}
	if (rv)
		kube_set_str(&r->rv, rv);
out:
	json_decref(ev);
	return rc;
}

static int on_watch_data(void *arg, const char *data, size_t len)
{
	struct reflector *r = arg;
	kube_contact_heard(&r->ks->contact, r->res, clock_now_ms());
	int rc = kube_lines_feed(&r->lines, data, len, on_event_line, r);

	if (rc == -E2BIG) {
		log_error("api %s: watch: an event line is longer than %u MiB; reconnecting",
			  r->d->name, KUBE_MAX_LINE >> 20);
		r->watch_failed = "an event line was too long";
	}
	return rc;
}

static void on_watch_done(void *arg, const struct kube_http_result *res)
{
	struct reflector *r = arg;
	char why[600];

	r->req = NULL;
	if (r->lines.len)
		log_info("api %s: watch: stream ended inside an event (%zu bytes dropped); the "
			 "event comes again on resume",
			 r->d->name, r->lines.len);
	kube_lines_reset(&r->lines);
	/* An optional resource gone (its CRD deleted): the list says so. */
	bool gone =
	    r->d->optional && res->curl_code == 0 && (res->status == 404 || res->status == 403);
	if (r->want_relist || res->status == 410 || gone) {
		if (!r->want_relist && !gone)
			log_info("api %s: watch: resourceVersion %s is gone (410); listing again",
				 r->d->name, r->rv ? r->rv : "?");
		r->relists++;
		r->need_list = true;
		free(r->cont);
		r->cont = NULL;
		kube_list_start(r);
		return;
	}
	if (r->watch_failed) {
		kube_retry_later(r, res, "watch", r->watch_failed);
		return;
	}
	if (res->status == 200 && res->curl_code == 0) {
		/* the server ended the watch (timeoutSeconds): resume at once, unless it
		 * keeps ending watches before anything arrives */
		if (r->watch_progress || r->failures == 0) {
			log_debug("api %s: watch ended; resuming from %s", r->d->name, r->rv);
			kube_watch_start(r);
		} else {
			kube_retry_later(r, res, "watch", "ended without an event");
		}
		return;
	}
	if (res->status == 200 && r->watch_progress && !res->timed_out) {
		/* dropped after events: resume from the last one straight away */
		log_info("api %s: watch interrupted (%s); resuming from resourceVersion %s",
			 r->d->name, res->error, r->rv ? r->rv : "?");
		kube_watch_start(r);
		return;
	}
	kube_describe_failure(r, res, why, sizeof(why));
	kube_retry_later(r, res, "watch", why);
}

void kube_watch_start(struct reflector *r)
{
	struct kube_source *ks = r->ks;
	char *pq = NULL, *rv = kube_escape_dup(r->rv ? r->rv : "");
	unsigned tmo = WATCH_TIMEOUT_MIN_S + kube_rand32() % WATCH_TIMEOUT_MIN_S;
	int rc;

	if (!rv) {
		kube_retry_later(r, NULL, "watch", "out of memory");
		return;
	}
	rc = asprintf(
	    &pq, "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u%s%s",
	    r->d->path, rv, tmo, r->d->labelled && ks->labels_q ? "&labelSelector=" : "",
	    r->d->labelled && ks->labels_q ? ks->labels_q : "");
	free(rv);
	if (rc < 0) {
		kube_retry_later(r, NULL, "watch", "out of memory");
		return;
	}
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = ks->o.timeout_ms,
	    /* the server ends the watch after tmo; silence beyond that is a hang */
	    .idle_ms = tmo * 1000u + ks->o.timeout_ms,
	    .on_data = on_watch_data,
	    .on_headers = kube_on_headers,
	    .on_done = on_watch_done,
	    .arg = r,
	    .long_running = true,
	    .slot = kube_http_slot(KUBE_VERB_WATCH, r->res),
	};
	if (r->watched)
		r->watch_restarts++;
	r->watched = true;
	r->watch_progress = false;
	r->watch_failed = NULL;
	kube_lines_reset(&r->lines);
	log_debug("api %s: GET %s", r->d->name, pq);
	rc = kube_http_get(ks->http, &o, &r->req);
	free(pq);
	if (rc < 0)
		kube_retry_later(r, NULL, "watch", strerror(-rc));
}
