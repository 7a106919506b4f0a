/* Debug query log lines: client, transport, question. See querylog.h. */
#include "dns/querylog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "common/log.h"
#include "wire/dname.h"

void dns_log_query(const struct sockaddr *peer, const uint8_t *req, size_t len,
		   enum dns_proto proto)
{
	char addr[INET6_ADDRSTRLEN] = "?", name[DNAME_MAX * 4 + 4] = "?";
	unsigned port = 0;
	uint8_t key[DNAME_MAX];
	if (peer && peer->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
		inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
		port = ntohs(a->sin_port);
	} else if (peer && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
		inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
		port = ntohs(a->sin6_port);
	}
	unsigned qtype = 0, qclass = 0;
	if (len >= 12 && req[4] == 0 && req[5] == 1) {
		int ql = dname_read_question(req, len, 12, key);
		if (ql >= 0 && 12 + (size_t)ql + 4 <= len) {
			dname_to_text(key, name, sizeof(name));
			const uint8_t *t = req + 12 + ql;
			qtype = (unsigned)(t[0] << 8 | t[1]);
			qclass = (unsigned)(t[2] << 8 | t[3]);
		}
	}
	log_debug("query from %s#%u %s: %s class %u type %u id %u", addr, port,
		  proto == DNS_TCP ? "tcp" : "udp", name, qclass, qtype,
		  len >= 2 ? (unsigned)(req[0] << 8 | req[1]) : 0);
}
