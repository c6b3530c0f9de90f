/*
 * Client internals: the client (its bus, its conductor on the control stream, the descriptor channel), and the
 * lease + mapped regions that producers and consumers share.
 */
#ifndef TP_CLIENT_INTERNAL_H
#define TP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_config.h"
#include "core/tp_clock.h"
#include "client/tp_client_conductor.h"
#include "shm/tp_shm_path.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_discovery.h"

#define TP_CLIENT_MAX_POOLS 16
#define TP_CLIENT_MAX_LEASES 1024 /* the driver's lease table (TP_DRIVER_MAX_LEASES) holds as many */
#define TP_CLIENT_BACKOFF_MIN_NS (50 * TP_NS_PER_MS)
#define TP_CLIENT_BACKOFF_MAX_NS (2 * TP_NS_PER_S)
#define TP_CLIENT_ERROR_MAX 512

typedef struct tp_client_lease tp_client_lease_t;

typedef struct tp_client_config
{
    char bus_dir[TP_CONFIG_STRING_MAX];
    char control_channel[TP_CONFIG_STRING_MAX];
    uint32_t control_stream_id;
    char announce_channel[TP_CONFIG_STRING_MAX];
    uint32_t announce_stream_id;
    char descriptor_channel[TP_CONFIG_STRING_MAX];
    uint32_t descriptor_stream_id;
    tp_config_string_list_t allowed_base_dirs;
    uint32_t client_id;
    uint32_t keepalive_interval_ms;
    uint32_t announce_period_ms;
    char metadata_channel[TP_CONFIG_STRING_MAX];
    uint32_t metadata_stream_id;
    uint32_t metadata_period_ms;
    char qos_channel[TP_CONFIG_STRING_MAX];
    uint32_t qos_stream_id;
    uint32_t qos_period_ms;
    char discovery_channel[TP_CONFIG_STRING_MAX];
    uint32_t discovery_stream_id;
    char discovery_response_channel[TP_CONFIG_STRING_MAX];
    uint32_t discovery_response_stream_id;
    bool mlock_shm;
} tp_client_config_t;

/* The client.* keys: defaults, environment (TP_CLIENT_*), tp_client_context_set and docs/CONFIG.md. */
extern const tp_config_field_t tp_client_config_fields[];
extern const size_t tp_client_config_field_count;

struct tp_client_context
{
    tp_client_config_t config;
    tp_clock_t clock;
};

#define TP_CLIENT_ANNOUNCED_MAX 32

typedef struct tp_announced
{
    uint32_t stream_id; /* 0: free */
    uint64_t epoch;
    uint32_t layout_version;
    uint32_t header_nslots;
    int64_t heard_ns;
} tp_announced_t;

struct tp_client
{
    tp_client_config_t config;
    tp_clock_t clock; /* now_ns of its leases' ticks, keepalives, backoff, freshness, throttles and reports */
    tp_bus_t *bus;
    tp_client_conductor_t *conductor; /* the control plane: every message of the driver comes through it */
    tp_shm_allowed_dirs_t allowed;
    uint32_t next_client_id;
    uint32_t open_handles; /* producers + consumers not yet closed */
    bool is_closing;       /* tp_client_close was called: free when open_handles drops to 0 */
    tp_client_lease_t *leases[TP_CLIENT_MAX_LEASES]; /* open ones, for the driver's notices and announces */
    tp_bus_publication_t *qos_pub; /* shared by its producers' and consumers' QoS senders (tp_qos_internal.h) */
    uint32_t qos_users;
    /* Announces (wire spec 10.1.1): the join time of the subscription that reads them, the freshness window. */
    int64_t join_time_ns;
    int64_t freshness_ns;
    uint64_t announces_ignored; /* stale, from before the join, or of a lower epoch */
    /* what the fresh announces of its driver said last, per stream (discovery spec 7: results that disagree are
     * stale); the least recently announced entry makes room */
    tp_announced_t announced[TP_CLIENT_ANNOUNCED_MAX];
};

