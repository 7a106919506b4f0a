/* The wiring of the kernel datapath (--proxy=nftables): its configuration
 * from the options, and the pipeline stage that programs each snapshot's
 * view before the snapshot is published.
 *
 * Owns: nothing beyond the struct nftdp it starts.
 * Must never: program anything itself (proxy/nft.h does). Control thread. */
#ifndef SVCDNS_NFT_WIRING_H
#define SVCDNS_NFT_WIRING_H

#include "daemon/options.h"
#include "daemon/pipeline.h"
#include "proxy/nft.h"

/* Starts the kernel datapath and makes it the pipeline's datapath stage.
 * NULL in *out when it cannot start (logged: DNS is served without it). */
struct metrics;
void nft_wiring_start(const struct svcdns_options *o, struct pipeline *p, struct metrics *m,
		      struct nftdp **out);
/* Takes its metrics off the registry (before nftdp_stop). */
void nft_wiring_stop(struct metrics *m, struct nftdp *nd);

/* The stage itself (exposed for tests): programs s->view and sets the
 * snapshot's CHAOS view of the datapath. The Services it refuses reach the
 * pipeline through pipeline_set_datapath_refused. */
int nft_wiring_stage(void *arg, struct snapshot *s);

#endif
