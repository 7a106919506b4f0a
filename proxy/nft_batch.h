/* One nftables transaction written in nft's own language: commands gathered
 * as text in a buffer and handed to libnftables, which compiles them to
 * netlink messages and sends them to the kernel as one batch (all of it
 * applies, or none of it does). Used for the table's static part, at start,
 * and for --proxy-cleanup; the Services go through nft_nl.h, because
 * libnftables reads the table's chains back before every batch.
 *
 * Owns: the libnftables context and the text of the batch being built.
 * Must never: run the nft program, write a Service's chains (a change would
 * pay the read of the whole table), or keep anything of a batch once it was
 * run (nft_batch_run empties it). Control thread only. */
#ifndef SVCDNS_NFT_BATCH_H
#define SVCDNS_NFT_BATCH_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct nft_batch {
	struct nft_ctx *ctx;
	char *buf;
	size_t len, cap;
	size_t n_cmds;
	bool oom;      /* an append failed: the batch is not run */
	char err[512]; /* the first line libnftables reported, after a failure */
};

/* A context for batches. 0, or -ENOMEM. */
int nft_batch_init(struct nft_batch *b);
void nft_batch_fini(struct nft_batch *b);

/* Appends one command (a line of nft's language, without the newline). */
void nft_batch_add(struct nft_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends the batch as one transaction and empties it. 0 (nothing to send is
 * 0 too), -ENOMEM, or -EINVAL with b->err saying what the kernel or the
 * compiler refused. */
int nft_batch_run(struct nft_batch *b);

/* Runs one read-only command ("list map inet svcdns service-ips") with
 * numeric output; *out (free it) holds what it printed. 0, -ENOENT when the
 * object does not exist, or another negative errno. */
int nft_batch_list(struct nft_batch *b, const char *cmd, char **out);

#endif
