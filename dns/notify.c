/* NOTIFY sender: one UDP socket on the control loop, one pending message per
 * (target, zone), resent until the target acknowledges it. */
#include "dns/notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "wire/dname.h"
#include "wire/wire.h"

#define NOTIFY_MAX_ZONES 8
#define NOTIFY_TRIES	 5
#define NOTIFY_RETRY_MS	 2000

struct pending {
	uint16_t id;
	uint8_t tries; /* left; 0: acknowledged or given up */
	uint8_t msg[12 + 255 + 4 + 255 + 10 + 22 + 2 * 255];
	size_t len;
};

struct dns_notifier {
	uv_udp_t sock4, sock6;
	uv_timer_t retry;
	struct dns_listen *targets;
	size_t n_targets;
	size_t n_zones;
	struct pending *p; /* n_targets * NOTIFY_MAX_ZONES */
	int open;
};

static uv_udp_t *sock_for(struct dns_notifier *nt, const struct dns_listen *t)
{
	return t->addr.ss_family == AF_INET6 ? &nt->sock6 : &nt->sock4;
}

static void send_one(struct dns_notifier *nt, size_t ti, struct pending *pd)
{
	uv_buf_t b = uv_buf_init((char *)pd->msg, (unsigned)pd->len);
	const struct dns_listen *t = &nt->targets[ti];
	int r = uv_udp_try_send(sock_for(nt, t), &b, 1, (const struct sockaddr *)&t->addr);
	if (r < 0)
		log_debug("notify %s: %s", t->text, uv_strerror(r));
}

static void on_retry(uv_timer_t *h)
{
	struct dns_notifier *nt = h->data;
	bool left = false;
	for (size_t ti = 0; ti < nt->n_targets; ti++)
		for (size_t zi = 0; zi < nt->n_zones; zi++) {
			struct pending *pd = &nt->p[ti * NOTIFY_MAX_ZONES + zi];
			if (!pd->tries)
				continue;
			if (--pd->tries == 0) {
				log_warn("notify %s: no answer after %d tries",
					 nt->targets[ti].text, NOTIFY_TRIES);
				continue;
			}
			send_one(nt, ti, pd);
			left = true;
		}
	if (!left)
		uv_timer_stop(&nt->retry);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char space[512];
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(space, sizeof(space));
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
		    unsigned flags)
{
	struct dns_notifier *nt = h->data;
	(void)flags;
	if (n < WIRE_HDR_LEN || !from)
		return;
	const uint8_t *m = (const uint8_t *)buf->base;
	uint16_t id = wire_hdr_id(m);
	/* An answer counts only from the target asked, with the ID it was sent. */
	for (size_t ti = 0; ti < nt->n_targets; ti++) {
		const struct dns_listen *t = &nt->targets[ti];
		if (!same_addr((const struct sockaddr *)&t->addr, from))
			continue;
		for (size_t zi = 0; zi < nt->n_zones; zi++) {
			struct pending *pd = &nt->p[ti * NOTIFY_MAX_ZONES + zi];
			if (pd->tries && pd->id == id && wire_hdr_has(m, WIRE_QR) &&
			    wire_hdr_opcode(m) == DNS_OP_NOTIFY) {
				pd->tries = 0;
				log_debug("notify %s: acknowledged (rcode %u)", t->text,
					  wire_hdr_rcode(m));
			}
		}
	}
}

