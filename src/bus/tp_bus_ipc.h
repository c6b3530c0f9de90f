/*
 * IPC bus layouts: the per-stream registry and the per-publication log ("image").
 *
 *   <bus_dir>/<stream_id>/registry            live images and subscribers, a change counter, a futex word
 *   <bus_dir>/<stream_id>/<session_id>.log    one publication's single-writer ring
 *
 * Both are our own shared-memory structs: naturally aligned fixed-width fields, fields written by different
 * processes on separate 128-byte lines, touched only through tp_atomic.h. Every file starts with a magic and a
 * layout version; a file of another version is refused with a message saying so, never misread.
 *
 * The log is Agrona's broadcast pattern with per-record sequence numbers, read from the records themselves:
 *   writer: intent covers the record (it moves a stride of capacity/16 ahead at a time, then a release fence) ->
 *           write the payload -> zero the next record's length -> the sequence -> length and type (one release
 *           store) -> latest, tail (release)
 *   reader: at its cursor, length and type (acquire): zero means nothing yet -> copy records out while lengths are
 *           non-zero -> acquire fence -> if intent - cursor > capacity the copy may be torn (the reader was lapped):
 *           discard it and resume at the newest complete record (`latest`); the sequence number of the next record
 *           read says exactly how many were lost.
 * A reader polls the line where the next record will be written, which crosses between cores once per line of
 * records, and reads intent, whose line changes once per stride: never the writer's tail line, which a
 * subscriber polling it would pull back and forth once per record (issue 20: the publisher then waits for it).
 * Because intent runs up to a stride ahead, a reader counts as lapped a stride early: the ring holds at least
 * capacity - capacity/16 - the largest record of unread data. tail is for joins, drains and parking.
 * A writer killed mid-record leaves the record's length zero: it is never read.
 */
#ifndef TP_BUS_IPC_H
#define TP_BUS_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/tp_atomic.h"

#define TP_BUS_LOG_MAGIC UINT64_C(0x31474C5355425054)      /* "TPBUSLG1" */
#define TP_BUS_REGISTRY_MAGIC UINT64_C(0x3147525355425054) /* "TPBUSRG1" */
#define TP_BUS_LAYOUT_VERSION 5

#define TP_BUS_LOG_HEADER_BYTES 512
#define TP_BUS_RECORD_HEADER_BYTES 16
#define TP_BUS_RECORD_ALIGN 16
#define TP_BUS_RECORD_DATA 1
#define TP_BUS_RECORD_PAD 2
#define TP_BUS_INTENT_STRIDES 16 /* intent moves capacity / 16 at a time */

/* Per stream: publications (every client process has one on the control and QoS streams) and subscriptions, as
 * many of each: chosen by the process that creates the registry (TP_BUS_REGISTRY_SLOTS, tp_bus_set_registry_slots),
 * recorded in it, adopted by every process that opens it. */
#define TP_BUS_REGISTRY_SLOTS_DEFAULT 2048u
#define TP_BUS_REGISTRY_SLOTS_MIN 16u
#define TP_BUS_REGISTRY_SLOTS_MAX 65536u

#define TP_BUS_ENTRY_FREE 0
#define TP_BUS_ENTRY_CLAIMED 1
#define TP_BUS_ENTRY_ACTIVE 2
#define TP_BUS_ENTRY_CLOSED 3 /* closed by its publisher; lingers so late-noticing subscribers can drain it */
#define TP_BUS_CLOSED_LINGER_NS (5LL * 1000000000LL)
#define TP_BUS_CHANGE_PENDING UINT64_MAX

/* Lanes (tp_bus.h): an image's lane says which subscriptions read it. Every subscription reads the broadcast lane;
 * the request lane (clients to the driver) is read by subscriptions that serve requests, the hello lane (consumers
 * to producers) by those that read hellos. Parking, waking and rescans follow the lanes, so a crowd of clients
 * never maps, polls or wakes for one another's requests and hellos. */
