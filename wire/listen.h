/* Transport addresses of DNS servers ("ADDR:PORT", "[V6]:PORT", "ADDR"): what
 * svcdns listens on (--listen) and where the resolver sends (--upstream,
 * resolv.conf, stub domains), in one type so that the resolver can tell its
 * own listeners from its upstreams. An upstream may also be reached over TLS
 * ("tls://ADDR[:PORT][#SERVERNAME]", RFC 7858).
 *
 * Owns: the parse and the text kept for log lines. Must never allocate or log;
 * any thread. */
#ifndef SVCDNS_LISTEN_H
#define SVCDNS_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

#define DNS_NAME_TEXT 254 /* a host name in text, with its NUL */
#define DNS_TLS_PORT  853

struct dns_listen {
	struct sockaddr_storage addr;
	socklen_t len;
	char text[80];
	bool tls;		      /* DNS over TLS (upstreams only) */
	char tls_name[DNS_NAME_TEXT]; /* the name its certificate must show; "": its address */
};

/* Parses "ADDR:PORT", "[V6]:PORT" or "ADDR" (port 53). Returns 0 or -EINVAL. */
int dns_listen_parse(const char *text, struct dns_listen *out);
/* An upstream server: what dns_listen_parse() reads, or
 * "tls://ADDR[:PORT][#SERVERNAME]" (port 853). Returns 0 or -EINVAL. */
int dns_server_parse(const char *text, struct dns_listen *out);

#endif
