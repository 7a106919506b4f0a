/* Fuzz target: a TCP stream of length-prefixed DNS messages, split at points
 * the input chooses, through tcpframe_feed() (wire/tcpframe.h, the code
 * dns/tcp.c runs) with the server's buffer growth rule and dns_answer()
 * behind it. However the stream is cut, and wherever the handler pauses, the
 * same messages get the same responses and the connection ends at the same
 * message. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "dns/query.h"
#include "wire/tcpframe.h"
#include "wire/wire.h"
#include "fuzz.h"
#include "zones/snapshot.h"

/* What dns/tcp.c gives on_tcp_alloc beyond the message in progress. */
#define READ_MIN 4096

/* ---- a small cluster: answers of every size up to a 2 KB headless list ---- */

static struct model_svc_port http_port[] = {
    {.name = "http", .port = 80, .proto = PROTO_TCP, .target_num = 8080},
};
static uint16_t tp[1] = {8080};
static struct view_endpoint eps_db[2], eps_many[120];
static struct model_service svc_web, svc_db, svc_many;
static struct view_service vsvcs[3];
static char *namespaces[] = {"default", "shop"};
static struct snapshot *snap;
static bool trace;

static struct net_addr addr(const char *text)
{
	struct net_addr a;
	FUZZ_CHECK(net_addr_parse(text, &a) == 0, "fixture address %s", text);
	return a;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("SVCDNS_FUZZ_LOG"))
		log_set_level(LOG_ERROR);
	trace = getenv("SVCDNS_FUZZ_TRACE") != NULL;
	svc_web = (struct model_service){
	    .ns = "shop", .name = "web", .n_cluster_ips = 1, .ports = http_port, .n_ports = 1};
	svc_web.cluster_ips[0] = addr("10.96.10.10");
	svc_db = (struct model_service){
	    .ns = "shop", .name = "db", .headless = true, .ports = http_port, .n_ports = 1};
	eps_db[0] = (struct view_endpoint){
	    .addr = addr("10.244.2.21"), .hostname = "db-0", .ready = true, .target_ports = tp};
	eps_db[1] =
	    (struct view_endpoint){.addr = addr("10.244.2.22"), .ready = true, .target_ports = tp};
	svc_many = (struct model_service){
	    .ns = "default", .name = "many", .headless = true, .ports = http_port, .n_ports = 1};
	for (int i = 0; i < 120; i++) {
		char t[32];
		snprintf(t, sizeof(t), "10.250.0.%d", i + 1);
		eps_many[i] =
		    (struct view_endpoint){.addr = addr(t), .ready = true, .target_ports = tp};
	}
	/* sorted by (ns, name), as model_view_build gives them */
	vsvcs[0] = (struct view_service){.svc = &svc_many, .eps = eps_many, .n_eps = 120};
	vsvcs[1] = (struct view_service){.svc = &svc_db, .eps = eps_db, .n_eps = 2};
	vsvcs[2] = (struct view_service){.svc = &svc_web};
	struct model_view view = {
	    .svcs = vsvcs, .n_svcs = 3, .namespaces = namespaces, .n_namespaces = 2};
	/* static: a snapshot keeps pointing at its settings */
	static struct snapshot_config cfg;
	cfg = (struct snapshot_config){.zone = "cluster.local", .ttl = 5, .hostname = "fuzz"};
	FUZZ_CHECK(snapshot_build(&cfg, &view, NULL, &snap) == 0, "snapshot_build");
	free(snap->view); /* the view is static here */
	snap->view = NULL;
	snap->synced = true;
	return 0;
}

/* ---- one connection, as dns/tcp.c runs it ----------------------------------- */

struct conn {
	uint8_t *buf;
	size_t len, cap;
	bool closed;
	uint8_t pause_mask; /* message i pauses the feed when bit i % 8 is set */
	size_t n_msgs;	    /* messages answered (or that closed the connection) */
	uint64_t digest;    /* of every response, in order */
	uint8_t resp[DNS_MAX_MSG];
};

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static int on_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct conn *c = arg;
	struct dns_query_info info;
	size_t n = c->n_msgs++;
	size_t rlen = dns_answer(snap, msg, len, c->resp, sizeof(c->resp), DNS_TCP, &info);
	if (rlen == 0) {
		/* not a query: the server closes here (RFC 7766) */
		FUZZ_CHECK(len < WIRE_HDR_LEN || wire_hdr_has(msg, WIRE_QR),
			   "message %zu of %zu bytes unanswered", n, len);
		c->digest = mix(c->digest, (const uint8_t *)"close", 5);
		return -1;
	}
	FUZZ_CHECK(rlen >= WIRE_HDR_LEN && rlen <= sizeof(c->resp), "message %zu: %zu bytes", n,
		   rlen);
	FUZZ_CHECK(wire_hdr_id(c->resp) == wire_hdr_id(msg), "message %zu: ID not echoed", n);
	uint8_t l[2];
	wire_wr16(l, (uint16_t)rlen);
	c->digest = mix(mix(c->digest, l, 2), c->resp, rlen);
	return (c->pause_mask >> (n % 8)) & 1 ? TCPFRAME_PAUSE : TCPFRAME_NEXT;
}

