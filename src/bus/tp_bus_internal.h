/*
 * Internals shared by the bus's IPC and UDP halves: the context, publication and subscription objects.
 */
#ifndef TP_BUS_INTERNAL_H
#define TP_BUS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "bus/tp_bus_ipc.h"
#include "bus/tp_channel.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"

#define TP_BUS_DIR_MAX 4096

struct tp_bus
{
    char dir[TP_BUS_DIR_MAX];
    uint32_t dir_mode;
    uint32_t file_mode;
    uint32_t registry_slots; /* images and subscribers of the registries this process creates */
    tp_clock_t clock; /* what the UDP protocol's timers read */
};

/* A publisher that keeps waking parked subscribers checks every this many wakes whether one of them died
 * parked (nobody else may be left to notice), so dead waiters cost at most this many futex calls. */
#define TP_BUS_WAKES_PER_REAP 1024u

struct tp_bus_publication
{
    tp_bus_t *bus;
    int32_t stream_id;
    int32_t session_id;
    bool is_shared;
    bool is_closed;
    uint32_t lock; /* in-process spin for shared publications */
    size_t max_message_length;
    /* IPC */
    tp_bus_registry_map_t registry;
    int registry_index;
    tp_bus_log_header_t *log;
    uint8_t *data;
    size_t map_bytes;
    uint64_t capacity;
    uint64_t mask;
    uint64_t tail;     /* writer's copy of log->tail */
    uint64_t intent;   /* writer's copy of log->intent: published a stride ahead (tp_bus_ipc.h) */
    uint64_t intent_stride;
    uint64_t next_seq; /* sequence of the next data record */
    bool has_claim;
    bool is_asymmetric; /* this process is registered for membarrier: wake without a fence (tp_bus_ipc.h) */
    uint32_t lane;      /* TP_BUS_LANE_*: who reads this image and whom its records wake */
    uint32_t wakes_since_reap; /* futex wakes issued; every TP_BUS_WAKES_PER_REAP, look for dead subscribers */
    /* UDP */
    struct tp_bus_udp_pub *udp;
    tp_channel_t channel; /* last: its size does not move the hot fields above */
};

typedef struct tp_bus_image
{
    int32_t session_id;
    int entry_index;
    tp_bus_log_header_t *log;
    uint8_t *data;
    size_t map_bytes;
    uint64_t capacity;
    uint64_t mask;
    uint64_t cursor;
    uint64_t expected_seq;
    bool is_removed; /* gone from the registry: drain, then drop */
} tp_bus_image_t;

struct tp_bus_subscription
{
    tp_bus_t *bus;
    int32_t stream_id;
    tp_bus_image_handler_t on_available;
    tp_bus_image_handler_t on_unavailable;
    void *clientd;
    tp_bus_counters_t counters;
    /* IPC */
    tp_bus_registry_map_t registry;
    int subscriber_index;
    uint64_t seen_change; /* of *change_word at the last rescan */
    uint64_t join_change; /* of change_counter when we joined */
    const uint64_t *change_word; /* the registry's change counter of our class (tp_bus_ipc.h) */
    uint32_t lanes;              /* TP_BUS_LANE_BIT of each lane we read */
    uint32_t wait_class;         /* TP_BUS_CLASS_* of those lanes */
    tp_bus_image_t *images; /* image_capacity of them, grown as images join (never in the steady state) */
    int image_capacity;
    int32_t *image_slot; /* per registry entry (max_images): 1 + its index in images, 0 when not mapped */
    int32_t *retired;    /* per registry entry: session already drained and dropped (0 = none) */
    int image_count;
    int next_image; /* round-robin start */
    uint8_t *scratch;
    size_t scratch_bytes;
    uint32_t idle_polls;
    int64_t last_reap_ns;
    bool has_removed; /* some image left the registry and is being drained */
    /* UDP */
    struct tp_bus_udp_sub *udp;
    tp_channel_t channel; /* last: its size does not move the hot fields above */
};

/* UDP halves (tp_bus_udp_pub.c, tp_bus_udp_sub.c). */
int tp_bus_udp_publication_open(tp_bus_publication_t *pub);
void tp_bus_udp_publication_close(tp_bus_publication_t *pub);
int64_t tp_bus_udp_offer(tp_bus_publication_t *pub, const void *buffer, size_t length);
int64_t tp_bus_udp_try_claim(tp_bus_publication_t *pub, size_t length, tp_bus_claim_t *claim);
int64_t tp_bus_udp_commit(tp_bus_publication_t *pub, tp_bus_claim_t *claim, bool is_abort);
int tp_bus_udp_publication_do_work(tp_bus_publication_t *pub);
void tp_bus_udp_publication_set_coalescing(tp_bus_publication_t *pub, bool is_coalescing);
bool tp_bus_udp_publication_is_connected(const tp_bus_publication_t *pub);
int tp_bus_udp_subscription_open(tp_bus_subscription_t *sub);
void tp_bus_udp_subscription_close(tp_bus_subscription_t *sub);
int tp_bus_udp_poll(tp_bus_subscription_t *sub, tp_bus_fragment_handler_t handler, void *clientd, int limit);
int tp_bus_udp_park(tp_bus_subscription_t *sub, int64_t timeout_ns);

#endif
