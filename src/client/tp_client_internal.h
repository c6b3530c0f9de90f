/*
 * Client internals: the client (its bus, its driver proxy on the control stream, the descriptor channel), and
 * the lease + mapped regions that producers and consumers share.
 */
#ifndef TP_CLIENT_INTERNAL_H
#define TP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_config.h"
#include "driver/tp_driver_proxy.h"
#include "shm/tp_shm_path.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

#define TP_CLIENT_MAX_POOLS 16
#define TP_CLIENT_MAX_LEASES 64
#define TP_CLIENT_REATTACH_TIMEOUT_NS (250 * TP_NS_PER_MS) /* one attempt, inside the caller's loop */
#define TP_CLIENT_BACKOFF_MIN_NS (50 * TP_NS_PER_MS)
#define TP_CLIENT_BACKOFF_MAX_NS (2 * TP_NS_PER_S)

typedef struct tp_client_lease tp_client_lease_t;

typedef struct tp_client_config
{
    char bus_dir[TP_CONFIG_STRING_MAX];
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char descriptor_channel[TP_CONFIG_STRING_MAX];
    uint32_t descriptor_stream_id;
    tp_config_string_list_t allowed_base_dirs;
    uint32_t client_id;
    uint32_t keepalive_interval_ms;
} tp_client_config_t;

struct tp_client_context
{
    tp_client_config_t config;
};

struct tp_client
{
    tp_client_config_t config;
    tp_bus_t *bus;
    tp_driver_proxy_t *proxy;
    tp_shm_allowed_dirs_t allowed;
    uint32_t next_client_id;
    uint32_t open_handles; /* producers + consumers not yet closed */
    tp_client_lease_t *leases[TP_CLIENT_MAX_LEASES]; /* open ones, for the driver's notices */
};

/* A lease and the regions of its epoch, mapped and validated. When the driver revokes it (or shuts down) the
 * regions are unmapped at once and attach is retried with backoff; `generation` counts the attachments so that
 * owners reset what they derived from the old one. */
struct tp_client_lease
{
    tp_client_t *client;
    uint8_t role;
    uint32_t client_id;
    uint64_t lease_id;
    uint32_t stream_id;
    uint64_t epoch;
    uint32_t nslots;
    tp_shm_region_t header;
    uint32_t pool_count;
    uint16_t pool_ids[TP_CLIENT_MAX_POOLS];
    uint32_t strides[TP_CLIENT_MAX_POOLS];
    tp_shm_region_t pools[TP_CLIENT_MAX_POOLS];
    int64_t keepalive_period_ns;
    int64_t next_keepalive_ns;
    bool is_counted; /* in client->open_handles */
    bool is_valid;   /* attached and mapped */
    bool is_revoked; /* a notice said the lease is gone: drop it at the next tick */
    int64_t next_attempt_ns;
    int64_t backoff_ns;
    uint32_t generation;
    uint64_t revocations; /* lease losses seen (revoked, expired, driver shutdown) */
};

/* Attach with role and map everything the response names (validated against it, read-only unless writable). */
int tp_client_lease_open(tp_client_lease_t *lease, tp_client_t *client, uint32_t stream_id, uint8_t role,
    int64_t timeout_ns);
/* Read the driver's notices, drop a lost lease, retry attaching when due, keepalive when due. Returns the work
 * done. */
int tp_client_lease_tick(tp_client_lease_t *lease, int64_t now_ns);
/* Give up the lease (detach if still valid) and attach again now, once. 0 when attached and mapped. */
int tp_client_lease_renew(tp_client_lease_t *lease, int64_t now_ns);
/* Detach (best effort), unmap. */
void tp_client_lease_close(tp_client_lease_t *lease);

#endif
