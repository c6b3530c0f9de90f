/* Bus subscriptions: IPC image discovery, join positions, the lapping-safe reader, futex parking. UDP in
 * tp_bus_udp.c. See tp_bus_ipc.h for the log protocol. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"

/* Idle polls between liveness checks of silent images (a check costs a kill(2) and a /proc read per image). */
#define SUB_LIVENESS_IDLE_POLLS 1024u
#define SUB_REAP_INTERVAL_NS (250 * TP_NS_PER_MS)

static int sub_register(tp_bus_subscription_t *sub)
{
    tp_bus_registry_t *reg = sub->registry.reg;
    for (int pass = 0; pass < 2; pass++)
    {
        for (uint32_t i = 0; i < sub->registry.max_subscribers; i++)
        {
            tp_bus_subscriber_entry_t *e = &sub->registry.subscribers[i];
            uint32_t expect = TP_BUS_ENTRY_FREE;
            if (!tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_CLAIMED))
            {
                continue;
            }
            e->pid = (int32_t)getpid();
            e->pid_start_time = tp_proc_start_time(getpid());
            e->wait_class = sub->wait_class;
            tp_store_release_u32(&e->state, TP_BUS_ENTRY_ACTIVE);
            tp_fetch_add_acq_rel_u32(&reg->subscriber_count, 1);
            sub->subscriber_index = (int)i;
            return 0;
        }
        if (pass == 0 && tp_bus_registry_reap(&sub->registry) == 0)
        {
            break;
        }
    }
    TP_SET_ERR(TP_E_CAPACITY, "stream %d already has %u subscriptions (its registry's size: TP_BUS_REGISTRY_SLOTS "
        "when it was made)", sub->stream_id, sub->registry.max_subscribers);
    return -1;
}

static void sub_unregister(tp_bus_subscription_t *sub)
{
    tp_bus_registry_t *reg = sub->registry.reg;
    if (reg == NULL || sub->subscriber_index < 0)
    {
        return;
    }
    tp_bus_subscriber_entry_t *e = &sub->registry.subscribers[sub->subscriber_index];
    uint32_t expect = TP_BUS_ENTRY_ACTIVE;
    if (e->pid == (int32_t)getpid() && tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_FREE))
    {
        /* If we were the last live subscriber, nobody is left to drain closed images: they and the dead's go now. A
         * subscription opened from here on joins after them and would skip them anyway. Otherwise the dead are
         * looked for if this close claims the stream's reap (a crowd closes by the thousand). */
        if (tp_fetch_sub_acq_rel_u32(&reg->subscriber_count, 1) == 1)
        {
            tp_bus_registry_reap(&sub->registry);
        }
        else
        {
            tp_bus_registry_reap_claimed(&sub->registry);
        }
        while (tp_load_acquire_u32(&reg->subscriber_count) == 0 && tp_bus_registry_reclaim_closed(&sub->registry) > 0)
        {
        }
    }
    sub->subscriber_index = -1;
}

/* Is the image of registry entry `entry` (this session) mapped already? */
static bool image_is_mapped(const tp_bus_subscription_t *sub, int entry, int32_t session_id)
{
    int slot = sub->image_slot[entry];
    return slot > 0 && sub->images[slot - 1].session_id == session_id;
}

static int images_grow(tp_bus_subscription_t *sub)
{
    int capacity = sub->image_capacity == 0 ? 8 : sub->image_capacity * 2;
    capacity = capacity > (int)sub->registry.max_images ? (int)sub->registry.max_images : capacity;
    void *p = sub->images;
    if (tp_realloc(&p, (size_t)capacity * sizeof(tp_bus_image_t)) < 0)
    {
        return -1;
    }
    sub->images = p;
    sub->image_capacity = capacity;
    return 0;
}

