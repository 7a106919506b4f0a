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