#define TP_BUS_LANE_BROADCAST 0u
#define TP_BUS_LANE_REQUESTS 1u
#define TP_BUS_LANE_HELLOS 2u
#define TP_BUS_LANE_BIT(lane) (1u << (lane))
#define TP_BUS_LANES_ALL (TP_BUS_LANE_BIT(TP_BUS_LANE_BROADCAST) | TP_BUS_LANE_BIT(TP_BUS_LANE_REQUESTS) | \
                          TP_BUS_LANE_BIT(TP_BUS_LANE_HELLOS))
/* A subscription waits, wakes and rescans as one of three classes, by the lanes it reads: ALL (it reads requests:
 * woken by everything, rescans on every change), HELLOS (hellos and broadcasts), BROADCAST (broadcasts only). The
 * futex bitsets of tp_bus_registry_t.futex_word are per lane: a class waits for the bits of the lanes it is woken
 * by, a publisher wakes with its lane's bit. */
#define TP_BUS_CLASS_ALL 0u
#define TP_BUS_CLASS_HELLOS 1u
#define TP_BUS_CLASS_BROADCAST 2u
static inline uint32_t tp_bus_lanes_class(uint32_t lanes)
{
    return (lanes & TP_BUS_LANE_BIT(TP_BUS_LANE_REQUESTS)) != 0 ? TP_BUS_CLASS_ALL
           : (lanes & TP_BUS_LANE_BIT(TP_BUS_LANE_HELLOS)) != 0 ? TP_BUS_CLASS_HELLOS
                                                                 : TP_BUS_CLASS_BROADCAST;
}
/* tp_bus_registry_t.waiters counts parked subscribers per class in 21-bit fields (ALL lowest). A request publisher
 * looks at ALL's field, a hello publisher at ALL's and HELLOS', a broadcast publisher at the whole word. */
#define TP_BUS_WAITER_SHIFT 21
#define TP_BUS_WAITER_ONE(cls) (UINT64_C(1) << (TP_BUS_WAITER_SHIFT * (cls)))
#define TP_BUS_WAITER_FIELD(cls) (((UINT64_C(1) << TP_BUS_WAITER_SHIFT) - 1) << (TP_BUS_WAITER_SHIFT * (cls)))
#define TP_BUS_REQUESTS_MAX_TERM (128u * 1024u) /* TP_BUS_PUB_REQUESTS (tp_bus.h) */
#define TP_BUS_SERVICE_MIN_TERM (2u * 1024u * 1024u) /* TP_BUS_PUB_SERVICE */

typedef struct tp_bus_log_header
{
    uint64_t magic;
    uint32_t version;
    int32_t stream_id;
    int32_t session_id;
    int32_t pid;
    uint64_t capacity;
    uint64_t pid_start_time;
    uint64_t created_ns;
    uint8_t pad0[TP_CACHE_LINE_PAD_BYTES - 48];
    /* Written per record; readers only read it to join, drain, park, or resume after being lapped. */
    uint64_t tail;   /* end of the last complete record */
    uint64_t latest; /* start of the last complete record (written before tail) */
    uint8_t pad2[TP_CACHE_LINE_PAD_BYTES - 16];
    /* Read by readers once per batch; written once per stride. */
    uint64_t intent; /* at or past the end of every byte the writer may be writing */
    uint8_t pad1[TP_CACHE_LINE_PAD_BYTES - 8];
    uint32_t is_closed; /* set by the writer at close */
    uint8_t pad3[TP_CACHE_LINE_PAD_BYTES - 4];
} tp_bus_log_header_t;

typedef struct tp_bus_record_header
{
    uint32_t length; /* header + payload bytes (unaligned); for padding the bytes skipped */
    uint32_t type;
    uint64_t seq; /* per image, from 0, data records only */
} tp_bus_record_header_t;

typedef struct tp_bus_image_entry
{
    uint32_t state;
    int32_t session_id;
    int32_t pid;
    uint32_t lane; /* TP_BUS_LANE_*, set before the entry turns ACTIVE */
    uint64_t pid_start_time;
    uint64_t change; /* registry change number of its registration; TP_BUS_CHANGE_PENDING while being set */
    uint64_t capacity;
    uint64_t closed_ns; /* CLOCK_MONOTONIC when the publisher closed it */
    uint32_t is_asymmetric; /* counted in asymmetric_publishers while ACTIVE; set before the entry turns ACTIVE */
    uint8_t pad[12];
} tp_bus_image_entry_t;

