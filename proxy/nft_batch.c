/* Batches of nftables commands sent through libnftables: the same compiler
 * nft uses, in process, so that one change is one netlink transaction and no
 * program is started per change. */
#include "proxy/nft_batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

int nft_batch_init(struct nft_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!b->ctx)
		return -ENOMEM;
	/* Numeric output: what the listing shows is what this program writes. */
	nft_ctx_output_set_flags(b->ctx, NFT_CTX_OUTPUT_NUMERIC_ALL);
	if (nft_ctx_buffer_output(b->ctx) < 0 || nft_ctx_buffer_error(b->ctx) < 0) {
		nft_ctx_free(b->ctx);
		b->ctx = NULL;
		return -ENOMEM;
	}
	return 0;
}

void nft_batch_fini(struct nft_batch *b)
{
	if (b->ctx)
		nft_ctx_free(b->ctx);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

void nft_batch_add(struct nft_batch *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = room ? vsnprintf(b->buf + b->len, room, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n + 1 < room) {
			b->len += (size_t)n;
			b->buf[b->len++] = '\n';
			b->buf[b->len] = '\0';
			b->n_cmds++;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (n >= 0 && cap < b->len + (size_t)n + 2)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
}

/* The first line of what libnftables said about a failure. */
static void keep_error(struct nft_batch *b)
{
	const char *e = nft_ctx_get_error_buffer(b->ctx);
	if (!e || !*e)
		e = "rejected without a message";
	size_t n = strcspn(e, "\n");
	if (n >= sizeof(b->err))
		n = sizeof(b->err) - 1;
	memcpy(b->err, e, n);
	b->err[n] = '\0';
}

int nft_batch_run(struct nft_batch *b)
{
	int ret = 0;
	b->err[0] = '\0';
	if (b->oom)
		ret = -ENOMEM;
	else if (b->n_cmds && nft_run_cmd_from_buffer(b->ctx, b->buf) != 0) {
		keep_error(b);
		ret = -EINVAL;
	}
	/* Reading the buffers resets them for the next run. */
	nft_ctx_get_output_buffer(b->ctx);
	nft_ctx_get_error_buffer(b->ctx);
	b->len = 0;
	b->n_cmds = 0;
	b->oom = false;
	if (b->buf)
		b->buf[0] = '\0';
	return ret;
}

int nft_batch_list(struct nft_batch *b, const char *cmd, char **out)
{
	*out = NULL;
	b->err[0] = '\0';
	if (nft_run_cmd_from_buffer(b->ctx, cmd) != 0) {
		keep_error(b);
		nft_ctx_get_output_buffer(b->ctx);
		return strstr(b->err, "No such file or directory") ? -ENOENT : -EINVAL;
	}
	const char *o = nft_ctx_get_output_buffer(b->ctx);
	*out = strdup(o ? o : "");
	return *out ? 0 : -ENOMEM;
}
