/* svcdns: the program. Reads the options (daemon/options.h), does what an
 * action asks for, or hands them to the daemon, which runs until SIGTERM or
 * SIGINT (daemon/daemon.h). */
#include <errno.h>
#include <stdio.h>

#include "common/jarena.h"
#include "common/shash.h"
#include "daemon/daemon.h"
#include "daemon/options.h"
#include "proxy/nft.h"

int main(int argc, char **argv)
{
	struct svcdns_options *o = NULL;
	char err[1024];
	/* Before any JSON value exists: jansson allocates through it from now on. */
	jarena_install();
	if (shash_init() < 0) /* before any table hashes what clients send */
		return 1;
	int ret = options_load(argc, argv, &o, err, sizeof(err));
	if (ret < 0) {
		/* One line: what is wrong, and where (a file's name and line). */
		fprintf(stderr, "svcdns: %s%s\n", err,
			ret == -ENOMEM ? "" : " (see svcdns --help)");
		return ret == -ENOMEM ? 1 : 2;
	}
	switch (o->action) {
	case OPTIONS_HELP:
		options_print_help(stdout);
		break;
	case OPTIONS_VERSION:
		printf("svcdns %s\n", SVCDNS_VERSION);
		break;
	case OPTIONS_MAN:
		options_print_man(stdout);
		break;
	case OPTIONS_FLAGS_MARKDOWN:
		options_print_markdown(stdout);
		break;
	case OPTIONS_PROXY_CLEANUP:
		ret = nftdp_cleanup() < 0 ? 1 : 0;
		break;
	case OPTIONS_RUN:
		ret = daemon_run(o);
		break;
	}
	options_free(o);
	jarena_thread_release();
	return ret;
}
