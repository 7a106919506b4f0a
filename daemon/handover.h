/* Socket hand-over between an svcdns and the one that replaces it
 * (--handover-socket PATH), so that a restart or an upgrade loses no query.
 *
 * The serving process listens on the Unix socket PATH. A new process started
 * with the same PATH connects there and receives, with SCM_RIGHTS, every
 * listening socket of the old one (each worker's UDP and TCP socket of every
 * DNS address, and the --http one): the same open sockets, queues included.
 * It serves them once its first snapshot is synced, then says so; the old
 * one stops reading them and drains. A datagram is in a socket's queue or
 * already read by one of the two: none falls between.
 *
 * Owns: the Unix socket (listening side and the connection of a hand-over),
 * the messages exchanged on it and the copies of the sockets it received.
 * Must never: serve or close the DNS sockets themselves (dns/server.h does),
 * decide the shutdown order (daemon/lifecycle.h does). Control thread only;
 * handover_take blocks the main thread before the loop serves anything. */
#ifndef SVCDNS_HANDOVER_H
#define SVCDNS_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "dns/server.h"
#include "wire/listen.h"

/* ---- the new process --------------------------------------------------------- */

struct handover_taken;

/* Connects to `path` and receives the listening sockets of the process there,
 * keeping those bound to one of `listen` (and to `http`, "ADDR:PORT", or
 * NULL) and closing the others. *out is NULL when no process answered (no
 * file, a stale one, a process that went away or said nothing in time: the
 * reason is logged); the caller then binds its sockets itself. Returns 0 or
 * -ENOMEM. */
int handover_take(const char *path, const struct dns_listen *listen, size_t n_listen,
		  const char *http, struct handover_taken **out);
/* Per listen address, what was received (n_listen entries). */
const struct dns_inherited *handover_inherited(const struct handover_taken *t);
/* The --http listening socket received, or 0: none. */
int handover_http_fd(const struct handover_taken *t);
/* `serving`: this process now serves the sockets (duplicates of them): the
 * old one is told to stop reading. Otherwise it is left serving as before.
 * Closes the connection and the copies received; frees `t` (NULL: nothing). */
void handover_done(struct handover_taken *t, bool serving);

/* ---- the serving process ----------------------------------------------------- */

struct handover_hooks {
	struct dns_server *server; /* its sockets are handed over */
	size_t n_listen;
	int http_fd; /* the --http listening socket, or -1 */
	/* The new process serves: stop reading and drain (`taken`), or it went
	 * away before it did (!taken): keep serving. */
	void (*done)(void *arg, bool taken);
	void *arg;
};

struct handover_server;

/* Listens on `path` (a stale file there is replaced) for the next process.
 * Returns 0 or a negative errno (logged). */
int handover_listen(uv_loop_t *loop, const char *path, const struct handover_hooks *h,
		    struct handover_server **out);
/* A new process holds the sockets and has not said yet whether it serves. */
bool handover_pending(const struct handover_server *hs);
/* Closes the socket and any hand-over in progress (the file stays: the next
 * process may already own the path). NULL: nothing. */
void handover_stop(struct handover_server *hs);

#endif
