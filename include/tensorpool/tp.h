/* tensorpool: the umbrella header, the one include that gives the whole public API. */
#ifndef TENSORPOOL_TP_H
#define TENSORPOOL_TP_H

#include "tensorpool/tp_agent.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"
#include "tensorpool/tp_discovery.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_join.h"
#include "tensorpool/tp_metadata.h"
#include "tensorpool/tp_qos.h"
#include "tensorpool/tp_tensor.h"
#include "tensorpool/tp_trace.h"

#endif
