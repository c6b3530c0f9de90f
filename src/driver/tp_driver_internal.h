/*
 * The SHM driver's state (its functions are declared by each part: tp_driver_streams.h, tp_driver_leases.h,
 * tp_driver_liveness.h, tp_driver_consumers.h, tp_driver_supervisor.h, tp_driver_status.h, and the leaf sender
 * tp_driver_send.h that every part publishes through). One conductor (tp_driver_do_work) owns all of it: streams with their current epoch and
 * regions, the lease table, the bus publications and the control subscription. Nothing here is shared with other
 * threads; clients talk to the driver only through messages on the control stream.
 *
 * Epochs: every stream's epoch only grows. It starts above every epoch directory found on disk for that stream
 * (so a restarted driver never reissues an old epoch), and moves up, with fresh regions in a new epoch directory,
 * whenever a producer attaches to a stream without one and whenever a producer lease ends (detach, expiry,
 * revocation). ShmLeaseRevoked is published before the epoch-bumped ShmPoolAnnounce.
 */
#ifndef TP_DRIVER_INTERNAL_H
#define TP_DRIVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_clock.h"
#include "driver/tp_driver_config.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_agent.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_driver.h"

#define TP_DRIVER_MAX_LEASES 2000 /* below TP_TRACE_NODE_ID_MAX: every lease has a trace node id */
#define TP_DRIVER_MAX_LIVE_STREAMS 512
#define TP_DRIVER_URI_MAX (TP_PATH_MAX + 64)
#define TP_DRIVER_ERROR_MESSAGE_MAX 1024
#define TP_DRIVER_SCRATCH_BYTES 65536
#define TP_DRIVER_REVOKE_QUEUE 16

#define TP_DRIVER_CONTEXT_MAX_FIELDS 64

struct tp_driver_context
{
    tp_driver_config_t config;
    tp_clock_t clock;
    bool is_set[TP_DRIVER_CONTEXT_MAX_FIELDS]; /* keys given by the file, environment or setters */
    bool is_loaded;
    char source[TP_PATH_MAX]; /* the file it was loaded from */
};

typedef struct tp_driver_regions
{
    uint64_t epoch;
    char epoch_dir[TP_PATH_MAX];
    tp_shm_region_t header;
    tp_shm_region_t pools[TP_DRIVER_MAX_POOLS];
    char header_uri[TP_DRIVER_URI_MAX];
    char pool_uris[TP_DRIVER_MAX_POOLS][TP_DRIVER_URI_MAX];
} tp_driver_regions_t;

typedef struct tp_driver_stream
{
    uint32_t stream_id;
    char name[TP_DRIVER_NAME_MAX];
    tp_driver_profile_config_t profile;
    bool is_dynamic;
    tp_driver_regions_t regions; /* the current epoch */
    uint64_t producer_lease_id;  /* 0: no producer */
    uint32_t producer_client_id;
    uint32_t consumer_count;
} tp_driver_stream_t;

typedef struct tp_driver_lease
{
    uint64_t lease_id;
    uint32_t stream_id;
    uint32_t client_id;
    uint8_t role;
    uint32_t node_id;
    int64_t correlation_id; /* of the attach that created it (duplicate attaches are answered again) */
    int64_t attached_ns;
    int64_t keepalive_ns;
    int64_t expiry_ns;
    bool is_active;
    uint8_t end_reason;            /* LeaseRevokeReason once inactive */
    uint32_t descriptor_stream_id; /* per-consumer streams granted to this lease (0: none) */
    uint32_t control_stream_id;
    int32_t pid; /* the holder's process, from the bus image its attach came on (0: unknown) */
    uint64_t pid_start_time;
} tp_driver_lease_t;

/* A lease holder's process, watched once however many leases it holds (tp_driver_liveness.c). */
typedef struct tp_driver_watch
{
    int32_t pid;
    uint64_t start_time;
    int pidfd; /* readable once the process exited; -1 without pidfd support (checked with kill instead) */
    uint32_t leases;
    bool is_dead;
} tp_driver_watch_t;

#define TP_DRIVER_LIVENESS_PERIOD_NS (10 * 1000000LL) /* 10 ms */

/* The supervisor's view (tp_driver_supervisor.c). */
#define TP_DRIVER_SUPERVISOR_MAX_PARTIES 256
#define TP_DRIVER_SUPERVISOR_MAX_SOURCES 256

