/* DNS over TCP framing (RFC 1035 4.2.2, RFC 7766 8): each message goes behind
 * its length in two octets, and a stream may split or join messages anywhere.
 *
 * Owns: finding the complete messages in what a connection has received, and
 * how far its receive buffer must grow for the message in progress.
 * Must never: do I/O, allocate, or look inside a message: the server and the
 * fuzz target (tests/fuzz/fuzz_tcp_stream.c) drive this same code. */
#ifndef SVCDNS_TCPFRAME_H
#define SVCDNS_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The largest frame: the prefix and a 65535-octet message. */
#define TCPFRAME_MAX (2 + 65535)

/* What a message handler returns to the framer (or a negative code). */
enum tcpframe_verdict {
	TCPFRAME_NEXT = 0,  /* the message was taken: go on with the next one */
	TCPFRAME_PAUSE = 1, /* the message was taken; stop, the rest stays buffered */
};

/* Called once per complete message, in stream order. A negative return stops
 * the feed at once (the connection is to be closed). */
typedef int (*tcpframe_msg_cb)(void *arg, const uint8_t *msg, size_t len);

/* Hands every complete message at the start of buf[0..len) to cb. Returns the
 * bytes of the frames taken (the caller drops them and keeps the rest, which
 * is at most one incomplete frame unless cb paused), or the first negative
 * value cb returned. A zero-length message is handed over like any other. */
ssize_t tcpframe_feed(const uint8_t *buf, size_t len, tcpframe_msg_cb cb, void *arg);

/* The buffer size that lets the next read complete the frame at the start of
 * buf[0..len): at least len + min_read, at least that whole frame, and never
 * more than TCPFRAME_MAX + min_read, so that no client makes one connection
 * hold more than one message and one read. */
size_t tcpframe_want(const uint8_t *buf, size_t len, size_t min_read);

#endif