/* Map a newly seen image. from_start: it registered after we joined, so everything in it is for us. */
static int image_join(tp_bus_subscription_t *sub, const tp_bus_image_entry_t *e, bool from_start, bool is_closed)
{
    if (sub->image_count == sub->image_capacity &&
        (sub->image_count == (int)sub->registry.max_images || images_grow(sub) < 0))
    {
        return -1;
    }
    char path[4300];
    tp_bus_log_path(path, sizeof(path), sub->registry.stream_dir, e->session_id);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
    {
        return -1; /* gone already (closed or reaped): nothing to read */
    }
    struct stat st;
    uint64_t capacity = e->capacity;
    size_t bytes = TP_BUS_LOG_HEADER_BYTES + (size_t)capacity;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != bytes || capacity == 0 ||
        (capacity & (capacity - 1)) != 0)
    {
        close(fd);
        sub->counters.malformed++;
        TP_LOG_W("bus", "stream %d: ignoring image %08x: log file '%s' does not match its registry entry",
            sub->stream_id, (uint32_t)e->session_id, path);
        return -1;
    }
    void *p = mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
    {
        return -1;
    }
    tp_bus_log_header_t *log = p;
    if (tp_load_acquire_u64(&log->magic) != TP_BUS_LOG_MAGIC || log->version != TP_BUS_LAYOUT_VERSION ||
        log->capacity != capacity || log->session_id != e->session_id || log->stream_id != sub->stream_id)
    {
        munmap(p, bytes);
        sub->counters.malformed++;
        TP_LOG_W("bus", "stream %d: ignoring image %08x: '%s' has another layout version or identity",
            sub->stream_id, (uint32_t)e->session_id, path);
        return -1;
    }
    size_t max_message = (size_t)(capacity / 8);
    if (max_message > sub->scratch_bytes)
    {
        void *s = sub->scratch;
        if (tp_realloc(&s, max_message) < 0)
        {
            munmap(p, bytes);
            return -1;
        }
        sub->scratch = s;
        sub->scratch_bytes = max_message;
    }
    tp_bus_image_t *img = &sub->images[sub->image_count++];
    memset(img, 0, sizeof(*img));
    img->session_id = e->session_id;
    img->entry_index = (int)(e - sub->registry.images);
    sub->image_slot[img->entry_index] = sub->image_count;
    img->log = log;
    img->data = (uint8_t *)p + TP_BUS_LOG_HEADER_BYTES;
    img->map_bytes = bytes;
    img->capacity = capacity;
    img->mask = capacity - 1;
    /* Joining: an image that existed when we joined starts at its tail (we see only what comes after); one that
     * appeared later starts at 0. If it wrapped before we got here, the reader finds it lapped and counts the loss
     * from the record sequence numbers. */
    img->cursor = from_start ? 0 : tp_load_acquire_u64(&log->tail);
    img->expected_seq = UINT64_MAX; /* learnt from the first record when joining at the tail */
    if (from_start)
    {
        img->expected_seq = 0;
    }
    img->is_removed = is_closed;
    sub->has_removed |= is_closed;
    sub->counters.images_joined++;
    if (sub->on_available != NULL)
    {
        sub->on_available(sub->clientd, sub->stream_id, img->session_id);
    }
    return 0;
}

static void image_drop(tp_bus_subscription_t *sub, int index)
{
    tp_bus_image_t *img = &sub->images[index];
    int32_t session = img->session_id;
    /* A closed image lingers in the registry: remember it so the next rescan does not join it again. */
    sub->retired[img->entry_index] = session;
    if (sub->image_slot[img->entry_index] == index + 1)
    {
        sub->image_slot[img->entry_index] = 0;
    }
    munmap(img->log, img->map_bytes);
    int last = sub->image_count - 1;
    if (index != last && sub->image_slot[sub->images[last].entry_index] == last + 1)
    {
        sub->image_slot[sub->images[last].entry_index] = index + 1;
    }
    sub->images[index] = sub->images[last];
    sub->image_count--;
    sub->counters.images_dropped++;
    if (sub->on_unavailable != NULL)
    {
        sub->on_unavailable(sub->clientd, sub->stream_id, session);
    }
}

/* Does this subscription read images of this lane? (A lane this build does not know: only class ALL reads it.) */
static bool sub_reads_lane(const tp_bus_subscription_t *sub, uint32_t lane)
{
    return lane <= TP_BUS_LANE_HELLOS ? (sub->lanes & TP_BUS_LANE_BIT(lane)) != 0
                                      : sub->wait_class == TP_BUS_CLASS_ALL;
}

