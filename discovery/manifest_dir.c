/* The manifest directory source: every *.json, *.yaml and *.yml file in one
 * directory feeds the store, and a change on disk is served within ~20 ms
 * (inotify, debounced) or, as a safety net, within a second (periodic rescan). */
#include "discovery/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"

#define DEBOUNCE_MS 15
#define RESCAN_MS   1000
/* A file that a writer modified and has not closed yet is not read: a
 * `kubectl get -o yaml > dir/x.yaml` truncates first and writes later, and
 * reading in between would drop the file's Services. A writer that keeps the
 * file open longer than this is read anyway. */
#define WRITING_MAX_NS (2 * 1000000000LL)
#define MAX_WRITING    64
/* File timestamps are only as fine as the kernel tick, so a file rewritten
 * twice within one tick with the same size looks unchanged; files this recent
 * have their bytes compared as well. */
#define RECENT_NS (2 * 1000000000LL)

struct md_file {
	char *name; /* entry name; the array is sorted by it */
	char *path; /* dir/name: the store source */
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t hash; /* of the bytes last decoded */
	bool in_store; /* the store may hold objects from this path */
	bool seen;     /* during a scan: still in the directory */
};

struct manifest_dir {
	uv_loop_t *loop;
	char *dir;
	struct model_store *store;
	manifest_changed_cb cb;
	void *arg;
	int ino_fd; /* inotify, or -1 */
	int ino_wd;
	uv_poll_t watch;
	bool watch_inited;
	/* names modified and not closed yet, with when the first write was seen */
	struct {
		char name[256];
		int64_t since_ns;
	} writing[MAX_WRITING];
	size_t n_writing;
	uv_timer_t debounce;
	uv_timer_t periodic;
	int open_handles;
	struct md_file *files;
	size_t n_files;
	bool started; /* the first scan succeeded: there is something to serve */
	bool dir_missing;
	bool have_dir_id;
	dev_t dir_dev;
	ino_t dir_ino;
};

static bool wanted_name(const char *name)
{
	size_t len = strlen(name);
	/* hidden files include editor locks (.#x) and swap files (.x.swp), and
	 * the ..data links of a ConfigMap volume */
	if (name[0] == '.' || name[len - 1] == '~')
		return false;
	static const char *const exts[] = {".json", ".yaml", ".yml"};
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t el = strlen(exts[i]);
		if (len > el && strcmp(name + len - el, exts[i]) == 0)
			return true;
	}
	return false;
}