/* Does one of the client's leases of stream_id in this role wait for an attach answer? Driver spec 4.8: never
 * two attaches in flight for one stream and role, so the next waits. */
bool tp_client_is_attaching(const tp_client_t *client, uint32_t stream_id, uint8_t role);

/* The newest fresh announce of stream_id the client has read, or NULL. */
const tp_announced_t *tp_client_announced(const tp_client_t *client, uint32_t stream_id);

typedef enum tp_lease_state
{
    TP_LEASE_WAITING = 0,   /* not attached; the next attempt at next_attempt_ns */
    TP_LEASE_ATTACHING = 1, /* an attach request is out */
    TP_LEASE_ATTACHED = 2,  /* attached and every region mapped and validated */
} tp_lease_state_t;

/* A lease and the regions of its epoch. It attaches without blocking (the request is resent until the driver
 * answers, so a driver that starts later or restarts still answers it) and attaches again by itself when:
 *   - the driver revokes the lease or shuts down (lost: regions unmapped at once, no detach),
 *   - a fresh announce names a newer epoch, or the mapped superblock changed (superseded: detach, remap),
 *   - the superblock's activity timestamp went stale (the driver died: lost).
 * `generation` counts the attachments so that owners reset what they derived from the old one. */
struct tp_client_lease
{
    tp_client_t *client;
    uint8_t role;
    uint8_t publish_mode; /* TP_DRIVER_PUBLISH_MODE_*: REQUIRE_EXISTING, or EXISTING_OR_CREATE for a producer */
    uint32_t client_id;
    uint32_t stream_id;
    tp_lease_state_t state;
    int64_t attach_id;  /* the correlation id of the attach in flight (ATTACHING), 0 otherwise */
    int64_t detach_id;  /* the correlation id of the detach tp_client_lease_close waits for, 0 otherwise */
    bool is_detached;   /* that detach was answered */
    bool is_valid;      /* state == ATTACHED (read by the hot paths) */
    bool is_lost;       /* a notice said the lease is gone: drop it at the next tick */
    bool is_superseded; /* a newer epoch or a changed superblock: detach and attach again at the next tick */
    bool is_refused;    /* the last attempt was answered with a refusal (last_error says why) */
    uint64_t lease_id;
    uint32_t node_id; /* the driver's grant for this attachment (ShmAttachResponse.nodeId), 0 if none */
    uint32_t first_node_id;     /* the first grant: asked for again (desiredNodeId) by every later attach */
    bool is_node_id_refused;    /* an attach asking for it was refused: the next ones do not ask */
    bool is_asking_node_id;     /* the attach in flight asks for it */
    uint64_t epoch;
    uint32_t nslots;
    tp_shm_region_t header;
    uint64_t header_pid; /* the superblock's pid at mapping time */
    uint32_t pool_count;
    uint16_t pool_ids[TP_CLIENT_MAX_POOLS];
    uint32_t strides[TP_CLIENT_MAX_POOLS];
    tp_shm_region_t pools[TP_CLIENT_MAX_POOLS];
    int64_t keepalive_period_ns;
    int64_t next_keepalive_ns;
    int64_t lease_duration_ns; /* the driver's grant (expiry - receipt time), 0 when it gave no expiry */
    int64_t lease_deadline_ns; /* the last keepalive sent + lease_duration_ns: past it the lease is gone */
    int64_t next_liveness_check_ns;
    int64_t next_attempt_ns;
    int64_t backoff_ns;
    uint64_t announced_epoch; /* the highest epoch a fresh announce named for this stream */
    /* a consumer whose stream's producer lease was revoked waits for the epoch-bumped announce (driver spec 4.9) */
    bool is_awaiting_epoch;
    uint64_t awaited_above;        /* the announce that ends the wait names a higher epoch than this */
    int64_t await_deadline_ns;     /* past it: unmap and attach again after the backoff */
    uint32_t generation;
    uint64_t revocations; /* lease losses (revoked, expired, driver shutdown or death) */
    uint64_t remaps;      /* attachments after the first */
    uint64_t damaged;     /* attachments dropped because a region file shrank under its mapping */
    char last_error[TP_CLIENT_ERROR_MAX];
    /* the owner's view of the control stream: hellos, consumer configs and revocations of its stream */
    void (*observer)(void *owner, const tp_control_event_t *event);
    void *owner;
};