typedef struct tp_bus_subscriber_entry
{
    uint32_t state;
    int32_t pid;
    uint64_t pid_start_time;
    uint32_t parked; /* 1 while this subscriber counts in waiters: whoever clears it (the subscriber waking, or a
                      * reaper removing it dead) takes it out of waiters, exactly once */
    uint32_t wait_class; /* TP_BUS_CLASS_*: the waiters field it counts in while parked; set before ACTIVE */
    uint8_t pad[40];
} tp_bus_subscriber_entry_t;

typedef struct tp_bus_registry
{
    uint64_t magic;
    uint32_t version;
    int32_t stream_id;
    uint32_t max_images;
    uint32_t max_subscribers;
    uint8_t pad0[TP_CACHE_LINE_PAD_BYTES - 24];
    uint64_t change_counter;   /* bumped on every image registration or removal (what class ALL watches) */
    uint64_t broadcast_change; /* on those of broadcast images (class BROADCAST) */
    uint64_t hello_change;     /* on those of broadcast and hello images (class HELLOS) */
    uint8_t pad1[TP_CACHE_LINE_PAD_BYTES - 24];
    uint32_t futex_word; /* bumped by publishers to wake parked subscribers (a bitset bit per lane) */
    uint8_t pad2[TP_CACHE_LINE_PAD_BYTES - 4];
    uint64_t waiters; /* subscribers parked (or about to park) on futex_word, a field per class (TP_BUS_WAITER_*) */
    /* ACTIVE images whose publisher wakes without a fence (tp_bus_registry_wake_asymmetric): while there is none,
     * a parking subscriber needs no system-wide barrier (tp_bus_registry_park_barrier). Rarely written. */
    uint32_t asymmetric_publishers;
    uint8_t pad3[TP_CACHE_LINE_PAD_BYTES - 12];
    uint32_t subscriber_count;
    uint8_t pad4[TP_CACHE_LINE_PAD_BYTES - 4];
    uint64_t reap_ns; /* CLOCK_MONOTONIC of the last idle reap by any subscriber (tp_bus_registry_claim_reap) */
    uint8_t pad5[TP_CACHE_LINE_PAD_BYTES - 8];
    /* Then max_images image entries, then max_subscribers subscriber entries (tp_bus_registry_map_t points at them:
     * the sizes are read once, checked against the file's size, and never read from shared memory again). */
} tp_bus_registry_t;

_Static_assert(sizeof(tp_bus_log_header_t) == TP_BUS_LOG_HEADER_BYTES, "log header is 512 bytes");
_Static_assert(sizeof(tp_bus_record_header_t) == TP_BUS_RECORD_HEADER_BYTES, "record header is 16 bytes");
_Static_assert(sizeof(tp_bus_image_entry_t) == 64, "image entry is 64 bytes");
_Static_assert(sizeof(tp_bus_subscriber_entry_t) == 64, "subscriber entry is 64 bytes");

/* A record header's first 8 bytes, length and type, as one word (the struct's layout on a little-endian host). */
static inline uint64_t tp_bus_record_word(uint32_t length, uint32_t type)
{
    return (uint64_t)length | (uint64_t)type << 32;
}
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "record words assume a little-endian host");

static inline uint64_t tp_bus_record_bytes(size_t payload_length)
{
    return ((uint64_t)payload_length + TP_BUS_RECORD_HEADER_BYTES + TP_BUS_RECORD_ALIGN - 1) &
           ~(uint64_t)(TP_BUS_RECORD_ALIGN - 1);
}

/* A mapped registry of one stream. */
typedef struct tp_bus_registry_map
{
    tp_bus_registry_t *reg;
    tp_bus_image_entry_t *images;           /* max_images of them */
    tp_bus_subscriber_entry_t *subscribers; /* max_subscribers of them */
    uint32_t max_images;                    /* as validated at open: never re-read from the file */
    uint32_t max_subscribers;
    size_t map_bytes;
    char stream_dir[4096];
} tp_bus_registry_map_t;

