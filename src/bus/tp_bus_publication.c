/* Bus context and publications (IPC log writer; UDP in tp_bus_udp.c). See tp_bus_ipc.h for the log protocol. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_config.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_proc.h"

/* ---- context ---- */

enum bus_open_mode
{
    BUS_JOIN,     /* default modes, or a shared directory's */
    BUS_EXISTING, /* the same, and the directory must exist */
    BUS_EXPLICIT, /* the caller's modes */
};

static int bus_init(tp_bus_t **out, const char *bus_dir, uint32_t dir_mode, uint32_t file_mode, gid_t gid,
    enum bus_open_mode how);

int tp_bus_init(tp_bus_t **out, const char *bus_dir)
{
    return bus_init(out, bus_dir, 0700, 0600, (gid_t)-1, BUS_JOIN);
}

int tp_bus_init_existing(tp_bus_t **out, const char *bus_dir)
{
    return bus_init(out, bus_dir, 0700, 0600, (gid_t)-1, BUS_EXISTING);
}

int tp_bus_init_with_modes(tp_bus_t **out, const char *bus_dir, uint32_t dir_mode, uint32_t file_mode)
{
    return bus_init(out, bus_dir, dir_mode, file_mode, (gid_t)-1, BUS_EXPLICIT);
}

int tp_bus_init_shared(tp_bus_t **out, const char *bus_dir, const char *group, uint32_t dir_mode, uint32_t file_mode)
{
    gid_t gid;
    if (tp_fs_group_id(group, &gid) < 0)
    {
        return -1;
    }
    return bus_init(out, bus_dir, dir_mode | S_ISGID, file_mode, gid, BUS_EXPLICIT);
}

/* A directory shared with a group (tp_fs_is_shared_dir: what a driver with shm.group makes) is joined on its terms: our directories get its group bits and setgid, our files 0660, or the other members (the
 * driver among them) could not read what we write. That holds for its owner and for root too. /dev/shm itself
 * (1777) is not a shared directory: a bus made in it stays private. */
static void join_shared_modes(tp_bus_t *bus, const struct stat *st)
{
    if (tp_fs_is_shared_dir(st))
    {
        bus->dir_mode = 0700 | (uint32_t)(st->st_mode & (S_IRWXG | S_ISGID));
        bus->file_mode = 0660;
    }
}

