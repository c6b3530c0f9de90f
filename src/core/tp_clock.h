/* Clocks: declared in the public tp_common.h (tp_clock_monotonic_ns, tp_clock_realtime_ns). */
#ifndef TP_CORE_CLOCK_H
#define TP_CORE_CLOCK_H

#include "tensorpool/tp_common.h"

#define TP_NS_PER_US 1000LL
#define TP_NS_PER_MS 1000000LL
#define TP_NS_PER_S 1000000000LL

#endif