/* The registry changed: join new images, mark departed ones for dropping once drained. Slow path. */
static void sub_rescan(tp_bus_subscription_t *sub, uint64_t change)
{
    for (int i = 0; i < sub->image_count; i++)
    {
        tp_bus_image_t *img = &sub->images[i];
        tp_bus_image_entry_t *e = &sub->registry.images[img->entry_index];
        uint32_t state = tp_load_acquire_u32(&e->state);
        if ((state != TP_BUS_ENTRY_ACTIVE && state != TP_BUS_ENTRY_CLOSED) || e->session_id != img->session_id ||
            tp_load_acquire_u32(&img->log->is_closed) != 0)
        {
            img->is_removed = true;
            sub->has_removed = true;
        }
    }
    for (int i = 0; i < (int)sub->registry.max_images; i++)
    {
        tp_bus_image_entry_t *e = &sub->registry.images[i];
        uint32_t state = tp_load_acquire_u32(&e->state);
        if ((state != TP_BUS_ENTRY_ACTIVE && state != TP_BUS_ENTRY_CLOSED) || image_is_mapped(sub, i, e->session_id) ||
            sub->retired[i] == e->session_id || !sub_reads_lane(sub, e->lane))
        {
            continue;
        }
        uint64_t registered = tp_load_acquire_u64(&e->change);
        bool is_new = registered == TP_BUS_CHANGE_PENDING || registered > sub->join_change;
        /* A closed image that existed before we joined holds nothing for us; a newer one is drained, then dropped. */
        if (is_new || state == TP_BUS_ENTRY_ACTIVE)
        {
            image_join(sub, e, is_new, state == TP_BUS_ENTRY_CLOSED);
        }
    }
    sub->seen_change = change;
}

static int subscription_open(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel, int32_t stream_id,
    tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd, uint32_t lanes)
{
    tp_bus_subscription_t *sub = NULL;
    if (tp_alloc((void **)&sub, sizeof(*sub)) < 0)
    {
        return -1;
    }
    sub->bus = bus;
    sub->stream_id = stream_id;
    sub->on_available = on_available;
    sub->on_unavailable = on_unavailable;
    sub->clientd = clientd;
    sub->subscriber_index = -1;
    sub->lanes = lanes & TP_BUS_LANES_ALL;
    sub->wait_class = tp_bus_lanes_class(sub->lanes);
    if (tp_channel_parse(&sub->channel, channel) < 0)
    {
        goto error;
    }
    if (sub->channel.kind == TP_CHANNEL_UDP)
    {
        if (tp_bus_udp_subscription_open(sub) < 0)
        {
            goto error;
        }
        *out = sub;
        return 0;
    }
    if (tp_bus_registry_open(&sub->registry, bus->dir, stream_id, bus->dir_mode, bus->file_mode,
            bus->registry_slots) < 0 ||
        tp_alloc((void **)&sub->image_slot, sizeof(sub->image_slot[0]) * sub->registry.max_images) < 0 ||
        tp_alloc((void **)&sub->retired, sizeof(sub->retired[0]) * sub->registry.max_images) < 0)
    {
        goto error;
    }
    /* Join time: images registered up to this change number are joined at their tail, later ones from 0. Joined
     * before we count as a subscriber: a publication that sees us connected then offers at or past the tail we
     * joined at, so nothing offered once connected is missed (registering first lost those offered between the
     * two). */
    tp_bus_registry_t *reg = sub->registry.reg;
    sub->change_word = sub->wait_class == TP_BUS_CLASS_ALL      ? &reg->change_counter
                       : sub->wait_class == TP_BUS_CLASS_HELLOS ? &reg->hello_change
                                                                : &reg->broadcast_change;
    uint64_t seen = tp_load_acquire_u64(sub->change_word);
    sub->join_change = tp_load_acquire_u64(&reg->change_counter);
    sub_rescan(sub, seen);
    if (sub_register(sub) < 0)
    {
        goto error;
    }
    *out = sub;
    return 0;
error:
    TP_APPEND_ERR("opening a subscription on '%s' stream %d", channel != NULL ? channel : "(null)", stream_id);
    tp_bus_subscription_close(sub);
    return -1;
}

int tp_bus_subscription_open(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel, int32_t stream_id,
    tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd)
{
    return subscription_open(out, bus, channel, stream_id, on_available, on_unavailable, clientd, TP_BUS_LANES_ALL);
}

