/*
 * The SHM driver: the authority for shared memory. It creates and owns every region, hands out leases, keeps one
 * producer per stream, bumps epochs, and announces pools (driver model spec v1.0).
 *
 * Run it as a process (`tp driver CONFIG`) or embed it: build a context (defaults, then a TOML file, then the
 * environment, then setters), init the driver from it, and either call tp_driver_do_work from your loop or start
 * it on its own thread. tp_driver_close publishes ShmDriverShutdown and releases everything.
 *
 * Threads: a driver is driven by one thread at a time (its runner, or your loop). The context may be closed once
 * the driver is initialised.
 */
#ifndef TENSORPOOL_TP_DRIVER_H
#define TENSORPOOL_TP_DRIVER_H

#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_driver_context tp_driver_context_t;
typedef struct tp_driver tp_driver_t;

/* The errorMessage of an attach refused because its clientId holds another active lease (driver spec B.2): a client
 * whose id was assigned automatically picks another and retries. */
#define TP_DRIVER_CLIENT_ID_IN_USE "client_id already attached"

/* A context with every default of docs/CONFIG.md (no profiles or streams yet). */
TP_API int tp_driver_context_init(tp_driver_context_t **out);
TP_API int tp_driver_context_close(tp_driver_context_t *ctx);

/* Load a TOML configuration file over the defaults, then apply the environment. On error returns -1; the message
 * lists every problem (FILE:LINE: key: reason). Warnings (unknown keys) are logged. */
TP_API int tp_driver_context_load_file(tp_driver_context_t *ctx, const char *path);

/* Set one key from text, as an environment variable would ("policies.announce_period_ms", "200"; lists are
 * comma-separated: "shm.allowed_base_dirs", "/dev/shm,/mnt/huge"). Applied after the file and the environment. */
TP_API int tp_driver_context_set(tp_driver_context_t *ctx, const char *key, const char *value);

/* The clock of the driver's timers (lease expiry, announces, liveness checks, status file): NULL restores
 * CLOCK_MONOTONIC, the default. For tests that advance time by hand; clients of this driver need the same clock
 * (tp_client_context_set_clock), since announces carry its readings. clientd outlives the driver. */
TP_API int tp_driver_context_set_clock(tp_driver_context_t *ctx, tp_clock_fn_t clock, void *clientd);

/* Add a profile: header_nslots and pool_count pools (ids and power-of-two strides). */
TP_API int tp_driver_context_add_profile(tp_driver_context_t *ctx, const char *name, uint32_t header_nslots,
    const uint16_t *pool_ids, const uint32_t *stride_bytes, uint32_t pool_count);
/* Add a static stream served with a profile. */
TP_API int tp_driver_context_add_stream(tp_driver_context_t *ctx, const char *name, uint32_t stream_id,
    const char *profile);

/* Validate the context and start serving: regions of static streams are created (epochs above any found on
 * disk), the control subscription opened. Fails with the reason if another driver already serves this control
 * stream from the same bus directory. */
TP_API int tp_driver_init(tp_driver_t **out, const tp_driver_context_t *ctx);

/* One duty cycle: control messages, lease expiry, announces, draining. Returns the work done (0 when idle), or
 * -1 on a fatal error. */
TP_API int tp_driver_do_work(tp_driver_t *driver);

/* Run the driver on the calling thread until *stop (read atomically) becomes non-zero or an authorised shutdown
 * request has drained. Returns 0, or -1 on a fatal error. */
TP_API int tp_driver_run(tp_driver_t *driver, const int *stop);

/* Run the driver on its own thread (backoff idle strategy parking on the control stream). */
TP_API int tp_driver_start(tp_driver_t *driver);
TP_API int tp_driver_stop(tp_driver_t *driver);

/* Revoke a lease for administrative or safety reasons (reason REVOKED): ShmLeaseRevoked, and for a producer lease
 * a new epoch and an announce. Callable from any thread: the request is queued (room for 16) and carried out by
 * the driver's next duty cycle (a parked driver thread wakes within 10 ms). -1 (TP_E_CAPACITY) if the queue is
 * full. An unknown or ended lease is ignored. */
TP_API int tp_driver_revoke_lease(tp_driver_t *driver, uint64_t lease_id);

/* true once an authorised ShmDriverShutdownRequest has been handled and the drain period is over. */
TP_API bool tp_driver_is_shutdown(const tp_driver_t *driver);

/* Publish ShmDriverShutdown (reason NORMAL), stop, release everything. NULL is fine. */
TP_API int tp_driver_close(tp_driver_t *driver);

#ifdef __cplusplus
}
#endif

#endif
