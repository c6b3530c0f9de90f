/* The per-stream registry of the IPC bus; see tp_bus_ipc.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bus/tp_bus_ipc.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"

void tp_bus_log_path(char *out, size_t capacity, const char *stream_dir, int32_t session_id)
{
    snprintf(out, capacity, "%s/%08x.log", stream_dir, (uint32_t)session_id);
}

/* Check a registry's header (a private copy, read once) and its file's size; the sizes it names are then the only
 * ones this process uses. */
static int registry_validate(const tp_bus_registry_t *h, int32_t stream_id, const char *path, off_t file_bytes)
{
    if (h->magic != TP_BUS_REGISTRY_MAGIC)
    {
        TP_SET_ERR(TP_E_VALIDATION, "'%s' is not a tensorpool bus registry (magic 0x%016" PRIx64 ")", path, h->magic);
        return -1;
    }
    if (h->version != TP_BUS_LAYOUT_VERSION)
    {
        TP_SET_ERR(TP_E_VALIDATION,
            "bus registry '%s' has layout version %u; this build uses version %u. Stop the processes of the other "
            "version (once none runs, remove the registry's directory) or use another bus directory (TP_BUS_DIR)",
            path, h->version, TP_BUS_LAYOUT_VERSION);
        return -1;
    }
    if (h->max_images < TP_BUS_REGISTRY_SLOTS_MIN || h->max_images > TP_BUS_REGISTRY_SLOTS_MAX ||
        h->max_subscribers < TP_BUS_REGISTRY_SLOTS_MIN || h->max_subscribers > TP_BUS_REGISTRY_SLOTS_MAX ||
        file_bytes < 0 || (size_t)file_bytes != tp_bus_registry_bytes(h->max_images, h->max_subscribers))
    {
        TP_SET_ERR(TP_E_VALIDATION,
            "bus registry '%s' is damaged: %u images and %u subscribers (each %u to %u) in a file of %lld bytes", path,
            h->max_images, h->max_subscribers, TP_BUS_REGISTRY_SLOTS_MIN, TP_BUS_REGISTRY_SLOTS_MAX,
            (long long)file_bytes);
        return -1;
    }
    if (h->stream_id != stream_id)
    {
        TP_SET_ERR(TP_E_VALIDATION, "bus registry '%s' belongs to stream %d, not %d", path, h->stream_id, stream_id);
        return -1;
    }
    return 0;
}

/* Read, check and map the registry open on fd into m. */
static int registry_map_fd(tp_bus_registry_map_t *m, int fd, int32_t stream_id, const char *path)
{
    struct stat st;
    tp_bus_registry_t h;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
    {
        TP_SET_ERR(TP_E_VALIDATION, "bus registry '%s' is not a regular file of at least %zu bytes", path,
            sizeof(tp_bus_registry_t));
        return -1;
    }
    if (registry_validate(&h, stream_id, path, st.st_size) < 0)
    {
        return -1;
    }
    size_t bytes = tp_bus_registry_bytes(h.max_images, h.max_subscribers);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping bus registry '%s' failed: %s", path, strerror(errno));
        return -1;
    }
    m->reg = p;
    m->map_bytes = bytes;
    m->max_images = h.max_images;
    m->max_subscribers = h.max_subscribers;
    m->images = (tp_bus_image_entry_t *)(m->reg + 1);
    m->subscribers = (tp_bus_subscriber_entry_t *)(m->images + h.max_images);
    return 0;
}