int tp_bus_subscription_open_broadcast(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd)
{
    return subscription_open(out, bus, channel, stream_id, on_available, on_unavailable, clientd,
        TP_BUS_LANE_BIT(TP_BUS_LANE_BROADCAST));
}

int tp_bus_subscription_open_with(tp_bus_subscription_t **out, tp_bus_t *bus, const char *channel,
    int32_t stream_id, tp_bus_image_handler_t on_available, tp_bus_image_handler_t on_unavailable, void *clientd,
    uint32_t flags)
{
    uint32_t lanes = ((flags & TP_BUS_SUB_BROADCAST) != 0 ? TP_BUS_LANE_BIT(TP_BUS_LANE_BROADCAST) : 0) |
                     ((flags & TP_BUS_SUB_REQUESTS) != 0 ? TP_BUS_LANE_BIT(TP_BUS_LANE_REQUESTS) : 0) |
                     ((flags & TP_BUS_SUB_HELLOS) != 0 ? TP_BUS_LANE_BIT(TP_BUS_LANE_HELLOS) : 0);
    if (lanes == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "a subscription must read at least one lane (flags 0x%x)", flags);
        return -1;
    }
    return subscription_open(out, bus, channel, stream_id, on_available, on_unavailable, clientd, lanes);
}

int tp_bus_subscription_close(tp_bus_subscription_t *sub)
{
    if (sub == NULL)
    {
        return 0;
    }
    if (sub->channel.kind == TP_CHANNEL_UDP)
    {
        tp_bus_udp_subscription_close(sub);
    }
    for (int i = 0; i < sub->image_count; i++)
    {
        munmap(sub->images[i].log, sub->images[i].map_bytes);
    }
    sub_unregister(sub);
    tp_bus_registry_close(&sub->registry);
    tp_free(sub->images);
    tp_free(sub->image_slot);
    tp_free(sub->retired);
    tp_free(sub->scratch);
    tp_free(sub);
    return 0;
}

#define SUB_BATCH_MAX 64

typedef struct sub_batch_entry
{
    uint32_t scratch_offset;
    uint32_t length;
    uint64_t seq;
    uint64_t end; /* position just past the record */
} sub_batch_entry_t;

/* Read up to limit records of one image, in batches: copy records out while the length at the cursor says one is
 * complete, then check once that the writer did not lap the oldest of them, then deliver. The writer's tail line is
 * never read here (tp_bus_ipc.h). Hot path: no alloc, syscalls or locks. */
