/* The program once its options are read: starts the data sources, the
 * pipeline, the datapath, the DNS workers and the operator's side, runs the
 * control loop until SIGTERM or SIGINT, and stops everything in order.
 *
 * Owns: the wiring between the modules (which callback feeds what), the
 * start order and the order of teardown after a failed start.
 * Must never: parse options (daemon/options.h) or build snapshots itself
 * (daemon/pipeline.h). Runs on the main thread, which becomes the control
 * loop's. */
#ifndef SVCDNS_DAEMON_H
#define SVCDNS_DAEMON_H

#include "daemon/options.h"

/* Runs the program (or, with --check-config, only loads what the options
 * name). `o` must outlive the call. Returns the exit status. */
int daemon_run(struct svcdns_options *o);

#endif
