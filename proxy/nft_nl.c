/* nftables transactions as netlink messages: libnftnl builds them into one
 * batch, libmnl's socket sends it in one sendmsg, handled by the kernel in
 * the sender's context (its answer is queued when sendmsg returns). */
#include "proxy/nft_nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>

/* Big enough for any one message: an element message is kept under the
 * 64 KiB an attribute nest can hold. */
#define PAGE_BYTES    (256 * 1024)
#define OVERRUN_BYTES (128 * 1024)
#define ELEMS_PER_MSG 128

/* nft's data types, so that `nft list` shows the sets' keys as it would. */
#define TYPE_IPADDR  7
#define TYPE_IP6ADDR 8

struct nft_nl {
	struct mnl_socket *nl;
	struct nftnl_batch *batch;
	uint32_t portid, seq, first_seq, set_id;
	size_t n_msgs;
	int sndbuf;
	bool oom, bad_key;
	char err[512];
	/* one read of the kernel's answer, walked as netlink headers */
	_Alignas(struct nlmsghdr) char answer[64 * 1024];
};

int nft_nl_open(struct nft_nl **out)
{
	struct nft_nl *n = calloc(1, sizeof(*n));
	int ret = -ENOMEM;
	if (!n)
		return ret;
	n->nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!n->nl) {
		ret = -errno;
		goto fail;
	}
	if (mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto fail;
	}
	n->portid = mnl_socket_get_portid(n->nl);
	int on = 1, rcv = 4 << 20;
	mnl_socket_setsockopt(n->nl, NETLINK_EXT_ACK, &on, sizeof(on));
	setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
	n->batch = nftnl_batch_alloc(PAGE_BYTES, OVERRUN_BYTES);
	if (!n->batch)
		goto fail;
	n->seq = 1;
	*out = n;
	return 0;
fail:
	nft_nl_close(n);
	return ret;
}

void nft_nl_close(struct nft_nl *n)
{
	if (!n)
		return;
	if (n->batch)
		nftnl_batch_free(n->batch);
	if (n->nl)
		mnl_socket_close(n->nl);
	free(n);
}

void nft_nl_abandon(struct nft_nl *n)
{
	n->oom = true;
}

size_t nft_nl_pending(const struct nft_nl *n)
{
	return n->n_msgs;
}

const char *nft_nl_error(const struct nft_nl *n)
{
	return n->err;
}

/* The header of the next message; the batch begins with the first one. */
static struct nlmsghdr *msg(struct nft_nl *n, uint16_t type, uint16_t flags)
{
	if (!n->n_msgs) {
		n->first_seq = n->seq;
		nftnl_batch_begin(nftnl_batch_buffer(n->batch), n->seq++);
		nftnl_batch_update(n->batch);
	}
	n->n_msgs++;
	return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(n->batch), type, NFPROTO_INET, flags,
				     n->seq++);
}

static void done(struct nft_nl *n)
{
	if (nftnl_batch_update(n->batch) < 0)
		n->oom = true;
}

void nft_nl_chain(struct nft_nl *n, bool add, const char *name)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	if (!c) {
		n->oom = true;
		return;
	}
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFTDP_TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	nftnl_chain_nlmsg_build_payload(
	    msg(n, add ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, add ? NLM_F_CREATE : 0), c);
	done(n);
	nftnl_chain_free(c);
}

void nft_nl_flush_chain(struct nft_nl *n, const char *name)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r) {
		n->oom = true;
		return;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFTDP_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, name);
	nftnl_rule_nlmsg_build_payload(msg(n, NFT_MSG_DELRULE, 0), r);
	done(n);
	nftnl_rule_free(r);
}

/* ---- rules ------------------------------------------------------------- */

static struct nftnl_expr *expr(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);
	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

static bool e_meta(struct nftnl_rule *r, uint32_t key, uint32_t dreg)
{
	struct nftnl_expr *e = expr(r, "meta");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
	return true;
}

static bool e_cmp(struct nftnl_rule *r, uint32_t sreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = expr(r, "cmp");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	return true;
}

static bool e_imm_data(struct nftnl_rule *r, uint32_t dreg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = expr(r, "immediate");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, dreg);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
	return true;
}