/* Every stream directory and file of the bus that we own joins the group (a bus used privately before). */
static int share_tree(const tp_bus_t *bus, gid_t gid)
{
    DIR *dir = opendir(bus->dir);
    if (dir == NULL)
    {
        TP_SET_ERR(errno, "opening bus directory '%s' failed: %s", bus->dir, strerror(errno));
        return -1;
    }
    int status = 0;
    struct dirent *e;
    while (status == 0 && (e = readdir(dir)) != NULL)
    {
        if (!tp_fs_component_is_safe(e->d_name))
        {
            continue;
        }
        char path[TP_BUS_DIR_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", bus->dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0 || (st.st_uid != geteuid() && geteuid() != 0))
        {
            continue;
        }
        if (S_ISDIR(st.st_mode))
        {
            status = tp_fs_share_dir(path, (mode_t)bus->dir_mode, gid);
            DIR *sub = status == 0 ? opendir(path) : NULL;
            struct dirent *f;
            while (sub != NULL && (f = readdir(sub)) != NULL)
            {
                char file[TP_BUS_DIR_MAX + 600];
                snprintf(file, sizeof(file), "%s/%s", path, f->d_name);
                struct stat fst;
                if (tp_fs_component_is_safe(f->d_name) && lstat(file, &fst) == 0 && S_ISREG(fst.st_mode) &&
                    (fst.st_uid == geteuid() || geteuid() == 0))
                {
                    (void)lchown(file, (uid_t)-1, gid);
                    (void)chmod(file, (mode_t)(fst.st_mode & 07777) | (bus->file_mode & 0060));
                }
            }
            if (sub != NULL)
            {
                closedir(sub);
            }
        }
        else if (S_ISREG(st.st_mode))
        {
            (void)lchown(path, (uid_t)-1, gid);
        }
    }
    closedir(dir);
    return status;
}

/* The bus directory joins the group, and so does its parent when that is our per-user directory (the default
 * /dev/shm/tensorpool-$USER/bus, perhaps made private by an earlier run); no other ancestor is touched. */
static int share_parents(const tp_bus_t *bus, gid_t gid)
{
    if (tp_fs_share_dir(bus->dir, (mode_t)bus->dir_mode, gid) < 0)
    {
        return -1;
    }
    char parent[TP_BUS_DIR_MAX];
    char user[300];
    snprintf(parent, sizeof(parent), "%s", bus->dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash == parent || tp_fs_user_dir_name(user, sizeof(user)) < 0)
    {
        return 0;
    }
    *slash = '\0';
    const char *name = strrchr(parent, '/');
    return name != NULL && strcmp(name + 1, user) == 0 ? tp_fs_share_dir(parent, (mode_t)bus->dir_mode, gid) : 0;
}

int tp_bus_set_registry_slots(tp_bus_t *bus, uint32_t slots)
{
    if (slots < TP_BUS_REGISTRY_SLOTS_MIN || slots > TP_BUS_REGISTRY_SLOTS_MAX)
    {
        TP_SET_ERR(TP_E_CONFIG, "bus registry slots %u: from %u to %u", slots, TP_BUS_REGISTRY_SLOTS_MIN,
            TP_BUS_REGISTRY_SLOTS_MAX);
        return -1;
    }
    bus->registry_slots = slots;
    return 0;
}

/* TP_BUS_REGISTRY_SLOTS, if set: a whole number within the limits (read as the configuration reads numbers). */
static int registry_slots_from_env(tp_bus_t *bus)
{
    static const tp_config_field_t field = TP_CFG_FIELD(tp_bus_t, registry_slots, "TP_BUS_REGISTRY_SLOTS",
        TP_CFG_U32, NULL, TP_BUS_REGISTRY_SLOTS_MIN, TP_BUS_REGISTRY_SLOTS_MAX, false, "bus registry slots");
    const char *text = getenv("TP_BUS_REGISTRY_SLOTS");
    const char *why = NULL;
    if (text != NULL && text[0] != '\0' && tp_config_parse_text(&field, bus, text, &why) < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "TP_BUS_REGISTRY_SLOTS='%s': a whole number from %u to %u", text,
            TP_BUS_REGISTRY_SLOTS_MIN, TP_BUS_REGISTRY_SLOTS_MAX);
        return -1;
    }
    return 0;
}

