/* svcdns: the program. Reads the options, then hands them to the daemon,
 * which runs until SIGTERM or SIGINT (daemon/daemon.h). */
#include <stdlib.h>

#include "common/jarena.h"
#include "common/shash.h"
#include "daemon/daemon.h"
#include "daemon/options.h"

int main(int argc, char **argv)
{
	static struct svcdns_options o;
	/* Before any JSON value exists: jansson allocates through it from now on. */
	jarena_install();
	if (shash_init() < 0) /* before any table hashes what clients send */
		return 1;
	switch (options_parse(argc, argv, &o)) {
	case OPTIONS_EXIT_OK:
		return 0;
	case OPTIONS_USAGE:
		return 2;
	case OPTIONS_RUN:
		break;
	}
	int ret = daemon_run(&o);
	jarena_thread_release();
	return ret;
}