static bool e_verdict(struct nftnl_rule *r, int code, const char *chain)
{
	struct nftnl_expr *e = expr(r, "immediate");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)code);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	return true;
}

/* "ip saddr" (or ip6) into register 1, behind the family check nft adds in
 * an inet table (and needs to list it as "ip saddr"). */
static bool e_saddr(struct nftnl_rule *r, uint8_t family)
{
	uint8_t proto = family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	if (!e_meta(r, NFT_META_NFPROTO, NFT_REG_1) || !e_cmp(r, NFT_REG_1, &proto, 1))
		return false;
	struct nftnl_expr *e = expr(r, "payload");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, family == AF_INET6 ? 8 : 12);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, family == AF_INET6 ? 16 : 4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return true;
}

static bool e_lookup(struct nftnl_rule *r, const char *set, bool verdict)
{
	struct nftnl_expr *e = expr(r, "lookup");
	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (verdict)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	return true;
}

static uint32_t addr_len(uint8_t family)
{
	return family == AF_INET6 ? 16 : 4;
}

static bool step_exprs(struct nftnl_rule *r, uint8_t family, const struct nft_step *s)
{
	struct nftnl_expr *e;
	switch (s->kind) {
	case NS_SADDR_EQ:
		return e_saddr(r, family) && e_cmp(r, NFT_REG_1, s->addr.bytes, addr_len(family));
	case NS_SADDR_IN:
		return e_saddr(r, family) && e_lookup(r, s->ref, false);
	case NS_SADDR_UPDATE:
		if (!e_saddr(r, family) || !(e = expr(r, "dynset")))
			return false;
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
		nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, s->ref);
		return true;
	case NS_L4PROTO_EQ:
		return e_meta(r, NFT_META_L4PROTO, NFT_REG_1) && e_cmp(r, NFT_REG_1, &s->proto, 1);
	case NS_FIB_SADDR_LOCAL: {
		uint32_t local = RTN_LOCAL;
		if (!(e = expr(r, "fib")))
			return false;
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		return e_cmp(r, NFT_REG_1, &local, sizeof(local));
	}
	case NS_JUMP:
		return e_verdict(r, NFT_JUMP, s->ref);
	case NS_GOTO:
		return e_verdict(r, NFT_GOTO, s->ref);
	case NS_DROP:
		return e_verdict(r, NF_DROP, NULL);
	case NS_DNAT: {
		uint16_t port = htons(s->port);
		if (!e_imm_data(r, NFT_REG_1, s->addr.bytes, addr_len(family)) ||
		    !e_imm_data(r, NFT_REG_2, &port, sizeof(port)) || !(e = expr(r, "nat")))
			return false;
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY,
				   family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
		return true;
	}
	case NS_NUMGEN_ZERO: {
		uint32_t zero = 0;
		if (!(e = expr(r, "numgen")))
			return false;
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_MODULUS, s->n);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_OFFSET, 0);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NG_DREG, NFT_REG_1);
		return e_cmp(r, NFT_REG_1, &zero, sizeof(zero));
	}
	}
	return false;
}

void nft_nl_rule(struct nft_nl *n, const char *chain, uint8_t family, const struct nft_rule *rl)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	if (!r) {
		n->oom = true;
		return;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFTDP_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	for (size_t i = 0; i < rl->n; i++)
		if (!step_exprs(r, family, &rl->s[i]))
			n->oom = true;
	nftnl_rule_nlmsg_build_payload(msg(n, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND), r);
	done(n);
	nftnl_rule_free(r);
}

/* ---- sets and elements ---------------------------------------------------- */

static struct nftnl_set *set_named(const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (s) {
		nftnl_set_set_str(s, NFTNL_SET_TABLE, NFTDP_TABLE);
		nftnl_set_set_str(s, NFTNL_SET_NAME, name);
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	}
	return s;
}

/* Sends the elements gathered in s (a NEWSETELEM or DELSETELEM message). */
static void elems_msg(struct nft_nl *n, struct nftnl_set *s, bool add)
{
	nftnl_set_elems_nlmsg_build_payload(
	    msg(n, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, add ? NLM_F_CREATE : 0), s);
	done(n);
}

