/* Parsing of DNS server transport addresses. See listen.h. */
#include "wire/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dns_listen_parse(const char *text, struct dns_listen *out)
{
	char host[64];
	const char *port = NULL;
	memset(out, 0, sizeof(*out));
	snprintf(out->text, sizeof(out->text), "%s", text);
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strrchr(text, ':');
		size_t hl = colon ? (size_t)(colon - text) : strlen(text);
		if (hl >= sizeof(host) || (colon && strchr(text, ':') != colon))
			return -EINVAL;
		memcpy(host, text, hl);
		host[hl] = '\0';
		if (colon)
			port = colon + 1;
	}
	long pnum = 53;
	if (port) {
		char *end;
		pnum = strtol(port, &end, 10);
		if (*port == '\0' || *end || pnum < 0 || pnum > 65535)
			return -EINVAL;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)pnum);
		out->len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)pnum);
		out->len = sizeof(*a6);
		return 0;
	}
	return -EINVAL;
}

/* A host name as certificates carry it: letters, digits, '-', '.', '_'. */
static bool host_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= DNS_NAME_TEXT)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

int dns_server_parse(const char *text, struct dns_listen *out)
{
	static const char scheme[] = "tls://";
	if (strncmp(text, scheme, sizeof(scheme) - 1) != 0)
		return dns_listen_parse(text, out);
	char addr[80];
	const char *a = text + sizeof(scheme) - 1;
	const char *hash = strchr(a, '#');
	size_t alen = hash ? (size_t)(hash - a) : strlen(a);
	if (alen == 0 || alen >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, a, alen);
	addr[alen] = '\0';
	if (dns_listen_parse(addr, out) < 0 || (hash && !host_name_ok(hash + 1)))
		return -EINVAL;
	bool has_port = addr[0] == '[' ? strstr(addr, "]:") != NULL : strchr(addr, ':') != NULL;
	if (!has_port) {
		uint16_t port = htons(DNS_TLS_PORT);
		if (out->addr.ss_family == AF_INET)
			((struct sockaddr_in *)&out->addr)->sin_port = port;
		else
			((struct sockaddr_in6 *)&out->addr)->sin6_port = port;
	}
	out->tls = true;
	if (hash)
		snprintf(out->tls_name, sizeof(out->tls_name), "%s", hash + 1);
	snprintf(out->text, sizeof(out->text), "%s", text);
	return 0;
}