typedef struct tp_driver_supervisor_party
{
    bool in_use;
    bool is_consumer;
    bool is_stale;
    uint32_t stream_id;
    uint32_t id; /* consumer id or producer id */
    int64_t last_seen_ns;
    uint8_t mode;         /* consumers: from their hello */
    uint32_t max_rate_hz; /* consumers: from their hello */
    uint64_t seq;         /* last sequence seen (consumer) or current sequence (producer) */
    uint64_t drops_gap;
    uint64_t drops_late;
    uint64_t hellos;
    uint64_t qos_reports;
    int rule; /* the rule last applied, -1: none */
} tp_driver_supervisor_party_t;

typedef struct tp_driver_supervisor_source
{
    uint32_t stream_id;
    char name[256];
} tp_driver_supervisor_source_t;

typedef struct tp_driver_supervisor
{
    tp_bus_subscription_t *qos_sub;
    tp_bus_subscription_t *metadata_sub;
    tp_driver_supervisor_party_t parties[TP_DRIVER_SUPERVISOR_MAX_PARTIES];
    tp_driver_supervisor_source_t sources[TP_DRIVER_SUPERVISOR_MAX_SOURCES];
    uint32_t source_count;
    uint64_t configs_sent;
} tp_driver_supervisor_t;

typedef struct tp_driver_counters
{
    uint64_t attaches_ok;
    uint64_t attaches_rejected;
    uint64_t detaches;
    uint64_t keepalives;
    uint64_t keepalives_ignored;
    uint64_t leases_expired;
    uint64_t leases_revoked;
    uint64_t announces;
    uint64_t epochs_bumped;
    uint64_t unknown_messages;       /* driver schema, unknown template */
    uint64_t newer_version_messages; /* driver schema, version above ours */
    uint64_t other_schema_messages;  /* another schema on the control stream */
    uint64_t other_driver_messages;  /* responses and notices of another driver */
    uint64_t malformed_messages;
    uint64_t publish_failures;
    uint64_t consumer_configs;        /* ConsumerConfig answers to ConsumerHello */
    uint64_t consumer_hellos_ignored; /* no request, or no consumer lease of that client on that stream */
    uint64_t shutdown_requests_refused;
    uint64_t epoch_dirs_removed;
    uint64_t epochs_damaged; /* epochs retired because a region file shrank under the driver */
    uint64_t leases_dead_process; /* leases ended because their holder's process exited */
} tp_driver_counters_t;

struct tp_driver
{
    tp_driver_config_t config;
    tp_clock_t clock; /* now_ns of every duty cycle (tp_driver_context_set_clock) */
    char base_dir_canonical[TP_PATH_MAX];
    bool is_base_hugetlbfs;
    tp_bus_t *bus;
    tp_bus_publication_t *control_pub;
    tp_bus_publication_t *announce_pub;
    tp_bus_subscription_t *control_sub;
    int lock_fd;    /* control stream + bus directory */
    int ns_lock_fd; /* SHM namespace */
    char lock_path[TP_PATH_MAX];
    char status_path[TP_PATH_MAX];
    tp_driver_stream_t *streams; /* TP_DRIVER_MAX_LIVE_STREAMS, tp_alloc'd */
    uint32_t stream_count;
    tp_driver_lease_t *leases; /* TP_DRIVER_MAX_LEASES */
    uint64_t next_lease_id;
    uint32_t next_node_id;
    tp_driver_counters_t counters;
    int64_t start_ns;
    int64_t now_ns;
    int64_t next_announce_ns;
    int64_t next_gc_sweep_ns; /* policies.epoch_gc_interval_ms */
    int64_t next_expiry_check_ns;
    int64_t last_status_ns;
    bool is_status_dirty;
    bool is_draining;
    bool is_shutdown;
    bool has_sent_shutdown;
    uint8_t shutdown_reason;
    int64_t drain_deadline_ns;
    tp_agent_runner_t *runner;
    uint64_t revoke_queue[TP_DRIVER_REVOKE_QUEUE]; /* lease ids to revoke; 0 = free slot; any thread posts */
    uint8_t *scratch; /* TP_DRIVER_SCRATCH_BYTES for encoding outgoing messages */
    int32_t message_session_id; /* the bus image of the control message being handled (0: not from the bus) */
    tp_driver_watch_t watches[TP_DRIVER_MAX_LEASES];
    uint32_t watch_count;
    bool has_dead_watch;
    int64_t next_liveness_ns;
    int64_t next_liveness_fallback_ns;
    tp_driver_supervisor_t *supervisor; /* NULL unless supervisor.enabled */
    struct tp_discovery_provider *discovery; /* NULL unless discovery.enabled */
    tp_bus_subscription_t *discovery_metadata_sub;
};

/* tp_driver.c: one control message from a client (dispatch by schema, version and template); the fuzz harness
 * feeds it too. */
void tp_driver_on_message(tp_driver_t *d, const uint8_t *buffer, size_t length);

#endif