static int bus_init(tp_bus_t **out, const char *bus_dir, uint32_t dir_mode, uint32_t file_mode, gid_t gid,
    enum bus_open_mode how)
{
    tp_bus_t *bus = NULL;
    if (dir_mode > 07777 || file_mode > 0777 || (file_mode & 0600) != 0600 || (dir_mode & 0700) != 0700)
    {
        TP_SET_ERR(TP_E_INVALID, "bus modes %04o/%04o: the owner needs rwx on directories and rw on files",
            (unsigned)dir_mode, (unsigned)file_mode);
        return -1;
    }
    if (tp_alloc((void **)&bus, sizeof(*bus)) < 0)
    {
        return -1;
    }
    bus->dir_mode = dir_mode;
    bus->file_mode = file_mode;
    bus->registry_slots = TP_BUS_REGISTRY_SLOTS_DEFAULT;
    if (registry_slots_from_env(bus) < 0)
    {
        goto error;
    }
    const char *env = getenv("TP_BUS_DIR");
    int n;
    bool is_named = true; /* by the caller or TP_BUS_DIR, not the default under /dev/shm */
    if (bus_dir != NULL && bus_dir[0] != '\0')
    {
        n = snprintf(bus->dir, sizeof(bus->dir), "%s", bus_dir);
    }
    else if (env != NULL && env[0] != '\0')
    {
        n = snprintf(bus->dir, sizeof(bus->dir), "%s", env);
    }
    else
    {
        is_named = false;
        char user[300];
        if (tp_fs_user_dir_name(user, sizeof(user)) < 0)
        {
            goto error;
        }
        n = snprintf(bus->dir, sizeof(bus->dir), "/dev/shm/%s/bus", user);
    }
    if (n < 0 || (size_t)n >= sizeof(bus->dir) || bus->dir[0] != '/')
    {
        TP_SET_ERR(TP_E_CONFIG, "bus directory '%s' must be an absolute path", bus->dir);
        goto error;
    }
    struct stat st;
    bool is_there = stat(bus->dir, &st) == 0;
    if ((!is_there && errno == EACCES) ||
        (is_there && faccessat(AT_FDCWD, bus->dir, R_OK | W_OK | X_OK, AT_EACCESS) < 0 && errno == EACCES))
    {
        if (tp_fs_explain_denied(bus->dir, "using this bus") == 0)
        {
            TP_SET_ERR(EACCES, "bus directory '%s': permission denied", bus->dir);
        }
        goto error;
    }
    if (how == BUS_EXISTING && stat(bus->dir, &st) < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "bus directory '%s' does not exist: no driver or client has used it (check "
            "--bus-dir or TP_BUS_DIR)", bus->dir);
        goto error;
    }
    /* Create the missing components below the deepest existing ancestor, each with dir_mode. */
    char root[TP_BUS_DIR_MAX];
    snprintf(root, sizeof(root), "%s", bus->dir);
    while (stat(root, &st) < 0)
    {
        char *slash = strrchr(root, '/');
        if (slash == NULL || slash == root)
        {
            snprintf(root, sizeof(root), "/");
            break;
        }
        *slash = '\0';
    }
    if (how != BUS_EXPLICIT)
    {
        join_shared_modes(bus, &st); /* the deepest existing directory decides: the bus's own, or its parent */
    }
    if (strcmp(root, bus->dir) != 0 || gid != (gid_t)-1)
    {
        if (tp_fs_mkdirs_shared(root, bus->dir, (mode_t)bus->dir_mode, gid) < 0)
        {
            if (errno == EACCES)
            {
                tp_fs_explain_denied(bus->dir, "using this bus");
            }
            TP_APPEND_ERR("creating bus directory '%s'", bus->dir);
            goto error;
        }
    }
    /* wire spec 15.21a: nobody else's directory, no symlink; root may watch a bus shared with a group it is not in
     * when it names it (a driver's service account owns it) */
    if (tp_fs_check_ancestors_shared(bus->dir, is_named && geteuid() == 0) < 0)
    {
        TP_APPEND_ERR("bus directory '%s'", bus->dir);
        goto error;
    }
    if (stat(bus->dir, &st) < 0 || !S_ISDIR(st.st_mode))
    {
        TP_SET_ERR(TP_E_CONFIG, "bus directory '%s' is not a directory", bus->dir);
        goto error;
    }
    if (gid != (gid_t)-1 && share_parents(bus, gid) < 0)
    {
        goto error;
    }
    if (gid != (gid_t)-1 && share_tree(bus, gid) < 0)
    {
        TP_APPEND_ERR("sharing bus directory '%s'", bus->dir);
        goto error;
    }
    *out = bus;
    return 0;
error:
    tp_free(bus);
    return -1;
}

int tp_bus_close(tp_bus_t *bus)
{
    tp_free(bus);
    return 0;
}

const char *tp_bus_dir(const tp_bus_t *bus)
{
    return bus->dir;
}

void tp_bus_set_clock(tp_bus_t *bus, tp_clock_fn_t clock, void *clientd)
{
    bus->clock.fn = clock;
    bus->clock.clientd = clientd;
}

