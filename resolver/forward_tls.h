/* DNS over TLS to upstream servers (RFC 7858), on libuv and OpenSSL: the
 * third kind of exchange of forward_io.h's libuv network, beside UDP and
 * TCP. A TLS upstream is only ever asked over TLS: a connection whose
 * certificate does not verify (against the system's CAs or --upstream-ca, and
 * the upstream's server name or address) fails like a refused connection, so
 * that the query moves on to the next upstream, and nothing is sent in
 * plaintext instead. Internal to resolver/.
 *
 * Owns: the shared client context (CAs, TLS 1.2 and later, peer
 * verification), and per loop one connection per TLS upstream, opened on
 * demand, kept open while used and closed after a while idle, with its
 * pipelined queries matched by ID, its session kept for resumption, and a
 * growing pause before the next connection after a failed one.
 * Must never: decide which upstream to ask or when to give up (forward_io.h
 * holds it to moving bytes), or fall back to plaintext.
 * Threads: the context is made and freed on the control thread and shared,
 * read-only, by every loop; a pool and its connections belong to one loop and
 * are used on its thread only. */
#ifndef SVCDNS_FORWARD_TLS_H
#define SVCDNS_FORWARD_TLS_H

#include <uv.h>

#include "resolver/forward_io.h"

struct upstream_set;
struct fwd_tls_ctx;

/* The client context: verified against the PEM certificates in ca_file, or
 * the system's CAs when it is NULL. Returns 0 or a negative errno, logged. */
int fwd_tls_ctx_new(const char *ca_file, struct fwd_tls_ctx **out);
void fwd_tls_ctx_free(struct fwd_tls_ctx *c);

/* The TLS connections of `loop` to the TLS servers of `ups` (ups->tls must be
 * set), counting into counter slot `slot`. */
struct fwd_tls;

int fwd_tls_new(uv_loop_t *loop, struct upstream_set *ups, unsigned slot, struct fwd_tls **out);
/* As fwd_net's send, for an upstream with tls set. */
int fwd_tls_send(struct fwd_tls *t, const struct fwd_xchg_req *r, struct fwd_xchg **out);
void fwd_tls_end(struct fwd_xchg *x);
/* On the loop's thread, once every exchange has ended. */
void fwd_tls_close(struct fwd_tls *t);
/* After the loop has ended. NULL is fine. */
void fwd_tls_free(struct fwd_tls *t);

#endif