/* The client's clock (tp_client_context_set_clock; CLOCK_MONOTONIC by default). Deadlines of blocking calls
 * (attach with a timeout, close waiting for the detach answer) are real time whatever the clock. */
static inline int64_t tp_client_now(const tp_client_t *client)
{
    return tp_clock_now(&client->clock);
}

/* Release everything the client holds (its producers and consumers are closed). */
void tp_client_free(tp_client_t *client);
/* Something opened from the client (a lease, a metadata publisher or cache, a QoS monitor) that keeps it alive:
 * a client closed first is freed when the last such thing is released. */
void tp_client_retain(tp_client_t *client);
void tp_client_release(tp_client_t *client);

/* The pool region of the lease's current mapping that holds p (tp_consumer_payload_region). */
int tp_client_lease_region_of(const tp_client_lease_t *lease, const uint8_t *p, tp_region_info_t *out);

/* Register the lease and start attaching. timeout_ns < 0: return at once (the lease attaches in the ticks);
 * otherwise wait until attached (0), refused by the driver, or the timeout passed (-1, nothing left open). */
int tp_client_lease_open(tp_client_lease_t *lease, tp_client_t *client, uint32_t stream_id, uint8_t role,
    uint8_t publish_mode, int64_t timeout_ns);
/* A lease is a state machine driven by two calls and nothing else writes its state:
 *   on_event: what the conductor read that concerns it (its attach's or detach's answer, a revocation of it or of
 *             its stream's producer, the driver's shutdown, a fresh announce of its stream); false when it ignored
 *             an announce (an epoch below the highest seen);
 *   do_work:  act on a lost or superseded lease, start an attach when due, send the keepalive and check the
 *             superblock's liveness when due. Returns the work done. */
bool tp_client_lease_on_event(tp_client_lease_t *lease, const tp_control_event_t *event, int64_t now_ns);
int tp_client_lease_do_work(tp_client_lease_t *lease, int64_t now_ns);
/* The conductor's work (which feeds on_event of every lease) and then this lease's. */
int tp_client_lease_tick(tp_client_lease_t *lease, int64_t now_ns);
/* A descriptor named a newer epoch: detach, unmap, and attach again now, waiting up to timeout_ns for the
 * answer (so the new epoch's first frames are not lost); if not answered by then, the attach goes on in the ticks.
 * 0 when attached. */
int tp_client_lease_remap(tp_client_lease_t *lease, int64_t timeout_ns);
/* Read what the driver has sent (notices, announces) without waiting: so that a lease can learn of a new epoch
 * from its announce, the only source it believes, before acting on a descriptor that names it. */
void tp_client_lease_poll_notices(tp_client_lease_t *lease);
/* Detach (best effort), unmap, unregister. */
void tp_client_lease_close(tp_client_lease_t *lease);

/* tp_discovery_client.c: one discovery exchange's answer. tp_discovery_take_response reads a message from the
 * response stream: an answer to request_id (the first one only) sets has_answer, status and error, and its results,
 * checked (authority, pool slots, whole names) and de-duplicated, go to results; anything else counts as foreign.
 * Exposed for the fuzz harness. */
typedef struct tp_discovery_answer
{
    uint64_t request_id;
    bool has_answer;
    uint8_t status;
    char error[1025];
    tp_discovery_result_t *results;
    size_t capacity;
    size_t count;
    uint64_t discarded;
    uint64_t foreign; /* answers to requests that are not ours, or other traffic */
} tp_discovery_answer_t;
void tp_discovery_take_response(tp_discovery_answer_t *answer, const uint8_t *buffer, size_t length);

#endif