/* ---- IPC publication ---- */

static int log_create(tp_bus_publication_t *pub)
{
    char path[4300];
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++)
    {
        pub->session_id = (int32_t)(tp_random_u32() | 1u); /* never 0: subscribers mark registry entries with it */
        tp_bus_log_path(path, sizeof(path), pub->registry.stream_dir, pub->session_id);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, pub->bus->file_mode);
        if (fd < 0 && errno != EEXIST)
        {
            TP_SET_ERR(errno, "creating bus log '%s' failed: %s", path, strerror(errno));
            return -1;
        }
    }
    if (fd < 0)
    {
        TP_SET_ERR(TP_E_STATE, "no free session id in '%s'", pub->registry.stream_dir);
        return -1;
    }
    pub->map_bytes = TP_BUS_LOG_HEADER_BYTES + pub->capacity;
    fchmod(fd, pub->bus->file_mode); /* exactly, whatever the umask */
    if (ftruncate(fd, (off_t)pub->map_bytes) < 0)
    {
        TP_SET_ERR(errno, "sizing bus log '%s' failed: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    void *p = mmap(NULL, pub->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
    {
        TP_SET_ERR(errno, "mapping bus log '%s' failed: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    pub->log = p;
    pub->data = (uint8_t *)p + TP_BUS_LOG_HEADER_BYTES;
    pub->mask = pub->capacity - 1;
    pub->intent_stride = pub->capacity / TP_BUS_INTENT_STRIDES;
    pub->log->version = TP_BUS_LAYOUT_VERSION;
    pub->log->stream_id = pub->stream_id;
    pub->log->session_id = pub->session_id;
    pub->log->pid = (int32_t)getpid();
    pub->log->capacity = pub->capacity;
    pub->log->pid_start_time = tp_proc_start_time(getpid());
    pub->log->created_ns = (uint64_t)tp_clock_monotonic_ns();
    tp_store_release_u64(&pub->log->magic, TP_BUS_LOG_MAGIC);
    return 0;
}

#define TP_BUS_REGISTER_PASSES 16

/* Register the image: entry ACTIVE with a pending change number, then take the next change number. A subscriber
 * that joined before that number starts this image at position 0, so it misses nothing published after joining. */
static int log_register(tp_bus_publication_t *pub)
{
    tp_bus_registry_t *reg = pub->registry.reg;
    for (int pass = 0; pass < TP_BUS_REGISTER_PASSES; pass++)
    {
        for (uint32_t i = 0; i < pub->registry.max_images; i++)
        {
            tp_bus_image_entry_t *e = &pub->registry.images[i];
            uint32_t expect = TP_BUS_ENTRY_FREE;
            if (!tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_CLAIMED))
            {
                continue;
            }
            e->session_id = pub->session_id;
            e->pid = pub->log->pid;
            e->pid_start_time = pub->log->pid_start_time;
            e->capacity = pub->capacity;
            e->lane = pub->lane;
            e->is_asymmetric = pub->is_asymmetric ? 1 : 0;
            if (pub->is_asymmetric)
            {
                /* Before our first record without a fence, and before the entry is ACTIVE (a reaper that frees it
                 * counts it out). */
                __atomic_fetch_add(&reg->asymmetric_publishers, 1, __ATOMIC_SEQ_CST);
            }
            tp_store_release_u64(&e->change, TP_BUS_CHANGE_PENDING);
            tp_store_release_u32(&e->state, TP_BUS_ENTRY_ACTIVE);
            uint64_t change = tp_fetch_add_acq_rel_u64(&reg->change_counter, 1) + 1;
            tp_bus_registry_lane_changed(reg, pub->lane);
            tp_store_release_u64(&e->change, change);
            pub->registry_index = (int)i;
            tp_bus_registry_wake(reg, pub->lane);
            return 0;
        }
        /* Full: reap the dead and, if that freed nothing, reclaim the oldest closed image now rather than after its
         * linger (subscribers that mapped it still drain their mapping). Under churn, other processes may take
         * what we freed before we do: try again, a few times. */
        if (pass == 0 && tp_bus_registry_reap(&pub->registry) > 0)
        {
            continue;
        }
        if (tp_bus_registry_reclaim_closed(&pub->registry) == 0)
        {
            break;
        }
    }
    TP_SET_ERR(TP_E_CAPACITY, "stream %d already has %u publications (its registry's size: TP_BUS_REGISTRY_SLOTS "
        "when it was made)", pub->stream_id, pub->registry.max_images);
    return -1;
}

/* Mark the image closed; it lingers (file and entry) so subscribers that have not noticed it yet can still drain
 * it. tp_bus_registry_reap removes it after TP_BUS_CLOSED_LINGER_NS. */
static void log_unregister(tp_bus_publication_t *pub)
{
    tp_bus_registry_t *reg = pub->registry.reg;
    if (reg == NULL || pub->registry_index < 0)
    {
        return;
    }
    tp_bus_image_entry_t *e = &pub->registry.images[pub->registry_index];
    e->closed_ns = (uint64_t)tp_clock_monotonic_ns();
    uint32_t expect = TP_BUS_ENTRY_ACTIVE;
    if (e->session_id == pub->session_id && tp_cas_acq_rel_u32(&e->state, &expect, TP_BUS_ENTRY_CLOSED))
    {
        if (e->is_asymmetric != 0)
        {
            tp_bus_registry_asymmetric_gone(reg); /* after our last record (the exchange above fenced it) */
        }
        tp_bus_registry_changed(reg, pub->lane);
        tp_bus_registry_wake(reg, pub->lane);
        /* Nobody subscribes: nobody can still need it (a subscription opened from now on joins after it). */
        if (tp_load_acquire_u32(&reg->subscriber_count) == 0)
        {
            tp_bus_registry_reclaim(&pub->registry, pub->registry_index);
        }
    }
    pub->registry_index = -1;
}

int tp_bus_publication_open_with(tp_bus_publication_t **out, tp_bus_t *bus, const char *channel, int32_t stream_id,
    uint32_t flags)
{
    bool is_shared = (flags & TP_BUS_PUB_SHARED) != 0;
    bool is_fenced = (flags & (TP_BUS_PUB_FENCED | TP_BUS_PUB_REQUESTS | TP_BUS_PUB_HELLOS | TP_BUS_PUB_SERVICE)) != 0;
    uint32_t lane = (flags & TP_BUS_PUB_REQUESTS) != 0 ? TP_BUS_LANE_REQUESTS
                    : (flags & TP_BUS_PUB_HELLOS) != 0 ? TP_BUS_LANE_HELLOS
                                                        : TP_BUS_LANE_BROADCAST;
    tp_bus_publication_t *pub = NULL;
    if (tp_alloc((void **)&pub, sizeof(*pub)) < 0)
    {
        return -1;
    }
    pub->bus = bus;
    pub->stream_id = stream_id;
    pub->is_shared = is_shared;
    pub->lane = lane;
    pub->registry_index = -1;
    if (tp_channel_parse(&pub->channel, channel) < 0)
    {
        goto error;
    }
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        if (tp_bus_udp_publication_open(pub) < 0)
        {
            goto error;
        }
        *out = pub;
        return 0;
    }
    pub->capacity = pub->channel.term_length;
    if ((flags & (TP_BUS_PUB_REQUESTS | TP_BUS_PUB_HELLOS)) != 0 && pub->capacity > TP_BUS_REQUESTS_MAX_TERM)
    {
        pub->capacity = TP_BUS_REQUESTS_MAX_TERM; /* a client's requests are few and small; a crowd has many */
    }
    if ((flags & TP_BUS_PUB_SERVICE) != 0 && pub->capacity < TP_BUS_SERVICE_MIN_TERM)
    {
        pub->capacity = TP_BUS_SERVICE_MIN_TERM; /* a burst of answers to a crowd must not lap a slow client */
    }
    pub->max_message_length = (size_t)(pub->capacity / 8) - TP_BUS_RECORD_HEADER_BYTES;
    /* Fenced publications (requests, a service's answers) cost parking subscribers no system-wide barrier. */
    pub->is_asymmetric = !is_fenced && tp_bus_asymmetric_register();
    if (tp_bus_registry_open(&pub->registry, bus->dir, stream_id, bus->dir_mode, bus->file_mode,
            bus->registry_slots) < 0 ||
        log_create(pub) < 0 ||
        log_register(pub) < 0)
    {
        goto error;
    }
    *out = pub;
    return 0;
error:
    TP_APPEND_ERR("opening a publication on '%s' stream %d", channel != NULL ? channel : "(null)", stream_id);
    tp_bus_publication_close(pub);
    return -1;
}

int tp_bus_publication_open(tp_bus_publication_t **out, tp_bus_t *bus, const char *channel, int32_t stream_id,
    bool is_shared)
{
    return tp_bus_publication_open_with(out, bus, channel, stream_id, is_shared ? TP_BUS_PUB_SHARED : 0);
}

int tp_bus_publication_close(tp_bus_publication_t *pub)
{
    if (pub == NULL)
    {
        return 0;
    }
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        tp_bus_udp_publication_close(pub);
    }
    if (pub->log != NULL)
    {
        tp_store_release_u32(&pub->log->is_closed, 1);
        if (pub->registry_index < 0)
        {
            /* Never registered (the registry was full): nothing names the log, so nobody would ever reap it. */
            char path[4300];
            tp_bus_log_path(path, sizeof(path), pub->registry.stream_dir, pub->session_id);
            unlink(path);
        }
        log_unregister(pub);
        munmap(pub->log, pub->map_bytes);
    }
    tp_bus_registry_close(&pub->registry);
    tp_free(pub);
    return 0;
}

