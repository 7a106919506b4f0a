/* The forwarder's shared state: upstreams resolved at start (never svcdns's
 * own address), cache, routing and recursion rules, the control thread's
 * health checks, every worker's counters. See forward.h. */
#include "resolver/forward_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/shash.h"
#include "resolver/forward_tls.h"
#include "resolver/resolvconf.h"
#include "resolver/upstream_budget.h"

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* An address a wildcard listener of this host answers on. Other loopback
 * addresses than 127.0.0.1 are left out: 127.0.0.53 is systemd-resolved's,
 * bound by it, not by a wildcard; whether it loops back to svcdns is for the
 * start-up loop check to find. */
static bool is_local(const struct dns_listen *a)
{
	if (a->addr.ss_family == AF_INET &&
	    ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
		return true;
	if (is_loopback(&a->addr))
		return a->addr.ss_family == AF_INET6;
	int fd = socket(a->addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_storage ss = a->addr;
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = 0;
	bool ok = bind(fd, (struct sockaddr *)&ss, a->len) == 0;
	close(fd);
	return ok;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_port;
	return ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* True when sending to `u` would reach svcdns itself. */
static bool is_own_address(const struct dns_listen *u, const struct dns_listen *listen,
			   size_t n_listen)
{
	for (size_t i = 0; i < n_listen; i++) {
		const struct dns_listen *l = &listen[i];
		if (l->addr.ss_family != u->addr.ss_family)
			continue;
		if (upstream_addr_equal((const struct sockaddr *)&l->addr,
					(const struct sockaddr *)&u->addr))
			return true;
		if (is_wildcard(&l->addr) && port_of(&l->addr) == port_of(&u->addr) && is_local(u))
			return true;
	}
	return false;
}

static const struct {
	const char *text;
} default_allow[] = {{"127.0.0.0/8"},	 {"::1/128"},	    {"10.0.0.0/8"}, {"172.16.0.0/12"},
		     {"192.168.0.0/16"}, {"100.64.0.0/10"}, {"fc00::/7"}};

/* The upstream groups: the default group (--upstream, else --resolv-conf),
 * then one per --stub-domain. `defaults` holds the default group's servers.
 * Returns the number of groups or -EINVAL, logged. */
static int forward_groups(const struct forward_options *o, const struct dns_listen *listen,
			  size_t n_listen, struct dns_listen *defaults,
			  struct upstream_group_cfg *groups)
{
	size_t n_def = 0, n_groups = 0;
	for (size_t i = 0; i < o->n_upstreams; i++) {
		if (is_own_address(&o->upstreams[i], listen, n_listen)) {
			log_error(
			    "--upstream %s: that is svcdns's own listen address; forwarding to "
			    "it would loop",
			    o->upstreams[i].text);
			return -EINVAL;
		}
		defaults[n_def++] = o->upstreams[i];
	}
	if (!o->upstream_none && !o->n_upstreams) {
		const char *path = o->resolv_conf ? o->resolv_conf : "/etc/resolv.conf";
		struct dns_listen found[FWD_MAX_UPSTREAMS];
		int n = resolvconf_read(path, found, FWD_MAX_UPSTREAMS);
		if (n < 0)
			log_warn("%s: %s; no default upstreams", path, strerror(-n));
		for (int i = 0; i < n; i++) {
			if (is_own_address(&found[i], listen, n_listen)) {
				log_warn("%s: nameserver %s is svcdns itself; skipped", path,
					 found[i].text);
				continue;
			}
			defaults[n_def++] = found[i];
		}
		if (n >= 0 && n_def == 0)
			log_warn("%s: no usable nameserver; names outside the zones served get "
				 "REFUSED",
				 path);
	}
	if (n_def)
		groups[n_groups++] = (struct upstream_group_cfg){".", defaults, n_def};
	for (size_t i = 0; i < o->n_stubs; i++) {
		for (size_t k = 0; k < o->stubs[i].n; k++) {
			if (is_own_address(&o->stubs[i].servers[k], listen, n_listen)) {
				log_error("--stub-domain %s: %s is svcdns's own listen address",
					  o->stubs[i].domain, o->stubs[i].servers[k].text);
				return -EINVAL;
			}
		}
		groups[n_groups++] = (struct upstream_group_cfg){
		    o->stubs[i].domain, o->stubs[i].servers, o->stubs[i].n};
	}
	return (int)n_groups;
}

/* Routing and recursion rules from the options. */
static int forward_rules(struct forwarder *f, const struct forward_options *o)
{
	int zl = dname_from_text(o->zone, f->route.zone, sizeof(f->route.zone));
	if (zl < 0)
		return -EINVAL;
	f->route.zone_len = (uint16_t)zl;
	f->route.autopath = o->autopath;
	f->route.fallthrough = o->fallthrough;
	for (size_t i = 0; i < o->n_cluster_cidrs && i < FWD_ROUTE_MAX_CIDRS; i++)
		f->route.cluster_cidrs[f->route.n_cluster_cidrs++] = o->cluster_cidrs[i];
	if (o->n_allow) {
		memcpy(f->allow, o->allow, o->n_allow * sizeof(f->allow[0]));
		f->n_allow = o->n_allow;
	} else {
		for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
			net_cidr_parse(default_allow[i].text, &f->allow[f->n_allow++]);
	}
	return 0;
}

/* --filter-aaaa and --filter-a; `auto` filters the family that neither the
 * Service nor the Pod CIDR is of (a single-stack cluster). */
static void forward_filters(struct forwarder *f, const struct forward_options *o)
{
	bool v4 = false, v6 = false;
	for (size_t i = 0; i < o->n_cluster_cidrs; i++) {
		v4 |= o->cluster_cidrs[i].base.family == AF_INET;
		v6 |= o->cluster_cidrs[i].base.family == AF_INET6;
	}
	f->filter_aaaa =
	    o->filter_aaaa == FWD_FILTER_ON || (o->filter_aaaa == FWD_FILTER_AUTO && v4 && !v6);
	f->filter_a = o->filter_a == FWD_FILTER_ON || (o->filter_a == FWD_FILTER_AUTO && v6 && !v4);
	if (f->filter_aaaa || f->filter_a)
		log_info("forwarder: %s%s%s outside the zones served answered empty (EDE 17), "
			 "never asked upstream",
			 f->filter_aaaa ? "AAAA" : "", f->filter_aaaa && f->filter_a ? " and " : "",
			 f->filter_a ? "A" : "");
	if (f->filter_aaaa && f->filter_a)
		log_warn("--filter-aaaa and --filter-a together: no outside name has an address");
}

static void forward_log_setup(const struct forwarder *f)
{
	const struct forward_options *o = &f->opt;
	for (size_t g = 0; g < f->ups->n_groups; g++) {
		const struct upstream_group *grp = &f->ups->groups[g];
		char list[512];
		size_t o2 = 0;
		list[0] = '\0';
		for (size_t i = 0; i < grp->n && o2 < sizeof(list); i++)
			o2 += (size_t)snprintf(list + o2, sizeof(list) - o2, "%s%s", i ? ", " : "",
					       f->ups->ups[grp->first + i].text);
		log_info("forwarding %s to %s", grp->text, list);
	}
	static const char *const policies[] = {"sequential", "round_robin", "random"};
	log_info("forwarder: policy %s, timeout %u ms, at most %u tries, at most %u in flight, "
		 "cache %s%zu %s, serve-stale %us, prefetch %s, autopath %s",
		 policies[o->policy], o->timeout_ms, o->max_tries, o->max_concurrent,
		 f->cache ? "" : "off ", o->cache_bytes ? o->cache_bytes >> 10 : o->cache_entries,
		 o->cache_bytes ? "KiB" : "entries", o->serve_stale_s, o->prefetch ? "on" : "off",
		 o->autopath ? "on" : "off");
	if (o->max_qps)
		log_info("forwarder: at most %u queries per second to each upstream", o->max_qps);
}

int forward_new(const struct forward_options *o, const struct dns_listen *listen, size_t n_listen,
		unsigned threads, struct forwarder **out)
{
	int ret = -ENOMEM;
	struct dns_listen defaults[FWD_MAX_UPSTREAMS];
	struct upstream_group_cfg groups[1 + FWD_MAX_STUBS];
	struct forwarder *f = NULL;

	*out = NULL;
	if (o->upstream_none && o->n_upstreams) {
		log_error("--upstream none cannot go with --upstream addresses");
		return -EINVAL;
	}
	int n_groups = forward_groups(o, listen, n_listen, defaults, groups);
	if (n_groups <= 0)
		return n_groups; /* 0, forwarding off: REFUSED outside the zones served */
	/* The workers' tables of queries in flight hash client names with it. */
	int err = shash_init();
	if (err < 0)
		return err;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->opt = *o;
	f->threads = threads ? threads : 1;
	f->slots = aligned_alloc(64, sizeof(*f->slots) * (f->threads + 1));
	if (!f->slots)
		goto fail;
	memset(f->slots, 0, sizeof(*f->slots) * (f->threads + 1));
	ret = upstream_set_new(groups, (size_t)n_groups, o->policy, o->timeout_ms, f->threads,
			       &f->ups);
	if (ret < 0) {
		log_error("upstreams: cannot be set up (%s)", strerror(-ret));
		goto fail;
	}
	if (o->max_qps && (ret = upstream_budget_new(f->ups->n, o->max_qps, &f->ups->budget)) < 0) {
		log_error("--upstream-max-qps: cannot be set up (%s)", strerror(-ret));
		goto fail;
	}
	for (size_t i = 0; i < f->ups->n && !f->ups->tls; i++)
		if (f->ups->ups[i].tls && (ret = fwd_tls_ctx_new(o->upstream_ca, &f->ups->tls)) < 0)
			goto fail;
	if (o->cache_bytes || o->cache_entries) {
		struct cache_config cc = {
		    .max_bytes = o->cache_bytes,
		    .max_entries = o->cache_entries,
		    .stale_s = o->serve_stale_s,
		    .prefetch = o->prefetch,
		    .threads = f->threads + 1,
		};
		if ((ret = cache_new(&cc, &f->cache)) < 0) {
			log_error("cache: cannot be set up (%s)", strerror(-ret));
			goto fail;
		}
	}
	if ((ret = forward_rules(f, o)) < 0)
		goto fail;
	forward_filters(f, o);
	forward_log_setup(f);
	*out = f;
	return 0;
fail:
	forward_free(f);
	return ret;
}

void forward_free(struct forwarder *f)
{
	if (!f)
		return;
	fwd_uv_free(f->control);
	cache_free(f->cache);
	if (f->ups) {
		upstream_budget_free(f->ups->budget);
		fwd_tls_ctx_free(f->ups->tls);
	}
	upstream_set_free(f->ups);
	free(f->slots);
	free(f);
}

int forward_control_start_io(struct forwarder *f, const struct fwd_clock *clk,
			     const struct fwd_net *net)
{
	return upstream_health_start(f->ups, clk, net);
}

int forward_control_start(struct forwarder *f, uv_loop_t *loop)
{
	if (!f)
		return 0;
	/* The control thread's counter slot is the last; its probes do not
	 * count stray datagrams as dropped answers. */
	int ret = fwd_uv_new(loop, f->ups, f->threads, false, &f->control);
	if (ret < 0)
		return ret;
	return forward_control_start_io(f, fwd_uv_clock(f->control), fwd_uv_net(f->control));
}

void forward_control_stop(struct forwarder *f)
{
	if (!f)
		return;
	upstream_health_stop(f->ups);
	fwd_uv_close(f->control);
}

struct cache *forward_cache(struct forwarder *f)
{
	return f ? f->cache : NULL;
}

struct upstream_set *forward_upstreams(struct forwarder *f)
{
	return f ? f->ups : NULL;
}

void forward_stats_get(struct forwarder *f, struct forward_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!f)
		return;
	for (unsigned t = 0; t <= f->threads; t++) {
		struct fwd_slot *s = &f->slots[t];
		out->forwarded += atomic_load_explicit(&s->forwarded, memory_order_relaxed);
		out->coalesced += atomic_load_explicit(&s->coalesced, memory_order_relaxed);
		out->rejected += atomic_load_explicit(&s->rejected, memory_order_relaxed);
		out->servfail_down += atomic_load_explicit(&s->servfail_down, memory_order_relaxed);
		out->recursion_refused +=
		    atomic_load_explicit(&s->recursion_refused, memory_order_relaxed);
		out->budget_waits += atomic_load_explicit(&s->budget_waits, memory_order_relaxed);
		out->budget_refused +=
		    atomic_load_explicit(&s->budget_refused, memory_order_relaxed);
		out->budget_stale += atomic_load_explicit(&s->budget_stale, memory_order_relaxed);
		out->tries_exhausted +=
		    atomic_load_explicit(&s->tries_exhausted, memory_order_relaxed);
		out->filtered_aaaa += atomic_load_explicit(&s->filtered_aaaa, memory_order_relaxed);
		out->filtered_a += atomic_load_explicit(&s->filtered_a, memory_order_relaxed);
	}
	out->in_flight = atomic_load(&f->inflight);
}
