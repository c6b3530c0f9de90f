/* Clocks: declared in the public tp_common.h (tp_clock_monotonic_ns, tp_clock_realtime_ns). */
#ifndef TP_CORE_CLOCK_H
#define TP_CORE_CLOCK_H

#include "tensorpool/tp_common.h"

#define TP_NS_PER_US 1000LL
#define TP_NS_PER_MS 1000000LL
#define TP_NS_PER_S 1000000000LL

/* The clock a driver or client reads its now_ns from: the caller's function, or CLOCK_MONOTONIC. */
typedef struct tp_clock
{
    tp_clock_fn_t fn;
    void *clientd;
} tp_clock_t;

static inline int64_t tp_clock_now(const tp_clock_t *clock)
{
    return clock->fn != NULL ? clock->fn(clock->clientd) : tp_clock_monotonic_ns();
}

#endif