int dns_notifier_start(uv_loop_t *loop, const struct dns_listen *targets, size_t n,
		       struct dns_notifier **out)
{
	struct dns_notifier *nt = calloc(1, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	nt->targets = calloc(n ? n : 1, sizeof(*nt->targets));
	nt->p = calloc((n ? n : 1) * NOTIFY_MAX_ZONES, sizeof(*nt->p));
	if (!nt->targets || !nt->p) {
		free(nt->targets);
		free(nt->p);
		free(nt);
		return -ENOMEM;
	}
	memcpy(nt->targets, targets, n * sizeof(*targets));
	nt->n_targets = n;
	uv_udp_init(loop, &nt->sock4);
	uv_udp_init(loop, &nt->sock6);
	uv_timer_init(loop, &nt->retry);
	nt->sock4.data = nt->sock6.data = nt->retry.data = nt;
	nt->open = 3;
	/* An ephemeral port per family, chosen by the kernel. */
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	if (uv_udp_bind(&nt->sock4, (const struct sockaddr *)&a4, 0) == 0)
		uv_udp_recv_start(&nt->sock4, on_alloc, on_recv);
	if (uv_udp_bind(&nt->sock6, (const struct sockaddr *)&a6, 0) == 0)
		uv_udp_recv_start(&nt->sock6, on_alloc, on_recv);
	*out = nt;
	return 0;
}

/* A NOTIFY for `zone` (RFC 1996): the question, and an answer SOA whose serial
 * alone means anything (3.7 lets secondaries use it). Returns its length. */
static size_t notify_build(uint8_t *m, uint16_t id, const uint8_t *zone, uint32_t serial)
{
	size_t zl = dname_len(zone);
	memset(m, 0, WIRE_HDR_LEN);
	wire_hdr_set_id(m, id);
	wire_hdr_set_opcode(m, DNS_OP_NOTIFY);
	wire_hdr_set(m, WIRE_AA, true);
	wire_hdr_set_count(m, WIRE_QD, 1);
	wire_hdr_set_count(m, WIRE_AN, 1);
	size_t o = WIRE_HDR_LEN;
	memcpy(m + o, zone, zl);
	o += zl;
	wire_wr16(m + o, DNS_T_SOA);
	wire_wr16(m + o + 2, DNS_C_IN);
	o += 4;
	/* Owner, MNAME and RNAME: pointers to the question's name; TTL 0. */
	wire_wr16(m + o, 0xC000 | WIRE_HDR_LEN);
	wire_wr16(m + o + 2, DNS_T_SOA);
	wire_wr16(m + o + 4, DNS_C_IN);
	wire_wr32(m + o + 6, 0);
	wire_wr16(m + o + 10, 2 + 2 + 20);
	wire_wr16(m + o + 12, 0xC000 | WIRE_HDR_LEN);
	wire_wr16(m + o + 14, 0xC000 | WIRE_HDR_LEN);
	o += 16;
	wire_wr32(m + o, serial);
	memset(m + o + 4, 0, 16); /* refresh, retry, expire, minimum */
	return o + 20;
}

void dns_notifier_send(struct dns_notifier *nt, const uint8_t (*zones)[255], size_t n_zones,
		       uint32_t serial)
{
	if (!nt || !nt->n_targets)
		return;
	if (n_zones > NOTIFY_MAX_ZONES)
		n_zones = NOTIFY_MAX_ZONES;
	nt->n_zones = n_zones;
	for (size_t ti = 0; ti < nt->n_targets; ti++)
		for (size_t zi = 0; zi < n_zones; zi++) {
			struct pending *pd = &nt->p[ti * NOTIFY_MAX_ZONES + zi];
			uint16_t id;
			if (getrandom(&id, sizeof(id), 0) != sizeof(id))
				id = (uint16_t)(serial ^ (ti << 8) ^ zi);
			pd->len = notify_build(pd->msg, id, zones[zi], serial);
			pd->id = id;
			pd->tries = NOTIFY_TRIES;
			send_one(nt, ti, pd);
		}
	uv_timer_start(&nt->retry, on_retry, NOTIFY_RETRY_MS, NOTIFY_RETRY_MS);
}

static void on_close(uv_handle_t *h)
{
	struct dns_notifier *nt = h->data;
	if (--nt->open == 0) {
		free(nt->targets);
		free(nt->p);
		free(nt);
	}
}

void dns_notifier_stop(struct dns_notifier *nt)
{
	if (!nt)
		return;
	uv_close((uv_handle_t *)&nt->sock4, on_close);
	uv_close((uv_handle_t *)&nt->sock6, on_close);
	uv_close((uv_handle_t *)&nt->retry, on_close);
}
