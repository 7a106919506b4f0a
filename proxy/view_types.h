/* The types of the model view that the datapath reads: struct model_view,
 * view_service, view_endpoint, model_service and model_svc_port, the service
 * types and the protocol numbers (discovery/model.h).
 *
 * Types only: the datapath reads the view a published snapshot carries and
 * never calls discovery. This is the one proxy/ header that includes a
 * discovery/ header; every other proxy/ file reaches the view's types through
 * it, and none calls a function declared there.
 * Must never: declare anything of its own, or be included outside proxy/ and
 * its tests. */
#ifndef SVCDNS_PROXY_VIEW_TYPES_H
#define SVCDNS_PROXY_VIEW_TYPES_H

#include "discovery/model.h"

#endif