static struct nftnl_set_elem *elem_verdict(const char *verdict, const void *key, uint32_t len)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	if (!e)
		return NULL;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, len);
	if (!verdict)
		return e;
	if (strncmp(verdict, "goto ", 5) == 0 || strncmp(verdict, "jump ", 5) == 0) {
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT,
				       (uint32_t)(verdict[0] == 'g' ? NFT_GOTO : NFT_JUMP));
		nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, verdict + 5);
	} else {
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT,
				       strcmp(verdict, "accept") == 0 ? NF_ACCEPT : NF_DROP);
	}
	return e;
}

void nft_nl_set(struct nft_nl *n, const struct nft_obj *o)
{
	struct nftnl_set *s = set_named(o->name);
	if (!s) {
		n->oom = true;
		return;
	}
	nftnl_set_set_u32(s, NFTNL_SET_ID, ++n->set_id);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE,
			  o->family == AF_INET6 ? TYPE_IP6ADDR : TYPE_IPADDR);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, addr_len(o->family));
	nftnl_set_set_u64(s, NFTNL_SET_TIMEOUT, (uint64_t)o->timeout_s * 1000);
	nftnl_set_nlmsg_build_payload(msg(n, NFT_MSG_NEWSET, NLM_F_CREATE), s);
	done(n);
	nftnl_set_free(s);
}

void nft_nl_del_set(struct nft_nl *n, const char *name)
{
	struct nftnl_set *s = set_named(name);
	if (!s) {
		n->oom = true;
		return;
	}
	nftnl_set_nlmsg_build_payload(msg(n, NFT_MSG_DELSET, 0), s);
	done(n);
	nftnl_set_free(s);
}

/* "a . b . c" as the key bytes of map m: an address (4 or 16 bytes), then
 * each of protocol and port in 4 bytes of their own (nft pads every part of
 * a concatenation to 32 bits), the port in network order. */
static int key_bytes(unsigned m, const char *text, uint8_t *out, uint32_t *len)
{
	bool has_addr = m != NM_NP4 && m != NM_NP6 && m != NM_NPNOEP;
	bool v6 = m == NM_SVC6 || m == NM_NOEP6 || m == NM_CIP6;
	size_t want = nft_map_is_set(m) ? 1 : has_addr ? 3 : 2, np = 0;
	char parts[3][64];
	for (const char *p = text; p && np < 3; np++) {
		const char *sep = strstr(p, " . ");
		size_t l = sep ? (size_t)(sep - p) : strlen(p);
		if (l >= sizeof(parts[0]))
			return -EINVAL;
		memcpy(parts[np], p, l);
		parts[np][l] = '\0';
		p = sep ? sep + 3 : NULL;
	}
	if (np != want)
		return -EINVAL;
	uint32_t off = 0;
	if (has_addr) {
		if (inet_pton(v6 ? AF_INET6 : AF_INET, parts[0], out) != 1)
			return -EINVAL;
		off = addr_len(v6 ? AF_INET6 : AF_INET);
	}
	for (size_t i = has_addr ? 1 : 0; i < np; i++) {
		unsigned long v = strtoul(parts[i], NULL, 10);
		memset(out + off, 0, 4);
		if (i + 1 == np) {
			uint16_t port = htons((uint16_t)v);
			memcpy(out + off, &port, 2);
		} else {
			out[off] = (uint8_t)v;
		}
		off += 4;
	}
	*len = off;
	return 0;
}

void nft_nl_elems(struct nft_nl *n, bool add, unsigned map, const char *const *keys,
		  const char *const *verdicts, size_t count)
{
	for (size_t i = 0; i < count;) {
		struct nftnl_set *s = set_named(nft_map_names[map]);
		if (!s) {
			n->oom = true;
			return;
		}
		for (size_t k = 0; k < ELEMS_PER_MSG && i < count; k++, i++) {
			uint8_t key[64];
			uint32_t len = 0;
			if (key_bytes(map, keys[i], key, &len) < 0) {
				n->bad_key = true;
				snprintf(n->err, sizeof(n->err), "cannot write the key %s of %s",
					 keys[i], nft_map_names[map]);
				continue;
			}
			struct nftnl_set_elem *e =
			    elem_verdict(add && verdicts ? verdicts[i] : NULL, key, len);
			if (!e) {
				n->oom = true;
				break;
			}
			nftnl_set_elem_add(s, e);
		}
		elems_msg(n, s, add);
		nftnl_set_free(s);
	}
}

