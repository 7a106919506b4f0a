/* resolv.conf reading: `nameserver ADDR` lines only, comments with # or ;.
 * See resolvconf.h. */
#include "resolver/resolvconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

int resolvconf_read(const char *path, struct dns_listen *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	char line[512];
	size_t n = 0;
	unsigned lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *save = NULL;
		char *kw = strtok_r(line, " \t\r\n", &save);
		if (!kw || kw[0] == '#' || kw[0] == ';' || strcmp(kw, "nameserver") != 0)
			continue;
		char *addr = strtok_r(NULL, " \t\r\n", &save);
		if (!addr)
			continue;
		char *pct = strchr(addr, '%'); /* fe80::1%eth0: the zone is the host's business */
		if (pct)
			*pct = '\0';
		char text[80];
		/* A bare IPv6 address has colons: bracket it so that no port is read. */
		if (strchr(addr, ':'))
			snprintf(text, sizeof(text), "[%s]:53", addr);
		else
			snprintf(text, sizeof(text), "%s:53", addr);
		if (n == cap)
			break;
		if (dns_listen_parse(text, &out[n]) < 0) {
			log_warn("%s:%u: nameserver %s is not an address; skipped", path, lineno,
				 addr);
			continue;
		}
		n++;
	}
	fclose(f);
	return (int)n;
}