/* The server's read callback and its resumption: frames are answered while
 * the buffer holds any; a paused feed is resumed before the next read. */
static void process(struct conn *c)
{
	for (;;) {
		ssize_t used = tcpframe_feed(c->buf, c->len, on_msg, c);
		if (used < 0) {
			c->closed = true;
			return;
		}
		FUZZ_CHECK((size_t)used <= c->len, "consumed %zd of %zu", used, c->len);
		memmove(c->buf, c->buf + used, c->len - (size_t)used);
		c->len -= (size_t)used;
		/* what stays is one incomplete frame at most */
		if (c->len < 2 || c->len < 2u + wire_rd16(c->buf))
			return;
		FUZZ_CHECK(used > 0, "a complete frame left and nothing consumed");
	}
}

/* Feeds `stream` to a fresh connection in reads of at most piece(i) bytes,
 * each also bounded by the room on_tcp_alloc would give. */
static void run(struct conn *c, const uint8_t *stream, size_t len, const uint8_t *pieces,
		size_t n_pieces)
{
	size_t off = 0, i = 0;
	while (off < len && !c->closed) {
		size_t want = tcpframe_want(c->buf, c->len, READ_MIN);
		FUZZ_CHECK(want <= TCPFRAME_MAX + READ_MIN, "buffer of %zu bytes asked", want);
		if (want > c->cap) {
			uint8_t *nb = realloc(c->buf, want);
			FUZZ_CHECK(nb, "out of memory");
			c->buf = nb;
			c->cap = want;
		}
		size_t room = c->cap - c->len;
		FUZZ_CHECK(room > 0, "no room to read into (%zu held)", c->len);
		size_t n = n_pieces ? (pieces[i++ % n_pieces] | 1u) : len - off;
		if (n > room)
			n = room;
		if (n > len - off)
			n = len - off;
		memcpy(c->buf + c->len, stream + off, n);
		c->len += n;
		off += n;
		process(c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* byte 0: how many split sizes follow (low 3 bits) and the pause mask's
	 * seed; then the split sizes; then the stream */
	if (size < 1)
		return 0;
	size_t n_pieces = data[0] & 7;
	if (size < 1 + n_pieces)
		return 0;
	const uint8_t *pieces = data + 1;
	const uint8_t *stream = data + 1 + n_pieces;
	size_t len = size - 1 - n_pieces;

	static struct conn whole, split, bytes, paused;
	static const uint8_t one = 1;
	struct conn *runs[] = {&whole, &split, &bytes, &paused};
	for (size_t r = 0; r < 4; r++) {
		runs[r]->buf = NULL;
		runs[r]->len = runs[r]->cap = runs[r]->n_msgs = 0;
		runs[r]->closed = false;
		runs[r]->digest = 0xcbf29ce484222325ull;
		runs[r]->pause_mask = 0;
	}
	paused.pause_mask = (uint8_t)(data[0] | 0x01);
	run(&whole, stream, len, NULL, 0);
	run(&split, stream, len, pieces, n_pieces);
	run(&bytes, stream, len, &one, 1);
	run(&paused, stream, len, pieces, n_pieces);
	if (trace)
		fprintf(stderr, "%zu bytes: %zu messages%s\n", len, whole.n_msgs,
			whole.closed ? ", closed" : "");
	for (size_t r = 1; r < 4; r++) {
		FUZZ_CHECK(runs[r]->n_msgs == whole.n_msgs && runs[r]->closed == whole.closed &&
			       runs[r]->digest == whole.digest,
			   "run %zu: %zu messages%s, read whole: %zu%s", r, runs[r]->n_msgs,
			   runs[r]->closed ? " closed" : "", whole.n_msgs,
			   whole.closed ? " closed" : "");
		if (!whole.closed)
			FUZZ_CHECK(
			    runs[r]->len == whole.len &&
				(!whole.len || memcmp(runs[r]->buf, whole.buf, whole.len) == 0),
			    "run %zu keeps %zu bytes, read whole %zu", r, runs[r]->len, whole.len);
	}
	for (size_t r = 0; r < 4; r++)
		free(runs[r]->buf);
	return 0;
}
