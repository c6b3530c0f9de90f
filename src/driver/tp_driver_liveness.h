/* The lease holders' processes (tp_driver_liveness.c). */
#ifndef TP_DRIVER_LIVENESS_H
#define TP_DRIVER_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

/* Lease holders' processes (tp_driver_liveness.c): watch the holder of a new lease, forget it when the lease ends,
 * end the leases of processes that exited (returns how many), close every watch. */
void tp_driver_liveness_watch(tp_driver_t *d, tp_driver_lease_t *lease, int32_t pid, uint64_t start_time);
void tp_driver_liveness_unwatch(tp_driver_t *d, tp_driver_lease_t *lease);
int tp_driver_liveness_check(tp_driver_t *d);
void tp_driver_liveness_close(tp_driver_t *d);

#endif