static uint64_t fnv1a(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static void file_free(struct md_file *f)
{
	free(f->name);
	free(f->path);
}

/* Reads a whole file, refusing more than MANIFEST_MAX_FILE bytes (-EFBIG). */
static int read_all(const char *path, char **out, size_t *out_len)
{
	return file_read_all(path, MANIFEST_MAX_FILE, out, out_len);
}

/* Decodes one file's bytes into the store. A file that cannot be parsed keeps
 * what it contributed before; an invalid object keeps its previous version
 * from the same file. Returns true when the store changed. */
static bool load_bytes(struct manifest_dir *md, struct md_file *f, const char *data, size_t len)
{
	struct manifest_result r;
	struct model_object *objs = NULL;
	size_t n = 0;

	if (manifest_decode(f->path, data, len, &r) < 0)
		return false; /* logged by manifest_decode */
	if (r.n_objs + r.n_rejected > 0) {
		objs = malloc((r.n_objs + r.n_rejected) * sizeof(*objs));
		if (!objs) {
			log_error("manifest %s: out of memory; previous objects kept", f->path);
			manifest_result_free(&r);
			return false;
		}
	}
	for (size_t i = 0; i < r.n_objs; i++)
		objs[n++] = r.objs[i];
	r.n_objs = 0; /* moved into objs */
	for (size_t i = 0; i < r.n_rejected; i++) {
		const struct manifest_rejected *rj = &r.rejected[i];
		const struct model_object *prev =
		    model_store_find(md->store, f->path, rj->kind, rj->ns, rj->name);
		if (!prev)
			continue;
		if (model_object_clone(prev, &objs[n]) < 0) {
			log_error("manifest %s: out of memory keeping %s %s", f->path,
				  model_kind_name(rj->kind), rj->name);
			continue;
		}
		n++;
		/* The reason was logged where it was found: one warning per object. */
		log_debug("manifest %s: %s %s%s%s: keeping the previous version", f->path,
			  model_kind_name(rj->kind), rj->ns ? rj->ns : "", rj->ns ? "/" : "",
			  rj->name);
	}
	manifest_result_free(&r);
	model_store_replace(md->store, f->path, objs, n); /* takes the objects either way */
	free(objs);
	f->in_store = true;
	return true;
}

static bool same_stat(const struct md_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	       f->mtime_ns == ts_ns(&st->st_mtim) && f->ctime_ns == ts_ns(&st->st_ctim);
}

/* Brings one file up to date. `f` is the new entry, carrying the old one's
 * state (or zeroed for a new file). Returns true when the store changed. */
static bool is_writing(struct manifest_dir *md, const char *name)
{
	for (size_t i = 0; i < md->n_writing; i++)
		if (strcmp(md->writing[i].name, name) == 0)
			return (int64_t)clock_now_ns() - md->writing[i].since_ns < WRITING_MAX_NS;
	return false;
}

static void writing_set(struct manifest_dir *md, const char *name, bool on)
{
	for (size_t i = 0; i < md->n_writing; i++)
		if (strcmp(md->writing[i].name, name) == 0) {
			if (!on)
				md->writing[i] = md->writing[--md->n_writing];
			return;
		}
	if (on && md->n_writing < MAX_WRITING && strlen(name) < sizeof(md->writing[0].name)) {
		snprintf(md->writing[md->n_writing].name, sizeof(md->writing[0].name), "%s", name);
		md->writing[md->n_writing++].since_ns = (int64_t)clock_now_ns();
	}
}

static bool drain_inotify(struct manifest_dir *md);
static void on_debounce(uv_timer_t *t);

/* Whether a writer of `name` showed up since the last look at the events.
 * Events drained here still wake a rescan, so none is lost. */
static bool writers_started(struct manifest_dir *md, const char *name)
{
	if (drain_inotify(md) && md->started && !uv_is_active((uv_handle_t *)&md->debounce))
		uv_timer_start(&md->debounce, on_debounce, DEBOUNCE_MS, 0);
	return is_writing(md, name);
}

static bool refresh_file(struct manifest_dir *md, struct md_file *f, bool known,
			 const struct stat *st)
{
	struct timespec now;
	char *data;
	size_t len;
	bool changed = false;

	clock_gettime(CLOCK_REALTIME, &now);
	bool recent = ts_ns(&now) - ts_ns(&st->st_mtim) < RECENT_NS;
	if (known && same_stat(f, st) && !recent)
		return false;
	if (is_writing(md, f->name))
		return false; /* read when the writer closes it */
	/* A file that held objects and is empty a moment after a change is most
	 * likely being rewritten and its writer's first event not in yet; the
	 * next scan (the writer's close, or a second later) reads it. */
	if (known && f->in_store && st->st_size == 0 &&
	    ts_ns(&now) - ts_ns(&st->st_mtim) < 1000000000LL)
		return false;

	int rc = read_all(f->path, &data, &len);
	if (rc == -ENOENT)
		return false; /* removed while we looked; the next scan drops it */
	/* A writer may have truncated the file between the stat and the read:
	 * its first event is queued by now, so learn of it and leave the file to
	 * the writer's close. An empty read of a file that held objects waits in
	 * the same way, whatever the stat said. */
	if (rc == 0 &&
	    (writers_started(md, f->name) || (known && f->in_store && len == 0 &&
					      ts_ns(&now) - ts_ns(&st->st_mtim) < 1000000000LL))) {
		free(data);
		return false;
	}
	uint64_t h = rc == 0 ? fnv1a(data, len) : 0;
	bool same_bytes = known && rc == 0 && h == f->hash;
	bool same_meta = known && same_stat(f, st);
	/* one log line per change of the file, not one per rescan */
	if (!same_bytes && !(rc < 0 && same_meta)) {
		if (rc == -EFBIG)
			log_warn("manifest %s: larger than %u bytes, refused; previous objects "
				 "kept",
				 f->path, MANIFEST_MAX_FILE);
		else if (rc < 0)
			log_warn("manifest %s: cannot be read: %s", f->path, strerror(-rc));
		else
			changed = load_bytes(md, f, data, len);
	}
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = st->st_size;
	f->mtime_ns = ts_ns(&st->st_mtim);
	f->ctime_ns = ts_ns(&st->st_ctim);
	if (rc == 0)
		f->hash = h;
	free(data);
	return changed;
}

static void on_inotify(uv_poll_t *h, int status, int events);

static void watch_stop(struct manifest_dir *md)
{
	if (md->watch_inited && uv_is_active((uv_handle_t *)&md->watch))
		uv_poll_stop(&md->watch);
	if (md->ino_fd >= 0 && md->ino_wd >= 0)
		inotify_rm_watch(md->ino_fd, md->ino_wd);
	md->ino_wd = -1;
	md->n_writing = 0;
}

static void watch_restart(struct manifest_dir *md)
{
	watch_stop(md);
	if (md->ino_fd < 0 || !md->watch_inited)
		return;
	md->ino_wd = inotify_add_watch(md->ino_fd, md->dir,
				       IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |
					   IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
					   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	if (md->ino_wd < 0) {
		log_warn("manifest dir %s: cannot watch (%s); changes are picked up within %d ms",
			 md->dir, strerror(errno), RESCAN_MS);
		return;
	}
	uv_poll_start(&md->watch, UV_READABLE, on_inotify);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_file(const void *key, const void *elem)
{
	return strcmp((const char *)key, ((const struct md_file *)elem)->name);
}

/* Opens the directory, noting when it came back or was replaced. NULL, with
 * *rc set, when it cannot be read. */
static DIR *dir_open(struct manifest_dir *md, int *rc)
{
	struct stat st;
	DIR *d = opendir(md->dir);

	if (!d) {
		*rc = -errno;
		if (!md->started)
			log_error("manifest dir %s: cannot be read (%s); cannot start", md->dir,
				  strerror(-*rc));
		else if (!md->dir_missing)
			log_warn("manifest dir %s: cannot be read (%s); serving what was loaded",
				 md->dir, strerror(-*rc));
		md->dir_missing = true;
		return NULL;
	}
	if (fstat(dirfd(d), &st) == 0) {
		bool moved =
		    md->have_dir_id && (st.st_dev != md->dir_dev || st.st_ino != md->dir_ino);
		if (md->dir_missing)
			log_info("manifest dir %s: readable again", md->dir);
		/* a recreated directory is a new inode: the old inotify watch is dead */
		if ((md->dir_missing || moved) && md->open_handles)
			watch_restart(md);
		md->dir_dev = st.st_dev;
		md->dir_ino = st.st_ino;
		md->have_dir_id = true;
	}
	md->dir_missing = false;
	return d;
}

/* The names of the manifest files in d, sorted. On -ENOMEM, *names holds
 * the *n read so far, for the caller to free. */
static int read_names(DIR *d, char ***names, size_t *n)
{
	struct dirent *de;
	size_t cap = 0;

	while ((de = readdir(d))) {
		if (!wanted_name(de->d_name))
			continue;
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(*names, ncap * sizeof(*nn));
			if (!nn)
				return -ENOMEM;
			*names = nn;
			cap = ncap;
		}
		if (!((*names)[*n] = strdup(de->d_name)))
			return -ENOMEM;
		(*n)++;
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_name);
	return 0;
}

/* One pass over the directory. Returns 0 (with *changed set) or a negative
 * code when the directory cannot be read. */
static int scan(struct manifest_dir *md, bool *changed)
{
	DIR *d = NULL;
	char **names = NULL;
	size_t n_names = 0;
	struct md_file *files = NULL;
	size_t n_files = 0;
	struct stat st;
	int rc = 0;

	*changed = false;
	if (!(d = dir_open(md, &rc)))
		return rc;
	if ((rc = read_names(d, &names, &n_names)) < 0)
		goto out;
	if (n_names && !(files = calloc(n_names, sizeof(*files)))) {
		rc = -ENOMEM;
		goto out;
	}

	/* Sorted by name, so that the first file to name an object keeps it
	 * deterministically. */
	for (size_t i = 0; i < n_names; i++) {
		struct md_file *old = md->n_files ? bsearch(names[i], md->files, md->n_files,
							    sizeof(*md->files), cmp_file)
						  : NULL;
		struct md_file *f = &files[n_files];
		size_t plen = strlen(md->dir) + 1 + strlen(names[i]) + 1;
		if (old) {
			*f = *old;
			old->seen = true;
		}
		/* the old list stays intact until the scan completes */
		f->name = strdup(names[i]);
		f->path = malloc(plen);
		if (!f->name || !f->path) {
			file_free(f);
			rc = -ENOMEM;
			goto out;
		}
		snprintf(f->path, plen, "%s/%s", md->dir, f->name);
		n_files++;
		/* stat follows symlinks: a ConfigMap volume is all symlinks */
		if (stat(f->path, &st) < 0 || !S_ISREG(st.st_mode)) {
			if (f->in_store) {
				model_store_remove(md->store, f->path);
				*changed = true;
			}
			n_files--;
			file_free(f);
			continue;
		}
		if (refresh_file(md, f, old != NULL, &st))
			*changed = true;
	}

	/* Files that are gone take their objects with them. */
	for (size_t i = 0; i < md->n_files; i++) {
		struct md_file *f = &md->files[i];
		if (!f->seen && f->in_store) {
			model_store_remove(md->store, f->path);
			*changed = true;
		}
	}
out:
	if (rc < 0) {
		/* the old list is kept; files it lists are simply looked at again */
		for (size_t i = 0; i < n_files; i++)
			file_free(&files[i]);
		for (size_t i = 0; i < md->n_files; i++)
			md->files[i].seen = false;
		free(files);
		log_error("manifest dir %s: out of memory while scanning", md->dir);
	} else {
		for (size_t i = 0; i < md->n_files; i++)
			file_free(&md->files[i]);
		free(md->files);
		md->files = files;
		md->n_files = n_files;
		for (size_t i = 0; i < n_files; i++)
			md->files[i].seen = false;
	}
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	if (d)
		closedir(d);
	return rc;
}

static void rescan(struct manifest_dir *md)
{
	bool changed = false;
	/* Timers run before the poll in a loop turn: learn of writers that
	 * started since the last turn before reading any file. */
	drain_inotify(md);
	scan(md, &changed);
	if (changed && md->cb)
		md->cb(md->arg);
}

static void on_debounce(uv_timer_t *t)
{
	rescan(t->data);
}

static void on_periodic(uv_timer_t *t)
{
	struct manifest_dir *md = t->data;
	/* a pending debounced scan will cover this one */
	if (!uv_is_active((uv_handle_t *)&md->debounce))
		rescan(md);
}

/* Reads every pending inotify event. Returns whether a rescan is due. */
static bool drain_inotify(struct manifest_dir *md)
{
	_Alignas(struct inotify_event) char buf[8192];
	bool wake = false;
	if (md->ino_fd < 0)
		return false;
	for (;;) {
		ssize_t n = read(md->ino_fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			const char *name = ev->len ? ev->name : "";
			if (ev->mask & IN_MODIFY) {
				writing_set(md, name, true);
				continue; /* wait for the close */
			}
			if (ev->mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM))
				writing_set(md, name, false);
			/* the directory itself went away: the periodic scan notices
			 * when it is back and watches it again */
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				md->ino_wd = -1;
			wake = true;
		}
	}
	return wake;
}

static void on_inotify(uv_poll_t *h, int status, int events)
{
	struct manifest_dir *md = h->data;
	(void)events;
	if (status < 0)
		log_debug("manifest dir %s: watch error: %s", md->dir, uv_strerror(status));
	/* not restarted by later events: a steady stream of writes must not
	 * postpone the rescan forever */
	if (drain_inotify(md) && !uv_is_active((uv_handle_t *)&md->debounce))
		uv_timer_start(&md->debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void md_free(struct manifest_dir *md)
{
	if (md->ino_fd >= 0)
		close(md->ino_fd);
	for (size_t i = 0; i < md->n_files; i++)
		file_free(&md->files[i]);
	free(md->files);
	free(md->dir);
	free(md);
}

int manifest_dir_start(uv_loop_t *loop, const char *dir, struct model_store *store,
		       manifest_changed_cb cb, void *arg, struct manifest_dir **out)
{
	struct manifest_dir *md = calloc(1, sizeof(*md));
	bool changed;
	int rc;

	*out = NULL;
	if (!md) {
		log_error("manifest dir %s: out of memory", dir);
		return -ENOMEM;
	}
	md->ino_fd = -1;
	md->ino_wd = -1;
	md->loop = loop;
	md->store = store;
	md->cb = cb;
	md->arg = arg;
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--; /* "dir/" and "dir" name the same sources */
	if (!(md->dir = strndup(dir, len))) {
		log_error("manifest dir %s: out of memory", dir);
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = scan(md, &changed)) < 0)
		goto fail; /* logged by scan */

	md->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (md->ino_fd < 0)
		log_warn("manifest dir %s: inotify: %s", md->dir, strerror(errno));
	/* without inotify the periodic scan still serves */
	md->open_handles = 2;
	if (md->ino_fd >= 0) {
		uv_poll_init(loop, &md->watch, md->ino_fd);
		md->watch_inited = true;
		md->open_handles++;
	}
	uv_timer_init(loop, &md->debounce);
	uv_timer_init(loop, &md->periodic);
	md->watch.data = md->debounce.data = md->periodic.data = md;
	watch_restart(md);
	uv_timer_start(&md->periodic, on_periodic, RESCAN_MS, RESCAN_MS);
	log_info("manifest dir %s: %zu files loaded, watching", md->dir, md->n_files);
	md->started = true;
	*out = md;
	return 0;
fail:
	md_free(md);
	return rc;
}

static void on_close(uv_handle_t *h)
{
	struct manifest_dir *md = h->data;
	if (--md->open_handles == 0)
		md_free(md);
}

void manifest_dir_stop(struct manifest_dir *md)
{
	if (!md)
		return;
	/* the store keeps the objects: its owner decides what to do with them */
	if (md->watch_inited)
		uv_close((uv_handle_t *)&md->watch, on_close);
	uv_close((uv_handle_t *)&md->debounce, on_close);
	uv_close((uv_handle_t *)&md->periodic, on_close);
}
