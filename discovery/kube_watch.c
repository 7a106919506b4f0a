/* The watch half of a reflector: one stream of events from the last
 * resourceVersion, each applied to the store as it comes; a 410 sends the
 * reflector back to listing, an ended watch is resumed. A streamed list
 * (KEP-3157) is a watch that begins with the current objects and a bookmark
 * that says they are all there; servers that refuse it are listed in pages. */
#include "discovery/kube_reflector.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/jarena.h"
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

/* The bookmark that ends a streamed list's initial events. */
static bool initial_events_end(json_t *meta)
{
	json_t *ann = json_object_get(meta, "annotations");
	const char *v = json_string_value(json_object_get(ann, "k8s.io/initial-events-end"));

	return v && strcmp(v, "true") == 0;
}

/* An object event of a streamed list's initial events: stored at once (no
 * second copy of the list is ever held) and marked as listed; the store's
 * users hear of it at the bookmark. */
static void stream_object(struct reflector *r, enum kube_event_type t, json_t *obj,
			  const struct ident *id)
{
	uint64_t t0 = uv_hrtime();
	bool had = kube_index_find(r, id->key) != NULL;

	if (t == KUBE_EV_DELETED)
		kube_object_delete(r, id);
	else if (!kube_object_upsert(r, obj, id))
		r->n_unchanged++;
	else if (had)
		r->n_updated++;
	else
		r->n_added++;
	r->store_ns += uv_hrtime() - t0;
}

/* An ERROR event: ends this watch; its done callback decides what next. */
static void on_error_event(struct reflector *r, json_t *obj)
{
	char ex[120];
	long code = (long)json_integer_value(json_object_get(obj, "code"));
	const char *m = json_string_value(json_object_get(obj, "message"));

	kube_excerpt(m ? m : "", m ? strlen(m) : 0, ex, sizeof(ex));
	if (code == 410) {
		log_info("api %s: watch: resourceVersion %s is gone (410: %s); listing again",
			 r->d->name, r->rv && !r->streaming ? r->rv : "?", ex);
		r->want_relist = true;
	} else {
		log_warn("api %s: watch: ERROR event %ld: %s", r->d->name, code, ex);
		r->watch_failed = "the API server sent an ERROR event";
	}
}

static int on_event_line(void *arg, const char *line, size_t len)
{
	struct reflector *r = arg;
	json_error_t jerr;
	char ex[120];
	/* A streamed list's events are parsed in the thread's parse region
	 * (common/jarena.h): nothing of the tree outlives this call. */
	bool scoped = r->streaming, end_list = false;
	if (scoped)
		jarena_begin();
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
		on_error_event(r, obj);
		rc = -EPROTO;
		goto out;
	}
	r->watch_progress = true;
	if (!r->streaming)
		r->failures = 0;
	json_t *meta = json_object_get(obj, "metadata");
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	if (t == KUBE_EV_BOOKMARK && r->streaming) {
		/* A server that streams the list sends no other bookmark before
		 * the one that ends it: this one does not. */
		if (!initial_events_end(meta) || !rv) {
			r->wl_not_wanted = true;
			rc = -EPROTO;
			goto out;
		}
		kube_set_str(&r->list_rv, rv);
		end_list = true;
		goto out;
	}
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
	} else if (irc == 0 && r->streaming) {
		stream_object(r, t, obj, &id);
	} else if (irc == 0) {
		bool changed = t == KUBE_EV_DELETED ? kube_object_delete(r, &id)
						    : kube_object_upsert(r, obj, &id);
		log_debug("api %s: %s %s rv %s%s", r->d->name, kube_event_type_name(t), id.key,
			  id.rv ? id.rv : "?", changed ? "" : " (no change)");
		if (changed)
			kube_notify(r->ks);
	}
	/* a streamed list's resourceVersion is its bookmark's */
	if (rv && !r->streaming)
		kube_set_str(&r->rv, rv);
out:
	json_decref(ev);
	if (scoped)
		jarena_end();
	if (end_list) {
		/* the list is complete: the same stream goes on as a watch */
		r->streaming = false;
		r->failures = 0;
		kube_http_set_idle(r->req, r->watch_tmo * 1000u + r->ks->o.timeout_ms);
		kube_list_end(r);
	}
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