static int image_poll(tp_bus_subscription_t *sub, tp_bus_image_t *img, tp_bus_fragment_handler_t handler,
    void *clientd, int limit)
{
    int delivered = 0;
    sub_batch_entry_t batch[SUB_BATCH_MAX];
    while (delivered < limit)
    {
        uint64_t start = img->cursor;
        uint64_t cursor = start;
        size_t used = 0;
        int n = 0;
        bool is_corrupt = false;
        while (n < limit - delivered && n < SUB_BATCH_MAX)
        {
            uint64_t offset = cursor & img->mask;
            /* pairs with the writer's release store of length and type */
            uint64_t word = tp_load_acquire_u64((const uint64_t *)(const void *)(img->data + offset));
            uint32_t length = (uint32_t)word;
            uint32_t type = (uint32_t)(word >> 32);
            if (length == 0)
            {
                break; /* nothing yet (or lapped onto zeros: the intent check below tells) */
            }
            size_t payload = length >= TP_BUS_RECORD_HEADER_BYTES ? length - TP_BUS_RECORD_HEADER_BYTES : 0;
            uint64_t record_bytes = tp_bus_record_bytes(payload);
            if (length < TP_BUS_RECORD_HEADER_BYTES || record_bytes > img->capacity - offset ||
                (type != TP_BUS_RECORD_PAD && type != TP_BUS_RECORD_DATA) || payload > sub->scratch_bytes)
            {
                is_corrupt = true; /* or lapped: decided below */
                break;
            }
            if (type == TP_BUS_RECORD_DATA)
            {
                if (used + payload > sub->scratch_bytes)
                {
                    break; /* scratch full: deliver what we have */
                }
                uint64_t seq = tp_load_relaxed_u64((const uint64_t *)(const void *)(img->data + offset + 8));
                memcpy(sub->scratch + used, img->data + offset + TP_BUS_RECORD_HEADER_BYTES, payload);
                batch[n++] = (sub_batch_entry_t){ .scratch_offset = (uint32_t)used, .length = (uint32_t)payload,
                    .seq = seq, .end = cursor + record_bytes };
                used += payload;
            }
            cursor += record_bytes;
        }
        /* Everything copied above is only trusted if the writer has not lapped its oldest byte meanwhile; an empty
         * poll asks too, since a lapped cursor can sit on zeros in the middle of a newer record. */
        tp_fence_acquire();
        uint64_t intent = tp_load_acquire_u64(&img->log->intent);
        if (intent - start > img->capacity)
        {
            /* Lapped: resume at the newest complete record; its sequence number tells how many were lost. */
            img->cursor = tp_load_acquire_u64(&img->log->latest);
            if (img->cursor == start)
            {
                break; /* the writer has not completed a record since: nothing to resume at yet */
            }
            continue;
        }
        if (cursor == start && !is_corrupt)
        {
            break;
        }
        img->cursor = cursor;
        for (int i = 0; i < n; i++)
        {
            if (img->expected_seq != UINT64_MAX && batch[i].seq > img->expected_seq)
            {
                sub->counters.lost_records += batch[i].seq - img->expected_seq;
            }
            img->expected_seq = batch[i].seq + 1;
            tp_bus_header_t header = { .stream_id = sub->stream_id, .session_id = img->session_id,
                .position = (int64_t)batch[i].end };
            handler(clientd, sub->scratch + batch[i].scratch_offset, batch[i].length, &header);
        }
        sub->counters.messages += (uint64_t)n;
        delivered += n;
        if (is_corrupt)
        {
            /* Not lapped, yet not a record: a corrupt log. Skip to the tail and say so. */
            sub->counters.malformed++;
            img->cursor = tp_load_acquire_u64(&img->log->tail);
            img->expected_seq = UINT64_MAX;
            break;
        }
    }
    return delivered;
}

/* Drop images that are gone from the registry once drained; reap dead publishers when idle. Slow path. */
static void sub_maintain(tp_bus_subscription_t *sub)
{
    bool is_pending = false;
    for (int i = sub->image_count - 1; i >= 0; i--)
    {
        tp_bus_image_t *img = &sub->images[i];
        if (!img->is_removed)
        {
            continue;
        }
        if (img->cursor >= tp_load_acquire_u64(&img->log->tail))
        {
            image_drop(sub, i);
        }
        else
        {
            is_pending = true;
        }
    }
    sub->has_removed = is_pending;
}

int tp_bus_poll(tp_bus_subscription_t *sub, tp_bus_fragment_handler_t handler, void *clientd, int fragment_limit)
{
    if (sub->channel.kind == TP_CHANNEL_UDP)
    {
        return tp_bus_udp_poll(sub, handler, clientd, fragment_limit);
    }
    uint64_t change = tp_load_acquire_u64(sub->change_word);
    if (change != sub->seen_change)
    {
        sub_rescan(sub, change);
    }
    int work = 0;
    int count = sub->image_count;
    for (int k = 0; k < count && work < fragment_limit; k++)
    {
        int i = (sub->next_image + k) % count;
        work += image_poll(sub, &sub->images[i], handler, clientd, fragment_limit - work);
    }
    if (count > 0)
    {
        sub->next_image = (sub->next_image + 1) % count;
    }
    if (sub->has_removed)
    {
        sub_maintain(sub);
    }
    if (work == 0 && ++sub->idle_polls >= SUB_LIVENESS_IDLE_POLLS)
    {
        /* Idle: at most every SUB_REAP_INTERVAL_NS, look for publishers that died without closing. */
        sub->idle_polls = 0;
        int64_t now = tp_clock_monotonic_ns();
        if (now - sub->last_reap_ns >= SUB_REAP_INTERVAL_NS)
        {
            sub->last_reap_ns = now;
            /* One idle subscriber per stream reaps per interval, whichever claims it: with hundreds of processes
             * on a stream, each reaping on its own would check every other process hundreds of times a second. */
            if (tp_bus_registry_claim_reap(sub->registry.reg, now, SUB_REAP_INTERVAL_NS) &&
                tp_bus_registry_reap(&sub->registry) > 0)
            {
                sub_rescan(sub, tp_load_acquire_u64(sub->change_word));
                sub_maintain(sub);
            }
        }
    }
    return work;
}