/* ---- sending ----------------------------------------------------------------- */

/* What the refused message was about, from its copy in the error. */
static void describe(struct nft_nl *n, int error, const struct nlmsghdr *m)
{
	const char *what = "the transaction", *name = NULL;
	char *own = NULL;
	uint16_t type = NFNL_MSG_TYPE(m->nlmsg_type);
	if (m->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nfgenmsg))) {
		if (type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN) {
			struct nftnl_chain *c = nftnl_chain_alloc();
			if (c && nftnl_chain_nlmsg_parse(m, c) >= 0 &&
			    nftnl_chain_is_set(c, NFTNL_CHAIN_NAME))
				own = strdup(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
			what = type == NFT_MSG_NEWCHAIN ? "adding chain" : "deleting chain";
			if (c)
				nftnl_chain_free(c);
		} else if (type == NFT_MSG_NEWRULE || type == NFT_MSG_DELRULE) {
			struct nftnl_rule *r = nftnl_rule_alloc();
			if (r && nftnl_rule_nlmsg_parse(m, r) >= 0 &&
			    nftnl_rule_is_set(r, NFTNL_RULE_CHAIN))
				own = strdup(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
			what =
			    type == NFT_MSG_NEWRULE ? "adding a rule to chain" : "flushing chain";
			if (r)
				nftnl_rule_free(r);
		} else if (type == NFT_MSG_NEWSET || type == NFT_MSG_DELSET ||
			   type == NFT_MSG_NEWSETELEM || type == NFT_MSG_DELSETELEM) {
			struct nftnl_set *s = nftnl_set_alloc();
			bool el = type == NFT_MSG_NEWSETELEM || type == NFT_MSG_DELSETELEM;
			if (s &&
			    (el ? nftnl_set_elems_nlmsg_parse(m, s)
				: nftnl_set_nlmsg_parse(m, s)) >= 0 &&
			    nftnl_set_is_set(s, NFTNL_SET_NAME))
				own = strdup(nftnl_set_get_str(s, NFTNL_SET_NAME));
			what = type == NFT_MSG_NEWSET	    ? "adding set"
			       : type == NFT_MSG_DELSET	    ? "deleting set"
			       : type == NFT_MSG_NEWSETELEM ? "adding elements to"
							    : "deleting elements from";
			if (s)
				nftnl_set_free(s);
		}
		name = own;
	}
	snprintf(n->err, sizeof(n->err), "%s (%s%s%s)", strerror(-error), what, name ? " " : "",
		 name ? name : "");
	free(own);
}

/* Reads what the kernel queued about the batch: 0, or its first error. */
static int read_answer(struct nft_nl *n, uint32_t last_seq)
{
	char *buf = n->answer;
	int first = 0;
	for (;;) {
		ssize_t len = recv(mnl_socket_get_fd(n->nl), buf, sizeof(n->answer), MSG_DONTWAIT);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (!first) {
				first = -errno;
				snprintf(n->err, sizeof(n->err), "reading the kernel's answer: %s",
					 strerror(errno));
			}
			break;
		}
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		int left = (int)len;
		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < n->first_seq ||
			    h->nlmsg_seq > last_seq)
				continue;
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
			if (e->error && !first) {
				first = e->error;
				describe(n, e->error, &e->msg);
			}
		}
	}
	return first;
}