static inline void pub_lock(tp_bus_publication_t *pub)
{
    if (pub->is_shared)
    {
        uint32_t expect = 0;
        while (!tp_cas_acq_rel_u32(&pub->lock, &expect, 1))
        {
            expect = 0;
            tp_cpu_relax();
        }
    }
}

static inline void pub_unlock(tp_bus_publication_t *pub)
{
    if (pub->is_shared)
    {
        tp_store_release_u32(&pub->lock, 0);
    }
}

/* Make the published intent cover every byte up to end before any of them is overwritten. It moves a stride at a
 * time, so readers (who read it once per batch, or on an empty poll) find its line unchanged almost always. */
static inline void log_cover(tp_bus_publication_t *pub, uint64_t end)
{
    if (end > pub->intent)
    {
        pub->intent = end + pub->intent_stride;
        tp_store_relaxed_u64(&pub->log->intent, pub->intent);
        tp_fence_release(); /* the intent store reaches readers before any byte it announces is overwritten */
    }
}

/* Publish the record whose header is at offset and that ends at position end: clear the next record's header first
 * (readers stop at a zero length), then the sequence, then length and type in one release store, which readers
 * polling the record load with acquire. */
static inline void log_publish_header(tp_bus_publication_t *pub, uint64_t offset, uint64_t end, uint32_t length,
    uint32_t type, uint64_t seq)
{
    tp_store_relaxed_u64((uint64_t *)(void *)(pub->data + (end & pub->mask)), 0);
    tp_store_relaxed_u64((uint64_t *)(void *)(pub->data + offset + 8), seq);
    tp_store_release_u64((uint64_t *)(void *)(pub->data + offset), tp_bus_record_word(length, type));
}

