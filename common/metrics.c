/* The metrics registry: zone labels, settings, the sources that /metrics
 * runs at every scrape, and the scrape itself (process facts, the DNS
 * families of metrics_dns.c, then each source, in the text format of
 * metrics_text.c). See metrics.h. */
#include "common/metrics.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/metrics_impl.h"

int metrics_new(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->zones[0].wire[0] = 0;
	m->zones[0].len = 1;
	m->zones[0].kind = METRICS_ZONE_OTHER;
	snprintf(m->zones[0].text, sizeof(m->zones[0].text), ".");
	atomic_store(&m->n_zones, 1);
	snprintf(m->server, sizeof(m->server), "dns://:53");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	*out = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	metrics_workers_free(m);
	free(m);
}

/* Text name to lowercased wire form; 0 or -EINVAL. */
static int zone_wire(const char *text, uint8_t *out, size_t *len)
{
	size_t o = 0, tl = strlen(text);
	if (tl && text[tl - 1] == '.')
		tl--;
	size_t i = 0;
	while (i < tl) {
		size_t start = i;
		while (i < tl && text[i] != '.')
			i++;
		size_t l = i - start;
		if (l == 0 || l > 63 || o + 1 + l + 1 > 255)
			return -EINVAL;
		out[o++] = (uint8_t)l;
		for (size_t k = 0; k < l; k++)
			out[o++] = (uint8_t)tolower((unsigned char)text[start + k]);
		i++;
	}
	out[o++] = 0;
	*len = o;
	return 0;
}

int metrics_zone_add(struct metrics *m, const char *text, enum metrics_zone_kind kind)
{
	uint8_t w[256];
	size_t len;
	if (zone_wire(text, w, &len) < 0)
		return -EINVAL;
	unsigned n = atomic_load_explicit(&m->n_zones, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++)
		if (m->zones[i].len == len && memcmp(m->zones[i].wire, w, len) == 0)
			return (int)i;
	if (n == METRICS_MAX_ZONES)
		return -ENOSPC;
	struct mzone *z = &m->zones[n];
	memcpy(z->wire, w, len);
	z->len = len;
	z->kind = kind;
	size_t tl = strlen(text);
	snprintf(z->text, sizeof(z->text), "%s%s", text, tl && text[tl - 1] == '.' ? "" : ".");
	for (char *p = z->text; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	/* Workers read slots below n_zones only: publish the slot after it is
	 * written. */
	atomic_store_explicit(&m->n_zones, n + 1, memory_order_release);
	return (int)n;
}

void metrics_set_server_label(struct metrics *m, const char *label)
{
	snprintf(m->server, sizeof(m->server), "%s", label);
}

void metrics_set_compat(struct metrics *m, bool on)
{
	m->compat = on;
}

void metrics_qlog_set(struct metrics *m, bool on)
{
	atomic_store_explicit(&m->qlog_on, on, memory_order_relaxed);
}

int metrics_register_source(struct metrics *m, const char *name, metrics_source_fn fn, void *arg)
{
	for (size_t i = 0; i < m->n_sources; i++)
		if (strcmp(m->sources[i].name, name) == 0) {
			m->sources[i].fn = fn;
			m->sources[i].arg = arg;
			return 0;
		}
	if (m->n_sources == METRICS_MAX_SOURCES)
		return -ENOSPC;
	struct msource *s = &m->sources[m->n_sources++];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fn = fn;
	s->arg = arg;
	return 0;
}

void metrics_unregister_source(struct metrics *m, const char *name)
{
	for (size_t i = 0; i < m->n_sources; i++)
		if (strcmp(m->sources[i].name, name) == 0) {
			m->sources[i] = m->sources[--m->n_sources];
			return;
		}
}

/* Process facts, under the names Prometheus client libraries use. */
static void render_process(struct metrics *m, struct metrics_out *o)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		metrics_family(o, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in seconds.");
		metrics_sample(o, "process_cpu_seconds_total", cpu, NULL);
	}
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		unsigned long vsz, rss;
		if (fscanf(f, "%lu %lu", &vsz, &rss) == 2) {
			double page = (double)sysconf(_SC_PAGESIZE);
			metrics_family(o, "process_resident_memory_bytes", "gauge",
				       "Resident memory size in bytes.");
			metrics_sample(o, "process_resident_memory_bytes", (double)rss * page,
				       NULL);
			metrics_family(o, "process_virtual_memory_bytes", "gauge",
				       "Virtual memory size in bytes.");
			metrics_sample(o, "process_virtual_memory_bytes", (double)vsz * page, NULL);
		}
		fclose(f);
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		unsigned long n = 0;
		while (readdir(d))
			n++;
		closedir(d);
		metrics_family(o, "process_open_fds", "gauge", "Number of open file descriptors.");
		metrics_sample(o, "process_open_fds", (double)(n > 3 ? n - 3 : 0), NULL);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		metrics_family(o, "process_max_fds", "gauge",
			       "Maximum number of open file descriptors.");
		metrics_sample(o, "process_max_fds", (double)rl.rlim_cur, NULL);
	}
	metrics_family(o, "process_start_time_seconds", "gauge",
		       "Start time of the process since unix epoch in seconds.");
	metrics_sample(o, "process_start_time_seconds", m->start_time, NULL);
	metrics_family(o, "svcdns_build_info", "gauge",
		       "Always 1; the version svcdns was built from is a label.");
	metrics_sample(o, "svcdns_build_info", 1, "version", SVCDNS_VERSION, NULL);
	if (metrics_out_compat(o)) {
		metrics_family(o, "coredns_build_info", "gauge",
			       "A metric with a constant '1' value labeled by version, revision, "
			       "and goversion from which CoreDNS was built.");
		metrics_sample(o, "coredns_build_info", 1, "version", SVCDNS_VERSION, "revision",
			       "svcdns", "goversion", "none", NULL);
		metrics_family(o, "coredns_panics_total", "counter",
			       "A metrics that counts the number of panics.");
		metrics_sample(o, "coredns_panics_total", 0, NULL);
	}
}

int metrics_render(struct metrics *m, char **body, size_t *len)
{
	struct metrics_out o;
	int ret = metrics_out_init(&o, m->compat, m->server);
	if (ret < 0)
		return ret;
	render_process(m, &o);
	metrics_dns_render(m, &o);
	for (size_t i = 0; i < m->n_sources; i++)
		m->sources[i].fn(&o, m->sources[i].arg);
	return metrics_out_finish(&o, body, len);
}