/* A streamed list ended before the bookmark that completes it. */
static void watchlist_failed(struct reflector *r, const struct kube_http_result *res)
{
	struct kube_source *ks = r->ks;
	char why[600];
	bool answered = res->curl_code == 0 || res->timed_out;
	/* The server says it does not do it: 400 or 422 (Invalid: an older
	 * server, or the WatchList feature gate off), 403 or 404 (a server or
	 * proxy that knows only plain lists; a paged list says more). */
	bool refused = res->curl_code == 0 && res->status >= 400 && res->status < 500 &&
		       res->status != 401 && res->status != 408 && res->status != 410 &&
		       res->status != 429;
	/* It answered with a plain watch: no bookmark ended the initial events
	 * before a plain one came, or before the stream fell silent. */
	bool ignored = answered && res->status == 200 && (r->wl_not_wanted || res->timed_out);

	r->streaming = false;
	if (res->curl_code == 0 && kube_list_optional_missing(r, res))
		return;
	if (r->want_relist || res->status == 410) {
		/* the resourceVersion asked for is compacted away: the current state */
		r->want_relist = false;
		r->rv_gone = true;
		kube_list_start(r);
		return;
	}
	if (ks->o.list_mode == KUBE_LIST_AUTO && (refused || ignored)) {
		if (refused)
			kube_describe_failure(r, res, why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s",
				 r->wl_not_wanted
				     ? "a plain bookmark came before the end of the "
				       "initial events"
				     : "the initial events were not ended by a bookmark");
		log_info("api %s: the API server does not stream lists (%s); listing in pages%s",
			 r->d->name, why, ignored ? " from now on" : "");
		if (ignored)
			r->wl_ignored = true;
		else
			r->wl_refused = true;
		kube_list_start(r);
		return;
	}
	if (r->watch_failed) {
		kube_retry_later(r, res, "streamed list", r->watch_failed);
		return;
	}
	if (res->status == 200 && r->watch_progress && !ignored && r->failures < 2) {
		/* ended or cut in the middle: the objects stored so far stay, and
		 * the next stream names them all again */
		log_info("api %s: streamed list ended before its bookmark (%s); streaming it again",
			 r->d->name, res->error[0] ? res->error : "the server ended it");
		r->failures++;
		kube_list_start(r);
		return;
	}
	if (ignored)
		snprintf(why, sizeof(why),
			 "no bookmark ended the initial events (the server "
			 "does not stream lists; --api-list-mode auto would list "
			 "in pages)");
	else
		kube_describe_failure(r, res, why, sizeof(why));
	kube_retry_later(r, res, "streamed list", why);
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
	if (r->streaming) {
		watchlist_failed(r, res);
		return;
	}
	/* An optional resource gone (its CRD deleted): the list says so. */
	bool gone =
	    r->d->optional && res->curl_code == 0 && (res->status == 404 || res->status == 403);
	if (r->want_relist || res->status == 410 || gone) {
		if (!r->want_relist && !gone)
			log_info("api %s: watch: resourceVersion %s is gone (410); listing again",
				 r->d->name, r->rv ? r->rv : "?");
		r->relists++;
		r->need_list = true;
		r->rv_gone = r->want_relist || res->status == 410;
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

bool kube_watchlist_wanted(const struct reflector *r)
{
	switch (r->ks->o.list_mode) {
	case KUBE_LIST_PAGED:
		return false;
	case KUBE_LIST_WATCHLIST:
		return true;
	default:
		return !r->wl_refused && !r->wl_ignored;
	}
}

/* A watch from r->rv, or with `initial` a streamed list: from r->rv as
 * client-go asks (data not older than what the store holds), from "" (the
 * current state, read consistently) at the first sync or once r->rv is gone. */
static void watch_request(struct reflector *r, bool initial)
{
	struct kube_source *ks = r->ks;
	const char *from = initial && r->rv_gone ? "" : r->rv;
	char *pq = NULL, *rv = kube_escape_dup(from ? from : "");
	unsigned tmo = WATCH_TIMEOUT_MIN_S + kube_rand32() % WATCH_TIMEOUT_MIN_S;
	const char *what = initial ? "streamed list" : "watch";
	int rc;

	if (!rv) {
		kube_retry_later(r, NULL, what, "out of memory");
		return;
	}
	rc = asprintf(
	    &pq, "%s?watch=1%s&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u%s%s",
	    r->d->path, initial ? "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan" : "",
	    rv, tmo, r->d->labelled && ks->labels_q ? "&labelSelector=" : "",
	    r->d->labelled && ks->labels_q ? ks->labels_q : "");
	free(rv);
	if (rc < 0) {
		kube_retry_later(r, NULL, what, "out of memory");
		return;
	}
	struct kube_http_opts o = {
	    .path_query = pq,
	    .first_ms = ks->o.timeout_ms,
	    /* the server ends the watch after tmo; silence beyond that is a hang.
	     * The initial events of a streamed list come without a pause, and
	     * their end is a bookmark: silence before it is a server that does
	     * not stream lists (or a hang). */
	    .idle_ms = initial ? ks->o.timeout_ms : tmo * 1000u + ks->o.timeout_ms,
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
	r->watch_tmo = tmo;
	r->watch_progress = false;
	r->watch_failed = NULL;
	kube_lines_reset(&r->lines);
	log_debug("api %s: GET %s", r->d->name, pq);
	rc = kube_http_get(ks->http, &o, &r->req);
	free(pq);
	if (rc < 0) {
		r->streaming = false;
		kube_retry_later(r, NULL, what, strerror(-rc));
	}
}

void kube_watch_start(struct reflector *r)
{
	watch_request(r, false);
}

void kube_watchlist_start(struct reflector *r)
{
	/* Workers of an earlier paged list may still read the index that the
	 * stream changes: it starts once they are back. */
	if (r->inflight_indexed) {
		uv_timer_start(&r->retry, kube_on_retry, 10, 0);
		return;
	}
	kube_list_discard(r);
	kube_list_begin(r);
	free(r->list_rv);
	r->list_rv = NULL;
	r->page_count = 0;
	r->want_relist = false;
	r->streamed = true;
	r->streaming = true;
	r->wl_not_wanted = false;
	watch_request(r, true);
}