static bool sub_has_data(tp_bus_subscription_t *sub)
{
    if (tp_load_acquire_u64(sub->change_word) != sub->seen_change)
    {
        return true;
    }
    for (int i = 0; i < sub->image_count; i++)
    {
        /* greater, not different: a reader may be past the tail, over a padding record published ahead of the
         * claim that follows it */
        if (tp_load_acquire_u64(&sub->images[i].log->tail) > sub->images[i].cursor)
        {
            return true;
        }
    }
    return false;
}

int tp_bus_subscription_park(tp_bus_subscription_t *sub, int64_t timeout_ns)
{
    if (sub->channel.kind == TP_CHANNEL_UDP)
    {
        return tp_bus_udp_park(sub, timeout_ns);
    }
    tp_bus_registry_t *reg = sub->registry.reg;
    if (sub->subscriber_index < 0)
    {
        return 0; /* closed */
    }
    tp_bus_subscriber_entry_t *entry = &sub->registry.subscribers[sub->subscriber_index];
    uint32_t word = tp_load_acquire_u32(&reg->futex_word);
    /* Count in waiters through our entry's flag, so that a reaper can take us out if we die parked (dying in
     * the two instructions between these stores leaks one waiter: publishers then make one futex call per
     * message until the stream's registry is recreated). */
    tp_fetch_add_acq_rel_u64(&reg->waiters, TP_BUS_WAITER_ONE(sub->wait_class));
    tp_store_release_u32(&entry->parked, 1);
    /* Pairs with tp_bus_registry_wake's fence, or stands in for it (tp_bus_registry_wake_asymmetric): a publisher
     * either sees us waiting or we see its data. */
    if (!tp_bus_registry_park_barrier(reg) && timeout_ns > TP_BUS_PARK_FALLBACK_NS)
    {
        timeout_ns = TP_BUS_PARK_FALLBACK_NS; /* a wake may be missed: it costs at most this */
    }
    int woken = 1;
    if (!sub_has_data(sub))
    {
        /* Woken by publishers of the lanes we read (tp_bus_registry_wake); the bitset wait's timeout is absolute. */
        int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
        struct timespec ts = { .tv_sec = deadline / TP_NS_PER_S, .tv_nsec = deadline % TP_NS_PER_S };
        uint32_t bitset = sub->wait_class == TP_BUS_CLASS_ALL ? TP_BUS_LANES_ALL
                          : sub->wait_class == TP_BUS_CLASS_HELLOS
                              ? TP_BUS_LANE_BIT(TP_BUS_LANE_BROADCAST) | TP_BUS_LANE_BIT(TP_BUS_LANE_HELLOS)
                              : TP_BUS_LANE_BIT(TP_BUS_LANE_BROADCAST);
        long rc = syscall(SYS_futex, &reg->futex_word, FUTEX_WAIT_BITSET, word, &ts, NULL, bitset);
        woken = !(rc < 0 && errno == ETIMEDOUT);
    }
    tp_bus_registry_unpark(reg, entry);
    return woken;
}

int tp_bus_subscription_reap(tp_bus_subscription_t *sub)
{
    return sub != NULL && sub->channel.kind == TP_CHANNEL_IPC && sub->registry.reg != NULL
               ? tp_bus_registry_reap(&sub->registry)
               : 0;
}

void tp_bus_subscription_counters(const tp_bus_subscription_t *sub, tp_bus_counters_t *out)
{
    *out = sub->counters;
    out->images_active = (uint32_t)sub->image_count;
}

int32_t tp_bus_subscription_stream_id(const tp_bus_subscription_t *sub)
{
    return sub->stream_id;
}

int tp_bus_subscription_image_owner(const tp_bus_subscription_t *sub, int32_t session_id, int32_t *pid,
    uint64_t *pid_start_time)
{
    for (int i = 0; i < sub->image_count; i++)
    {
        if (sub->images[i].session_id == session_id)
        {
            *pid = sub->images[i].log->pid;
            *pid_start_time = sub->images[i].log->pid_start_time;
            return 0;
        }
    }
    return -1;
}