static inline size_t tp_bus_registry_bytes(uint32_t max_images, uint32_t max_subscribers)
{
    return sizeof(tp_bus_registry_t) + (size_t)max_images * sizeof(tp_bus_image_entry_t) +
           (size_t)max_subscribers * sizeof(tp_bus_subscriber_entry_t);
}

/* Open (creating with `slots` images and subscribers if it does not exist) <bus_dir>/<stream_id>/registry. Dead
 * subscribers and images are reclaimed (one opener per interval) and orphaned logs removed. */
int tp_bus_registry_open(tp_bus_registry_map_t *m, const char *bus_dir, int32_t stream_id, mode_t dir_mode,
    mode_t file_mode, uint32_t slots);
void tp_bus_registry_close(tp_bus_registry_map_t *m);

/* Remove registry entries of processes that no longer run (and their log files). Returns how many. */
int tp_bus_registry_reap(tp_bus_registry_map_t *m);

/* Free the oldest CLOSED image entry (and its log) before its linger ran out: for a publication that finds the
 * registry full. Returns 1 if one was freed. */
int tp_bus_registry_reclaim_closed(tp_bus_registry_map_t *m);
/* Free image entry `index` now if it is CLOSED (its publisher's close, when no subscriber exists). */
void tp_bus_registry_reclaim(tp_bus_registry_map_t *m, int index);

/* Remove the log files of a stream directory that no registry entry names and whose writer is dead (left by a
 * process killed between creating its log and registering it, or by an older build). Returns how many. */
int tp_bus_registry_reap_orphans(tp_bus_registry_map_t *m);

/* Claim the stream's idle reap for this interval: true for one caller per interval_ns across all processes. */
bool tp_bus_registry_claim_reap(tp_bus_registry_t *reg, int64_t now_ns, int64_t interval_ns);
#define TP_BUS_REAP_INTERVAL_NS (250LL * 1000 * 1000)
/* tp_bus_registry_reap if this process claims the stream's reap (every TP_BUS_REAP_INTERVAL_NS): for opens and
 * closes, which a crowd makes by the thousand (each reap reads /proc for every entry). Returns how many. */
int tp_bus_registry_reap_claimed(tp_bus_registry_map_t *m);

/* Wake the parked subscribers that read `lane` (futex) if any; cheap when none is parked. Returns true if it made
 * the system call. */
bool tp_bus_registry_wake(tp_bus_registry_t *reg, uint32_t lane);
/* The same after a record is published by a process registered for the asymmetric barrier
 * (tp_bus_asymmetric_register): no fence of its own; parking subscribers issue the barrier for it. Hot path. */
bool tp_bus_registry_wake_asymmetric(tp_bus_registry_t *reg, uint32_t lane);
/* An image of `lane` was registered or removed: bump the change counters its readers watch (the lanes' own; then
 * tp_bus_registry_changed also change_counter, which a registration bumps itself to number the change). */
void tp_bus_registry_lane_changed(tp_bus_registry_t *reg, uint32_t lane);
void tp_bus_registry_changed(tp_bus_registry_t *reg, uint32_t lane);
/* Register this process (once; later calls return the first answer) for membarrier's global expedited barrier, so
 * that its publishers may wake without a fence per record. false where the kernel lacks it: those publishers keep
 * the fence. */
bool tp_bus_asymmetric_register(void);
/* A parking subscriber's barrier, after it counted itself in waiters and before it looks for data once more: a
 * fence, and the system-wide barrier if the stream has asymmetric publishers. false when the kernel refused the
 * latter: sleep at most TP_BUS_PARK_FALLBACK_NS then. */
bool tp_bus_registry_park_barrier(tp_bus_registry_t *reg);
#define TP_BUS_PARK_FALLBACK_NS (1000 * 1000)

/* An asymmetric publisher is gone (closed, or found dead): count it out of asymmetric_publishers. */
void tp_bus_registry_asymmetric_gone(tp_bus_registry_t *reg);

/* Take a parked subscriber out of waiters if its flag is still set (the subscriber itself, or a reaper). */
void tp_bus_registry_unpark(tp_bus_registry_t *reg, tp_bus_subscriber_entry_t *e);

/* Path of an image's log file. */
void tp_bus_log_path(char *out, size_t capacity, const char *stream_dir, int32_t session_id);

#endif
