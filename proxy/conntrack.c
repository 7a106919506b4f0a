/* Deleting the UDP conntrack entries of removed endpoints: one dump of the
 * table per family, and a delete for each entry whose reply comes from one of
 * the endpoints (libnetfilter_conntrack). */
#include "proxy/conntrack.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

struct ct_walk {
	const struct conntrack_target *t;
	size_t n;
	struct nfct_handle *del;
	int deleted;
};

static bool matches(const struct nf_conntrack *ct, const struct conntrack_target *t)
{
	uint16_t port = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
	if (port != t->port)
		return false;
	if (t->addr.family == AF_INET) {
		uint32_t a = nfct_get_attr_u32(ct, ATTR_REPL_IPV4_SRC);
		return memcmp(&a, t->addr.bytes, 4) == 0;
	}
	const void *a6 = nfct_get_attr(ct, ATTR_REPL_IPV6_SRC);
	return a6 && memcmp(a6, t->addr.bytes, 16) == 0;
}

static int on_entry(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *arg)
{
	struct ct_walk *w = arg;
	(void)type;
	if (nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_UDP)
		return NFCT_CB_CONTINUE;
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].addr.family == nfct_get_attr_u8(ct, ATTR_L3PROTO) &&
		    matches(ct, &w->t[i])) {
			if (nfct_query(w->del, NFCT_Q_DESTROY, ct) == 0)
				w->deleted++;
			break;
		}
	return NFCT_CB_CONTINUE;
}

int conntrack_drop_udp(const struct conntrack_target *t, size_t n)
{
	if (n == 0)
		return 0;
	struct ct_walk w = {.t = t, .n = n};
	struct nfct_handle *dump = nfct_open(CONNTRACK, 0);
	w.del = nfct_open(CONNTRACK, 0);
	int ret = 0;
	if (!dump || !w.del) {
		ret = errno ? -errno : -EPROTONOSUPPORT;
		goto out;
	}
	nfct_callback_register(dump, NFCT_T_ALL, on_entry, &w);
	for (int fam = 0; fam < 2; fam++) {
		uint32_t family = fam ? AF_INET6 : AF_INET;
		bool wanted = false;
		for (size_t i = 0; i < n; i++)
			wanted |= t[i].addr.family == family;
		if (wanted && nfct_query(dump, NFCT_Q_DUMP, &family) < 0) {
			ret = -errno;
			goto out;
		}
	}
	ret = w.deleted;
out:
	if (dump)
		nfct_close(dump);
	if (w.del)
		nfct_close(w.del);
	return ret;
}