/* Reserve record_bytes at the tail, padding to the end of the ring first if the record would straddle it (the
 * padding record is published at once: a reader that reaches it must find the way on). Returns the offset of the
 * record in data. Single writer (caller holds the publication). */
static inline uint64_t log_reserve(tp_bus_publication_t *pub, uint64_t record_bytes)
{
    uint64_t tail = pub->tail;
    uint64_t offset = tail & pub->mask;
    uint64_t to_end = pub->capacity - offset;
    if (record_bytes > to_end)
    {
        /* Readers must never see a record cross the end: fill the rest with one padding record. */
        log_cover(pub, tail + to_end + record_bytes + TP_BUS_RECORD_HEADER_BYTES);
        tail += to_end;
        log_publish_header(pub, offset, tail, (uint32_t)to_end, TP_BUS_RECORD_PAD, pub->next_seq);
        pub->tail = tail;
        return 0;
    }
    log_cover(pub, tail + record_bytes + TP_BUS_RECORD_HEADER_BYTES);
    return offset;
}

/* Publish the record at offset (tp_bus_ipc.h), then latest and tail (release; for joins, drains and parking), then
 * wake parked subscribers if there are any. */
static inline int64_t log_commit(tp_bus_publication_t *pub, uint64_t offset, uint64_t record_bytes,
    uint32_t length, uint32_t type)
{
    uint64_t tail = pub->tail + record_bytes;
    log_publish_header(pub, offset, tail, length, type, pub->next_seq);
    if (type == TP_BUS_RECORD_DATA)
    {
        pub->next_seq++;
    }
    pub->tail = tail;
    /* latest before tail: a reader that sees the tail sees a latest whose record is complete. */
    tp_store_release_u64(&pub->log->latest, tail - record_bytes);
    tp_store_release_u64(&pub->log->tail, tail);
    bool woke = pub->is_asymmetric ? tp_bus_registry_wake_asymmetric(pub->registry.reg, pub->lane)
                                    : tp_bus_registry_wake(pub->registry.reg, pub->lane);
    if (woke && ++pub->wakes_since_reap >= TP_BUS_WAKES_PER_REAP)
    {
        pub->wakes_since_reap = 0;
        tp_bus_registry_reap(&pub->registry); /* only on the futex path, which makes a system call anyway */
    }
    return (int64_t)tail;
}

