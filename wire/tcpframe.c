/* Length-prefixed DNS messages on a byte stream: a pure function over the
 * connection's receive buffer, so that every way a stream can be split is
 * exercised by the fuzzer exactly as the server meets it. See tcpframe.h. */
#include "wire/tcpframe.h"

static size_t frame_len(const uint8_t *p)
{
	return 2u + (size_t)(p[0] << 8 | p[1]);
}

ssize_t tcpframe_feed(const uint8_t *buf, size_t len, tcpframe_msg_cb cb, void *arg)
{
	size_t off = 0;
	while (len - off >= 2) {
		size_t flen = frame_len(buf + off);
		if (len - off < flen)
			break;
		int rc = cb(arg, buf + off + 2, flen - 2);
		if (rc < 0)
			return rc;
		off += flen;
		if (rc == TCPFRAME_PAUSE)
			break;
	}
	return (ssize_t)off;
}

size_t tcpframe_want(const uint8_t *buf, size_t len, size_t min_read)
{
	size_t want = len + min_read;
	if (len >= 2) {
		size_t flen = frame_len(buf);
		if (flen > want)
			want = flen;
	}
	/* A buffer holding a whole frame plus one read is enough for any client:
	 * frames beyond the first are read later, after the first is answered. */
	if (want > TCPFRAME_MAX + min_read)
		want = TCPFRAME_MAX + min_read;
	return want;
}