/* Create the registry complete under a temporary name, then link it into place: nobody ever sees it half made. */
static int registry_create(const char *path, const char *stream_dir, int32_t stream_id, mode_t file_mode,
    uint32_t slots)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s/.registry.%d.%08x", stream_dir, (int)getpid(), tp_random_u32());
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file_mode);
    if (fd < 0)
    {
        TP_SET_ERR(errno, "creating '%s' failed: %s", tmp, strerror(errno));
        return -1;
    }
    fchmod(fd, file_mode); /* exactly, whatever the umask */
    int rc = -1;
    size_t bytes = tp_bus_registry_bytes(slots, slots);
    tp_bus_registry_t *reg = NULL;
    if (ftruncate(fd, (off_t)bytes) < 0)
    {
        TP_SET_ERR(errno, "sizing '%s' failed: %s", tmp, strerror(errno));
        goto done;
    }
    reg = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (reg == MAP_FAILED)
    {
        reg = NULL;
        TP_SET_ERR(errno, "mapping '%s' failed: %s", tmp, strerror(errno));
        goto done;
    }
    reg->version = TP_BUS_LAYOUT_VERSION;
    reg->stream_id = stream_id;
    reg->max_images = slots;
    reg->max_subscribers = slots;
    tp_store_release_u64(&reg->magic, TP_BUS_REGISTRY_MAGIC);
    if (link(tmp, path) < 0 && errno != EEXIST)
    {
        TP_SET_ERR(errno, "linking bus registry '%s' failed: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (reg != NULL)
    {
        munmap(reg, bytes);
    }
    close(fd);
    unlink(tmp);
    return rc;
}

int tp_bus_registry_open(tp_bus_registry_map_t *m, const char *bus_dir, int32_t stream_id, mode_t dir_mode,
    mode_t file_mode, uint32_t slots)
{
    memset(m, 0, sizeof(*m));
    int n = snprintf(m->stream_dir, sizeof(m->stream_dir), "%s/%d", bus_dir, (int)stream_id);
    if (n < 0 || (size_t)n >= sizeof(m->stream_dir))
    {
        TP_SET_ERR(TP_E_INVALID, "bus directory path too long");
        return -1;
    }
    if (tp_fs_mkdirs(bus_dir, m->stream_dir, dir_mode) < 0)
    {
        TP_APPEND_ERR("bus stream directory for stream %d", stream_id);
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/registry", m->stream_dir);
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
    {
        if (registry_create(path, m->stream_dir, stream_id, file_mode, slots) < 0)
        {
            return -1;
        }
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
    {
        TP_SET_ERR(errno, "opening bus registry '%s' failed: %s", path, strerror(errno));
        return -1;
    }
    int rc = registry_map_fd(m, fd, stream_id, path);
    close(fd);
    if (rc < 0)
    {
        return -1;
    }
    /* Dead entries: one opener per interval checks (a crowd opening by the thousand would otherwise read /proc for
     * every entry each time; a full registry reaps at once). Orphaned logs: a directory listing, cheap. */
    tp_bus_registry_reap_claimed(m);
    tp_bus_registry_reap_orphans(m);
    return 0;
}

void tp_bus_registry_close(tp_bus_registry_map_t *m)
{
    if (m->reg != NULL)
    {
        munmap(m->reg, m->map_bytes);
        m->reg = NULL;
    }
}

/* Free image entry i (state `state`) and unlink its log. true if we freed it. */
static bool image_entry_free(tp_bus_registry_map_t *m, int i, uint32_t state, const char *why)
{
    tp_bus_registry_t *reg = m->reg;
    tp_bus_image_entry_t *e = &m->images[i];
    int32_t session = e->session_id;
    uint32_t lane = e->lane; /* before the entry is free for someone else's */
    bool was_asymmetric = state == TP_BUS_ENTRY_ACTIVE && e->is_asymmetric != 0;
    uint32_t expect = state;
    if (!tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_FREE))
    {
        return false;
    }
    if (was_asymmetric)
    {
        tp_bus_registry_asymmetric_gone(reg); /* its writer is dead: none of its records is still on the way */
    }
    /* Subscribers that mapped it drain their mapping; the file goes now. */
    char path[4300];
    tp_bus_log_path(path, sizeof(path), m->stream_dir, session);
    unlink(path);
    tp_bus_registry_changed(reg, lane);
    TP_LOG_I("bus", "stream %d: removed image %08x of process %d (%s)", reg->stream_id, (uint32_t)session, e->pid,
        why);
    return true;
}

int tp_bus_registry_reap(tp_bus_registry_map_t *m)
{
    tp_bus_registry_t *reg = m->reg;
    int reaped = 0;
    for (uint32_t i = 0; i < m->max_subscribers; i++)
    {
        tp_bus_subscriber_entry_t *e = &m->subscribers[i];
        if (tp_load_acquire_u32(&e->state) == TP_BUS_ENTRY_ACTIVE && !tp_proc_is_alive(e->pid, e->pid_start_time))
        {
            uint32_t expect = TP_BUS_ENTRY_ACTIVE;
            if (tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_FREE))
            {
                tp_bus_registry_unpark(reg, e); /* it died parked: publishers must stop waking it */
                tp_fetch_sub_acq_rel_u32(&reg->subscriber_count, 1);
                TP_LOG_I("bus", "stream %d: removed subscriber of dead process %d", reg->stream_id, e->pid);
                reaped++;
            }
        }
    }
    int64_t now = tp_clock_monotonic_ns();
    for (uint32_t i = 0; i < m->max_images; i++)
    {
        tp_bus_image_entry_t *e = &m->images[i];
        uint32_t state = tp_load_acquire_u32(&e->state);
        bool is_dead = state == TP_BUS_ENTRY_ACTIVE && !tp_proc_is_alive(e->pid, e->pid_start_time);
        bool has_lingered = state == TP_BUS_ENTRY_CLOSED && now - (int64_t)e->closed_ns >= TP_BUS_CLOSED_LINGER_NS;
        if ((is_dead || has_lingered) &&
            image_entry_free(m, i, state, is_dead ? "dead" : "closed, lingered"))
        {
            reaped++;
        }
    }
    if (reaped > 0)
    {
        tp_bus_registry_wake(reg, TP_BUS_LANE_BROADCAST);
    }
    return reaped;
}

int tp_bus_registry_reap_claimed(tp_bus_registry_map_t *m)
{
    return tp_bus_registry_claim_reap(m->reg, tp_clock_monotonic_ns(), TP_BUS_REAP_INTERVAL_NS)
               ? tp_bus_registry_reap(m)
               : 0;
}

void tp_bus_registry_lane_changed(tp_bus_registry_t *reg, uint32_t lane)
{
    if (lane == TP_BUS_LANE_BROADCAST)
    {
        tp_fetch_add_acq_rel_u64(&reg->broadcast_change, 1);
    }
    if (lane == TP_BUS_LANE_BROADCAST || lane == TP_BUS_LANE_HELLOS)
    {
        tp_fetch_add_acq_rel_u64(&reg->hello_change, 1);
    }
}

void tp_bus_registry_changed(tp_bus_registry_t *reg, uint32_t lane)
{
    tp_bus_registry_lane_changed(reg, lane);
    tp_fetch_add_acq_rel_u64(&reg->change_counter, 1);
}

void tp_bus_registry_reclaim(tp_bus_registry_map_t *m, int index)
{
    (void)image_entry_free(m, index, TP_BUS_ENTRY_CLOSED, "closed, no subscriber");
}

int tp_bus_registry_reclaim_closed(tp_bus_registry_map_t *m)
{
    for (;;)
    {
        int oldest = -1;
        for (int i = 0; i < (int)m->max_images; i++)
        {
            tp_bus_image_entry_t *e = &m->images[i];
            if (tp_load_acquire_u32(&e->state) == TP_BUS_ENTRY_CLOSED &&
                (oldest < 0 || e->closed_ns < m->images[oldest].closed_ns))
            {
                oldest = i;
            }
        }
        if (oldest < 0)
        {
            return 0;
        }
        if (image_entry_free(m, oldest, TP_BUS_ENTRY_CLOSED, "closed, reclaimed for a new one"))
        {
            return 1;
        }
        /* Another process reclaimed the same one first: look again. */
    }
}

static bool log_name_session(const char *name, int32_t *session)
{
    unsigned int v = 0;
    int used = 0;
    if (strlen(name) != 12 || sscanf(name, "%8x.log%n", &v, &used) != 1 || used != 12)
    {
        return false;
    }
    *session = (int32_t)v;
    return true;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a;
    int32_t y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The sessions the registry names, sorted. */
static int named_sessions(const tp_bus_registry_map_t *m, int32_t *out)
{
    int n = 0;
    for (uint32_t i = 0; i < m->max_images; i++)
    {
        if (tp_load_acquire_u32(&m->images[i].state) != TP_BUS_ENTRY_FREE)
        {
            out[n++] = m->images[i].session_id;
        }
    }
    qsort(out, (size_t)n, sizeof(out[0]), cmp_i32);
    return n;
}

int tp_bus_registry_reap_orphans(tp_bus_registry_map_t *m)
{
    DIR *dp = opendir(m->stream_dir);
    if (dp == NULL)
    {
        return 0;
    }
    int removed = 0;
    int32_t *named = NULL;
    int named_count = -1; /* read from the registry at the first log file */
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
    {
        int32_t session = 0;
        if (!log_name_session(de->d_name, &session))
        {
            continue;
        }
        if (named_count < 0)
        {
            if (tp_alloc((void **)&named, sizeof(named[0]) * m->max_images) < 0)
            {
                break; /* no memory: the next open looks again */
            }
            named_count = named_sessions(m, named);
        }
        if (bsearch(&session, named, (size_t)named_count, sizeof(named[0]), cmp_i32) != NULL)
        {
            continue;
        }
        /* The writer's identity is in the log header; a log too short to hold one, or of another layout, whose
         * writer we cannot tell, is left alone unless it is older than the linger (an abandoned half-made file). */
        char path[sizeof(m->stream_dir) + sizeof(de->d_name) + 1];
        snprintf(path, sizeof(path), "%s/%s", m->stream_dir, de->d_name);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
        {
            continue;
        }
        tp_bus_log_header_t h;
        ssize_t n = pread(fd, &h, sizeof(h), 0);
        close(fd);
        bool is_dead = n == (ssize_t)sizeof(h) && h.magic == TP_BUS_LOG_MAGIC ?
            !tp_proc_is_alive(h.pid, h.pid_start_time) : false;
        if (is_dead && unlink(path) == 0)
        {
            TP_LOG_I("bus", "stream %d: removed orphaned log %s of dead process %d", m->reg->stream_id, de->d_name,
                h.pid);
            removed++;
        }
    }
    closedir(dp);
    tp_free(named);
    return removed;
}

bool tp_bus_registry_claim_reap(tp_bus_registry_t *reg, int64_t now_ns, int64_t interval_ns)
{
    uint64_t last = tp_load_acquire_u64(&reg->reap_ns);
    return now_ns - (int64_t)last >= interval_ns && tp_cas_acq_rel_u64(&reg->reap_ns, &last, (uint64_t)now_ns);
}

/* A broadcast record wakes every parked subscriber; a request the class that reads requests; a hello the classes
 * that read hellos (their waiters fields, and the lane's futex bit). */
static bool wake_waiters(tp_bus_registry_t *reg, uint32_t lane)
{
    uint64_t waiters = tp_load_relaxed_u64(&reg->waiters);
    uint64_t readers = lane == TP_BUS_LANE_REQUESTS ? TP_BUS_WAITER_FIELD(TP_BUS_CLASS_ALL)
                       : lane == TP_BUS_LANE_HELLOS
                           ? TP_BUS_WAITER_FIELD(TP_BUS_CLASS_ALL) | TP_BUS_WAITER_FIELD(TP_BUS_CLASS_HELLOS)
                           : UINT64_MAX;
    if ((waiters & readers) != 0)
    {
        tp_fetch_add_acq_rel_u32(&reg->futex_word, 1);
        syscall(SYS_futex, &reg->futex_word, FUTEX_WAKE_BITSET, INT_MAX, NULL, NULL, TP_BUS_LANE_BIT(lane));
        return true;
    }
    return false;
}

bool tp_bus_registry_wake(tp_bus_registry_t *reg, uint32_t lane)
{
    /* Pairs with the barrier in the subscriber's park: either it sees our data, or we see its waiter. */
    tp_fence_seq_cst();
    return wake_waiters(reg, lane);
}

/*
 * The asymmetric form of that Dekker pair. A publisher stores its tail, then reads `waiters`; a parking subscriber
 * stores `waiters`, then reads the tail. Each side needs a full barrier between its store and its load, or both
 * may read the old value and the subscriber sleeps on data that is there. A fence on every record costs the
 * publisher the round trip of the tail's cache line to the subscriber's core (most of its time at small messages);
 * so the subscriber, which is about to sleep anyway, pays for both: membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
 * runs a full barrier on every CPU that runs a registered process at that moment (a process that is not running
 * passed one when it was switched out). After it, a publisher's tail store is either visible to the subscriber's
 * check, or its load of `waiters` comes after the barrier and sees the subscriber's store.
 */
static int asymmetric_state; /* 0 unknown, 1 registered, -1 unavailable (atomic) */

bool tp_bus_asymmetric_register(void)
{
    int state = tp_load_acquire_int(&asymmetric_state);
    if (state != 0)
    {
        return state > 0;
    }
    long supported = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    bool ok = supported >= 0 && (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
              (supported & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0 &&
              syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
    tp_store_release_int(&asymmetric_state, ok ? 1 : -1);
    return ok;
}

bool tp_bus_registry_wake_asymmetric(tp_bus_registry_t *reg, uint32_t lane)
{
    tp_compiler_barrier(); /* the tail store is issued before the load (the CPU may still delay it: see above) */
    return wake_waiters(reg, lane);
}

/* The subscriber's half: a barrier on every CPU running a registered publisher, and on our own, whether or not this
 * process publishes. Where the kernel has no such barrier no publisher could register (they all fence): true. false
 * if the kernel has it but refused the call (a sandbox filtering it): a publisher may then skip its wake, and the
 * caller bounds its sleep instead. */
static int barrier_support; /* 0 unknown, 1 the kernel has it, -1 not (atomic) */

void tp_bus_registry_asymmetric_gone(tp_bus_registry_t *reg)
{
    __atomic_fetch_sub(&reg->asymmetric_publishers, 1, __ATOMIC_SEQ_CST);
}

bool tp_bus_registry_park_barrier(tp_bus_registry_t *reg)
{
    tp_fence_seq_cst();
    /* A publisher counts itself (a sequentially consistent add) before its first record without a fence, and
     * stops counting after its last: if we see none, any that comes later sees our waiter when it looks. */
    if (__atomic_load_n(&reg->asymmetric_publishers, __ATOMIC_SEQ_CST) == 0)
    {
        return true;
    }
    int support = tp_load_acquire_int(&barrier_support);
    if (support == 0)
    {
        long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
        support = commands >= 0 && (commands & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 ? 1 : -1;
        tp_store_release_int(&barrier_support, support);
    }
    return support < 0 || syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

void tp_bus_registry_unpark(tp_bus_registry_t *reg, tp_bus_subscriber_entry_t *e)
{
    if (tp_exchange_acq_rel_u32(&e->parked, 0) != 0)
    {
        tp_fetch_sub_acq_rel_u64(&reg->waiters, TP_BUS_WAITER_ONE(e->wait_class < 3 ? e->wait_class : 0));
    }
}