static inline int64_t pub_check(const tp_bus_publication_t *pub, size_t length)
{
    if (pub->is_closed)
    {
        return TP_BUS_CLOSED;
    }
    if (length > pub->max_message_length)
    {
        return TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED;
    }
    if (pub->channel.kind == TP_CHANNEL_IPC && tp_load_relaxed_u32(&pub->registry.reg->subscriber_count) == 0)
    {
        return TP_BUS_NOT_CONNECTED;
    }
    return 0;
}

/* UDP, apart so that the IPC path below stays as short as it was. */
static int64_t udp_offer(tp_bus_publication_t *pub, const void *buffer, size_t length)
{
    pub_lock(pub);
    int64_t rc = pub->has_claim ? TP_BUS_ADMIN_ACTION : tp_bus_udp_offer(pub, buffer, length);
    pub_unlock(pub);
    return rc;
}

/* Hot path: no alloc, syscalls (IPC) or locks (unless shared). */
int64_t tp_bus_offer(tp_bus_publication_t *pub, const void *buffer, size_t length)
{
    int64_t rc = pub_check(pub, length);
    if (rc < 0)
    {
        return rc;
    }
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        return udp_offer(pub, buffer, length);
    }
    pub_lock(pub);
    if (pub->has_claim)
    {
        pub_unlock(pub);
        return TP_BUS_ADMIN_ACTION;
    }
    uint64_t record_bytes = tp_bus_record_bytes(length);
    uint64_t offset = log_reserve(pub, record_bytes);
    memcpy(pub->data + offset + TP_BUS_RECORD_HEADER_BYTES, buffer, length);
    rc = log_commit(pub, offset, record_bytes, (uint32_t)(length + TP_BUS_RECORD_HEADER_BYTES), TP_BUS_RECORD_DATA);
    pub_unlock(pub);
    return rc;
}

