/* Debug query log lines: client, transport, question. See querylog.h. */
#include "dns/querylog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "common/log.h"
#include "wire/dname.h"
#include "wire/wire.h"

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
	if (len >= WIRE_HDR_LEN && wire_hdr_count(req, WIRE_QD) == 1) {
		int ql = dname_read_question(req, len, WIRE_HDR_LEN, key);
		if (ql >= 0 && WIRE_HDR_LEN + (size_t)ql + 4 <= len) {
			dname_to_text(key, name, sizeof(name));
			const uint8_t *t = req + WIRE_HDR_LEN + ql;
			qtype = wire_rd16(t);
			qclass = wire_rd16(t + 2);
		}
	}
	log_debug("query from %s#%u %s: %s class %u type %u id %u", addr, port,
		  proto == DNS_TCP ? "tcp" : "udp", name, qclass, qtype,
		  len >= 2 ? (unsigned)wire_rd16(req) : 0);
}
