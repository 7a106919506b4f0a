/* One nftables transaction built as netlink messages (libnftnl) and sent to
 * the kernel in one batch over a netlink socket (libmnl): every message of
 * it applies, or none does. No cache is read: the caller names every chain
 * and set, and knows what the table holds.
 *
 * Owns: its netlink socket and the messages of the transaction being built.
 * Must never: read the table back except when nft_state.c asks, at start, or
 * keep anything of a transaction once it was sent (nft_nl_commit empties it).
 * Control thread only. */
#ifndef SVCDNS_NFT_NL_H
#define SVCDNS_NFT_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/nft_impl.h"

struct nft_nl;

/* A socket for transactions on table inet NFTDP_TABLE. 0, -ENOMEM, or the
 * errno of the socket (-EPERM without CAP_NET_ADMIN). */
int nft_nl_open(struct nft_nl **out);
void nft_nl_close(struct nft_nl *n);

/* Each call appends one message; `what` (borrowed until nft_nl_commit)
 * names what it is for, for the error when the kernel refuses it. */
void nft_nl_chain(struct nft_nl *n, bool add, const char *name);
void nft_nl_flush_chain(struct nft_nl *n, const char *name);
void nft_nl_rule(struct nft_nl *n, const char *chain, uint8_t family, const struct nft_rule *r);
/* An affinity set as o describes it. */
void nft_nl_set(struct nft_nl *n, const struct nft_obj *o);
void nft_nl_del_set(struct nft_nl *n, const char *name);
/* Elements of one of the table's maps or sets, keys and verdicts as nft
 * lists them ("10.96.0.10 . 6 . 80", "goto svc-..."); verdicts NULL to
 * delete or for a set. */
void nft_nl_elems(struct nft_nl *n, bool add, unsigned map, const char *const *keys,
		  const char *const *verdicts, size_t count);

/* Out of memory while planning: the transaction will not be sent. */
void nft_nl_abandon(struct nft_nl *n);

/* Messages appended since the last commit. */
size_t nft_nl_pending(const struct nft_nl *n);

/* Sends the transaction and waits for the kernel's answer. 0 (nothing to
 * send is 0 too), -ENOMEM, -EINVAL for an element key that cannot be
 * written, or the kernel's negative errno, with nft_nl_error() saying which
 * message it refused and why. */
int nft_nl_commit(struct nft_nl *n);
const char *nft_nl_error(const struct nft_nl *n);

/* Reading what the table holds, once, at start: every chain and set name
 * (kind 1 chain, 2 set, 3 map), and the elements of one of the table's maps
 * or sets, keys and verdicts as nft_nl_elems takes them ("" in a set). The
 * callbacks return 0 or a negative errno that ends the read. 0, or a
 * negative errno (-ENOENT: no such table or set). */
typedef int (*nft_nl_name_fn)(void *arg, const char *name, unsigned kind);
typedef int (*nft_nl_elem_fn)(void *arg, const char *key, const char *verdict);
int nft_nl_read_names(struct nft_nl *n, nft_nl_name_fn fn, void *arg);
int nft_nl_read_elems(struct nft_nl *n, unsigned map, nft_nl_elem_fn fn, void *arg);

#endif