int64_t tp_bus_try_claim(tp_bus_publication_t *pub, size_t length, tp_bus_claim_t *claim)
{
    int64_t rc = pub_check(pub, length);
    if (rc < 0)
    {
        return rc;
    }
    pub_lock(pub);
    if (pub->has_claim)
    {
        pub_unlock(pub);
        return TP_BUS_ADMIN_ACTION;
    }
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        /* One frame in the term, sent at commit. */
        rc = tp_bus_udp_try_claim(pub, length, claim);
        if (rc < 0)
        {
            pub_unlock(pub);
            return rc;
        }
        pub->has_claim = true;
        return rc;
    }
    uint64_t record_bytes = tp_bus_record_bytes(length);
    uint64_t offset = log_reserve(pub, record_bytes);
    pub->has_claim = true;
    claim->buffer = pub->data + offset + TP_BUS_RECORD_HEADER_BYTES;
    claim->length = length;
    claim->record_bytes_ = record_bytes;
    claim->position_ = (int64_t)(pub->tail + record_bytes);
    /* The publication stays held (shared ones stay locked) until commit or abort. */
    return claim->position_;
}

int64_t tp_bus_commit(tp_bus_publication_t *pub, tp_bus_claim_t *claim)
{
    if (!pub->has_claim)
    {
        return TP_BUS_ADMIN_ACTION;
    }
    pub->has_claim = false;
    int64_t rc;
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        rc = tp_bus_udp_commit(pub, claim, false);
    }
    else
    {
        uint64_t offset = (uint64_t)(claim->buffer - pub->data) - TP_BUS_RECORD_HEADER_BYTES;
        rc = log_commit(pub, offset, claim->record_bytes_, (uint32_t)(claim->length + TP_BUS_RECORD_HEADER_BYTES),
            TP_BUS_RECORD_DATA);
    }
    pub_unlock(pub);
    return rc;
}

int64_t tp_bus_abort(tp_bus_publication_t *pub, tp_bus_claim_t *claim)
{
    if (!pub->has_claim)
    {
        return TP_BUS_ADMIN_ACTION;
    }
    pub->has_claim = false;
    int64_t rc;
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        rc = tp_bus_udp_commit(pub, claim, true);
    }
    else
    {
        /* The reserved bytes become padding that readers skip. */
        uint64_t offset = (uint64_t)(claim->buffer - pub->data) - TP_BUS_RECORD_HEADER_BYTES;
        rc = log_commit(pub, offset, claim->record_bytes_, (uint32_t)claim->record_bytes_, TP_BUS_RECORD_PAD);
    }
    pub_unlock(pub);
    return rc;
}

int tp_bus_publication_set_coalescing(tp_bus_publication_t *pub, bool is_coalescing)
{
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        pub_lock(pub);
        tp_bus_udp_publication_set_coalescing(pub, is_coalescing);
        pub_unlock(pub);
    }
    return 0;
}

int tp_bus_publication_do_work(tp_bus_publication_t *pub)
{
    if (pub->channel.kind != TP_CHANNEL_UDP || pub->is_closed)
    {
        return 0;
    }
    pub_lock(pub);
    int work = pub->has_claim ? 0 : tp_bus_udp_publication_do_work(pub);
    pub_unlock(pub);
    return work;
}

size_t tp_bus_publication_max_message_length(const tp_bus_publication_t *pub)
{
    return pub->max_message_length;
}

int32_t tp_bus_publication_session_id(const tp_bus_publication_t *pub)
{
    return pub->session_id;
}

bool tp_bus_publication_is_connected(const tp_bus_publication_t *pub)
{
    if (pub->channel.kind == TP_CHANNEL_UDP)
    {
        return tp_bus_udp_publication_is_connected(pub);
    }
    return tp_load_relaxed_u32(&pub->registry.reg->subscriber_count) > 0;
}