static int send_batch(struct nft_nl *n)
{
	int niov = nftnl_batch_iovec_len(n->batch);
	struct iovec *iov = calloc((size_t)niov, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	nftnl_batch_iovec(n->batch, iov, (uint32_t)niov);
	size_t total = 0;
	for (int i = 0; i < niov; i++)
		total += iov[i].iov_len;
	/* The whole batch is one datagram: the socket's buffer must hold it. */
	if (total + 4096 > (size_t)n->sndbuf) {
		int sz = (int)(total + 65536);
		if (setsockopt(mnl_socket_get_fd(n->nl), SOL_SOCKET, SO_SNDBUFFORCE, &sz,
			       sizeof(sz)) == 0)
			n->sndbuf = sz;
	}
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct msghdr mh = {.msg_name = &kernel,
			    .msg_namelen = sizeof(kernel),
			    .msg_iov = iov,
			    .msg_iovlen = (size_t)niov};
	ssize_t sent = sendmsg(mnl_socket_get_fd(n->nl), &mh, 0);
	int ret = sent < 0 ? -errno : 0;
	free(iov);
	if (ret < 0)
		snprintf(n->err, sizeof(n->err), "sending the batch: %s", strerror(-ret));
	return ret;
}

/* Empties the batch for the next transaction. */
static void reset(struct nft_nl *n)
{
	nftnl_batch_free(n->batch);
	n->batch = nftnl_batch_alloc(PAGE_BYTES, OVERRUN_BYTES);
	n->n_msgs = 0;
	n->set_id = 0;
	n->oom = n->bad_key = !n->batch;
}

int nft_nl_commit(struct nft_nl *n)
{
	int ret = 0;
	if (n->oom || !n->batch) {
		snprintf(n->err, sizeof(n->err), "out of memory building the batch");
		ret = -ENOMEM;
	} else if (n->bad_key) {
		ret = -EINVAL;
	} else if (n->n_msgs) {
		n->err[0] = '\0';
		uint32_t last = n->seq - 1;
		nftnl_batch_end(nftnl_batch_buffer(n->batch), n->seq++);
		nftnl_batch_update(n->batch);
		ret = send_batch(n);
		if (ret == 0)
			ret = read_answer(n, last);
	}
	reset(n);
	return ret;
}

/* ---- reading the table (at start) ------------------------------------------- */

struct dump {
	struct nft_nl *n;
	uint16_t type;
	unsigned map;
	nft_nl_name_fn name_fn;
	nft_nl_elem_fn elem_fn;
	void *arg;
	int ret;
};

static int dump_names(const struct nlmsghdr *h, struct dump *d)
{
	const char *name = NULL;
	unsigned kind = 1;
	if (d->type == NFT_MSG_GETCHAIN) {
		struct nftnl_chain *c = nftnl_chain_alloc();
		if (!c)
			return -ENOMEM;
		/* The kernel dumps every inet table's chains. */
		if (nftnl_chain_nlmsg_parse(h, c) >= 0 && nftnl_chain_is_set(c, NFTNL_CHAIN_NAME) &&
		    nftnl_chain_is_set(c, NFTNL_CHAIN_TABLE) &&
		    strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), NFTDP_TABLE) == 0)
			name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
		int ret = name ? d->name_fn(d->arg, name, 1) : 0;
		nftnl_chain_free(c);
		return ret;
	}
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	if (nftnl_set_nlmsg_parse(h, s) >= 0 && nftnl_set_is_set(s, NFTNL_SET_NAME) &&
	    nftnl_set_is_set(s, NFTNL_SET_TABLE) &&
	    strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE), NFTDP_TABLE) == 0) {
		name = nftnl_set_get_str(s, NFTNL_SET_NAME);
		kind = nftnl_set_get_u32(s, NFTNL_SET_FLAGS) & NFT_SET_MAP ? 3 : 2;
	}
	int ret = name ? d->name_fn(d->arg, name, kind) : 0;
	nftnl_set_free(s);
	return ret;
}

/* The key of map m as nft lists it (the inverse of key_bytes). */
static bool key_text(unsigned m, const uint8_t *k, uint32_t len, char *out, size_t size)
{
	bool has_addr = m != NM_NP4 && m != NM_NP6 && m != NM_NPNOEP;
	bool v6 = m == NM_SVC6 || m == NM_NOEP6 || m == NM_CIP6;
	uint32_t al = has_addr ? addr_len(v6 ? AF_INET6 : AF_INET) : 0;
	uint32_t want = al + (nft_map_is_set(m) ? 0 : 8);
	char a[64] = "";
	if (len != want || (has_addr && !inet_ntop(v6 ? AF_INET6 : AF_INET, k, a, sizeof(a))))
		return false;
	if (nft_map_is_set(m)) {
		snprintf(out, size, "%s", a);
		return true;
	}
	uint16_t port;
	memcpy(&port, k + al + 4, 2);
	snprintf(out, size, "%s%s%u . %u", a, has_addr ? " . " : "", k[al], ntohs(port));
	return true;
}

static int dump_elems(const struct nlmsghdr *h, struct dump *d)
{
	struct nftnl_set *s = nftnl_set_alloc();
	if (!s)
		return -ENOMEM;
	int ret = 0;
	if (nftnl_set_elems_nlmsg_parse(h, s) < 0)
		goto out;
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	if (!it) {
		ret = -ENOMEM;
		goto out;
	}
	for (struct nftnl_set_elem *e = nftnl_set_elems_iter_next(it); e && ret == 0;
	     e = nftnl_set_elems_iter_next(it)) {
		uint32_t len = 0;
		const uint8_t *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
		char key[128], verdict[300] = "";
		if (!k || !key_text(d->map, k, len, key, sizeof(key)))
			continue;
		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) {
			int code = (int)nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT);
			const char *chain = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)
						? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
						: "";
			if (code == NFT_GOTO || code == NFT_JUMP)
				snprintf(verdict, sizeof(verdict), "%s %s",
					 code == NFT_GOTO ? "goto" : "jump", chain);
			else
				snprintf(verdict, sizeof(verdict), "%s",
					 code == NF_ACCEPT ? "accept" : "drop");
		}
		ret = d->elem_fn(d->arg, key, verdict);
	}
	nftnl_set_elems_iter_destroy(it);
out:
	nftnl_set_free(s);
	return ret;
}

static int dump_cb(const struct nlmsghdr *h, void *arg)
{
	struct dump *d = arg;
	int ret = d->type == NFT_MSG_GETSETELEM ? dump_elems(h, d) : dump_names(h, d);
	if (ret < 0) {
		d->ret = ret;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

/* One dump request of the table's chains, sets, or one set's elements. */
static int dump_run(struct nft_nl *n, struct dump *d)
{
	_Alignas(struct nlmsghdr) char req[512];
	uint32_t seq = n->seq++;
	struct nlmsghdr *h = nftnl_nlmsg_build_hdr(req, d->type, NFPROTO_INET, NLM_F_DUMP, seq);
	if (d->type == NFT_MSG_GETCHAIN) {
		struct nftnl_chain *c = nftnl_chain_alloc();
		if (!c)
			return -ENOMEM;
		nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFTDP_TABLE);
		nftnl_chain_nlmsg_build_payload(h, c);
		nftnl_chain_free(c);
	} else {
		struct nftnl_set *s =
		    set_named(d->type == NFT_MSG_GETSETELEM ? nft_map_names[d->map] : "");
		if (!s)
			return -ENOMEM;
		if (d->type == NFT_MSG_GETSET)
			nftnl_set_unset(s, NFTNL_SET_NAME);
		if (d->type == NFT_MSG_GETSETELEM)
			nftnl_set_elems_nlmsg_build_payload(h, s);
		else
			nftnl_set_nlmsg_build_payload(h, s);
		nftnl_set_free(s);
	}
	if (mnl_socket_sendto(n->nl, h, h->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t len = mnl_socket_recvfrom(n->nl, n->answer, sizeof(n->answer));
		if (len < 0)
			return -errno;
		int ret = mnl_cb_run(n->answer, (size_t)len, seq, n->portid, dump_cb, d);
		if (ret == MNL_CB_STOP)
			return 0;
		if (ret < 0)
			return d->ret ? d->ret : -errno;
	}
}

int nft_nl_read_names(struct nft_nl *n, nft_nl_name_fn fn, void *arg)
{
	struct dump d = {.n = n, .type = NFT_MSG_GETCHAIN, .name_fn = fn, .arg = arg};
	int ret = dump_run(n, &d);
	if (ret == 0) {
		d.type = NFT_MSG_GETSET;
		ret = dump_run(n, &d);
	}
	return ret;
}

int nft_nl_read_elems(struct nft_nl *n, unsigned map, nft_nl_elem_fn fn, void *arg)
{
	struct dump d = {.n = n, .type = NFT_MSG_GETSETELEM, .map = map, .elem_fn = fn, .arg = arg};
	return dump_run(n, &d);
}
