/* Driver streams: provisioning, epochs and their regions, activity refresh, epoch GC, announces. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "discovery/tp_discovery_provider.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_send.h"
#include "driver/tp_driver_streams.h"
#include "shm/tp_shm_layout.h"
#include "tp_sbe_wire.h"

tp_driver_stream_t *tp_driver_stream_find(tp_driver_t *d, uint32_t stream_id)
{
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        if (d->streams[i].stream_id == stream_id)
        {
            return &d->streams[i];
        }
    }
    return NULL;
}

/* Largest numeric epoch directory under the stream directory (0 if none): a restarted driver starts above it. */
static uint64_t stream_max_epoch_on_disk(const tp_driver_t *d, uint32_t stream_id)
{
    char dir[TP_PATH_MAX];
    if (tp_shm_layout_stream_dir(dir, sizeof(dir), d->config.base_dir, d->config.name_space, stream_id) < 0)
    {
        return 0;
    }
    DIR *dp = opendir(dir);
    uint64_t max = 0;
    struct dirent *e;
    while (dp != NULL && (e = readdir(dp)) != NULL)
    {
        uint64_t v = 0;
        if (tp_shm_layout_parse_number(e->d_name, &v) == 0 && v > max)
        {
            max = v;
        }
    }
    if (dp != NULL)
    {
        closedir(dp);
    }
    return max;
}

static void regions_close(tp_driver_regions_t *r)
{
    tp_shm_region_close(&r->header);
    for (int i = 0; i < TP_DRIVER_MAX_POOLS; i++)
    {
        tp_shm_region_close(&r->pools[i]);
    }
}

/* Epoch numbers tried past names someone else took before giving up (issue: a squatter must not block a stream). */
#define EPOCH_SQUAT_SKIP_MAX 64

/* Create a fresh, empty directory for the first free epoch at or above `epoch` (never reusing or following anything
 * already there: a file, a symlink or a directory squatting on the name is skipped with a warning). Fills
 * out->epoch and out->epoch_dir. Epochs never wrap: past 2^64 - 1 the stream cannot continue (wire spec 7.1). */
static int epoch_dir_create(tp_driver_t *d, uint32_t stream_id, uint64_t epoch, tp_driver_regions_t *out)
{
    const tp_driver_config_t *c = &d->config;
    char stream_dir[TP_PATH_MAX];
    mode_t dir_mode = tp_driver_config_dir_mode(c);
    gid_t gid = tp_driver_config_gid(c);
    if (tp_shm_layout_stream_dir(stream_dir, sizeof(stream_dir), c->base_dir, c->name_space, stream_id) < 0 ||
        tp_fs_mkdirs(c->base_dir, stream_dir, dir_mode) < 0 ||
        (gid != (gid_t)-1 && tp_fs_share_dir(stream_dir, dir_mode, gid) < 0))
    {
        return -1;
    }
    for (int attempt = 0; attempt < EPOCH_SQUAT_SKIP_MAX; attempt++, epoch++)
    {
        if (epoch == 0)
        {
            TP_SET_ERR(TP_E_CAPACITY, "stream %" PRIu32 " has used every 64-bit epoch", stream_id);
            return -1;
        }
        if (tp_shm_layout_epoch_dir(out->epoch_dir, sizeof(out->epoch_dir), c->base_dir, c->name_space, stream_id,
                epoch) < 0)
        {
            return -1;
        }
        if (mkdir(out->epoch_dir, dir_mode) == 0)
        {
            out->epoch = epoch;
            if (chmod(out->epoch_dir, dir_mode) < 0) /* mkdir honours the umask; we want the mode exactly */
            {
                TP_SET_ERR(errno, "chmod %o on '%s' failed: %s", (unsigned)dir_mode, out->epoch_dir, strerror(errno));
                return -1;
            }
            return 0;
        }
        if (errno != EEXIST)
        {
            TP_SET_ERR(errno, "creating directory '%s' failed: %s", out->epoch_dir, strerror(errno));
            return -1;
        }
        TP_LOG_W("driver", "'%s' already exists and is not ours: stream %" PRIu32 " skips epoch %" PRIu64,
            out->epoch_dir, stream_id, epoch);
    }
    TP_SET_ERR(TP_E_CAPACITY, "the next %d epoch directories of stream %" PRIu32 " are all taken, '%s/%" PRIu64
        "' to '%s'", EPOCH_SQUAT_SKIP_MAX, stream_id, stream_dir, epoch - EPOCH_SQUAT_SKIP_MAX, out->epoch_dir);
    return -1;
}

/* Create header ring and pools of the first free epoch at or above `epoch`, in
 * <base>/tensorpool-$USER/<ns>/<stream>/<epoch>/. */
static int regions_create(tp_driver_t *d, const tp_driver_stream_t *s, uint64_t epoch, tp_driver_regions_t *out)
{
    memset(out, 0, sizeof(*out));
    const tp_driver_config_t *c = &d->config;
    if (epoch_dir_create(d, s->stream_id, epoch, out) < 0)
    {
        TP_APPEND_ERR("making a new epoch of stream %" PRIu32, s->stream_id);
        return -1;
    }
    epoch = out->epoch;
    tp_shm_create_opts_t opts = { .file_mode = (mode_t)c->permissions_mode, .prefault = c->prefault_shm,
        .lock_memory = c->mlock_shm, .require_hugepages = c->require_hugepages, .replace_existing = true,
        .now_ns = d->now_ns };
    char path[TP_PATH_MAX];
    tp_superblock_t sb = { .layout_version = TP_LAYOUT_VERSION, .epoch = epoch, .stream_id = s->stream_id,
        .region_type = TP_REGION_HEADER_RING, .pool_id = 0, .nslots = s->profile.header_nslots,
        .slot_bytes = TP_HEADER_SLOT_BYTES, .stride_bytes = 0 };
    if (tp_shm_layout_header_path(path, sizeof(path), out->epoch_dir) < 0 ||
        tp_shm_region_create(&out->header, path, &sb, &opts) < 0 ||
        tp_region_uri_format(out->header_uri, sizeof(out->header_uri), path, c->require_hugepages) < 0)
    {
        goto error;
    }
    for (uint32_t i = 0; i < s->profile.pool_count; i++)
    {
        const tp_driver_pool_config_t *pc = &s->profile.pools[i];
        tp_superblock_t psb = { .layout_version = TP_LAYOUT_VERSION, .epoch = epoch, .stream_id = s->stream_id,
            .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = pc->pool_id, .nslots = s->profile.header_nslots,
            .slot_bytes = pc->stride_bytes, .stride_bytes = pc->stride_bytes };
        if (tp_shm_layout_pool_path(path, sizeof(path), out->epoch_dir, pc->pool_id) < 0 ||
            tp_shm_region_create(&out->pools[i], path, &psb, &opts) < 0 ||
            tp_region_uri_format(out->pool_uris[i], sizeof(out->pool_uris[i]), path, c->require_hugepages) < 0)
        {
            goto error;
        }
    }
    return 0;
error:
    TP_APPEND_ERR("creating epoch %" PRIu64 " of stream %" PRIu32 " in '%s'", epoch, s->stream_id, out->epoch_dir);
    regions_close(out);
    (void)tp_fs_remove_tree_below(c->base_dir, out->epoch_dir); /* ours alone: we created it empty above */
    return -1;
}

tp_driver_stream_t *tp_driver_stream_add(tp_driver_t *d, uint32_t stream_id, const char *name,
    const tp_driver_profile_config_t *profile, bool is_dynamic)
{
    if (d->stream_count == TP_DRIVER_MAX_LIVE_STREAMS)
    {
        TP_SET_ERR(TP_E_CAPACITY, "the driver serves %d streams already", TP_DRIVER_MAX_LIVE_STREAMS);
        return NULL;
    }
    tp_driver_stream_t *s = &d->streams[d->stream_count];
    memset(s, 0, sizeof(*s));
    s->stream_id = stream_id;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->profile = *profile;
    s->is_dynamic = is_dynamic;
    /* Driver spec 10: a restarted driver issues epochs above any it issued before. */
    if (regions_create(d, s, stream_max_epoch_on_disk(d, stream_id) + 1, &s->regions) < 0)
    {
        return NULL;
    }
    d->stream_count++;
    d->is_status_dirty = true;
    TP_LOG_I("driver", "stream %" PRIu32 " (%s) provisioned at epoch %" PRIu64 " in %s", stream_id, s->name,
        s->regions.epoch, s->regions.epoch_dir);
    return s;
}

int tp_driver_stream_bump_epoch(tp_driver_t *d, tp_driver_stream_t *s)
{
    tp_driver_regions_t next;
    if (regions_create(d, s, s->regions.epoch + 1, &next) < 0)
    {
        return -1;
    }
    regions_close(&s->regions);
    s->regions = next;
    d->counters.epochs_bumped++;
    d->is_status_dirty = true;
    TP_LOG_I("driver", "stream %" PRIu32 " moved to epoch %" PRIu64, s->stream_id, s->regions.epoch);
    if (d->config.epoch_gc_enabled)
    {
        tp_driver_stream_gc(d, s, false);
    }
    return 0;
}

void tp_driver_stream_release(tp_driver_stream_t *s)
{
    regions_close(&s->regions);
}

bool tp_driver_stream_is_damaged(const tp_driver_stream_t *s)
{
    bool is_damaged = tp_shm_region_is_damaged(&s->regions.header);
    for (uint32_t k = 0; k < s->profile.pool_count && !is_damaged; k++)
    {
        is_damaged = tp_shm_region_is_damaged(&s->regions.pools[k]);
    }
    return is_damaged;
}

void tp_driver_streams_touch(tp_driver_t *d, uint64_t now_ns)
{
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        tp_driver_regions_t *r = &d->streams[i].regions;
        if (r->header.base != NULL)
        {
            tp_superblock_set_activity(r->header.base, now_ns);
        }
        for (uint32_t k = 0; k < d->streams[i].profile.pool_count; k++)
        {
            if (r->pools[k].base != NULL)
            {
                tp_superblock_set_activity(r->pools[k].base, now_ns);
            }
        }
    }
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* Epoch directories of one stream directory, newest first. */
static size_t list_epochs(const char *stream_dir, uint64_t *epochs, size_t capacity)
{
    DIR *dp = opendir(stream_dir);
    if (dp == NULL)
    {
        return 0;
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL && n < capacity)
    {
        uint64_t v = 0;
        if (tp_shm_layout_parse_number(e->d_name, &v) == 0)
        {
            epochs[n++] = v;
        }
    }
    closedir(dp);
    qsort(epochs, n, sizeof(epochs[0]), cmp_u64_desc);
    return n;
}

/* Remove the epochs of stream_dir below current beyond the newest `keep`, old enough and mapped by nobody. */
static int gc_stream_dir(tp_driver_t *d, const char *stream_dir, uint64_t current, bool is_startup)
{
    uint64_t epochs[256];
    size_t n = list_epochs(stream_dir, epochs, sizeof(epochs) / sizeof(epochs[0]));
    int removed = 0;
    for (size_t i = 0; i < n; i++)
    {
        if (epochs[i] >= current || i < d->config.epoch_gc_keep)
        {
            continue;
        }
        char epoch_dir[TP_PATH_MAX + 32];
        snprintf(epoch_dir, sizeof(epoch_dir), "%s/%" PRIu64, stream_dir, epochs[i]);
        struct stat st;
        if (lstat(epoch_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        {
            continue;
        }
        int64_t age_ns = tp_clock_realtime_ns() - ((int64_t)st.st_mtim.tv_sec * TP_NS_PER_S + st.st_mtim.tv_nsec);
        if (!is_startup && age_ns < (int64_t)d->config.epoch_gc_min_age_ns)
        {
            continue;
        }
        if (tp_proc_dir_is_mapped(epoch_dir))
        {
            TP_LOG_D("driver", "epoch GC keeps %s: a live process maps it", epoch_dir);
            continue;
        }
        if (tp_fs_remove_tree_below(d->config.base_dir, epoch_dir) == 0)
        {
            removed++;
            d->counters.epoch_dirs_removed++;
            d->is_status_dirty = true;
            TP_LOG_I("driver", "epoch GC removed %s", epoch_dir);
        }
    }
    return removed;
}

int tp_driver_stream_gc(tp_driver_t *d, const tp_driver_stream_t *s, bool is_startup)
{
    char dir[TP_PATH_MAX];
    if (tp_shm_layout_stream_dir(dir, sizeof(dir), d->config.base_dir, d->config.name_space, s->stream_id) < 0)
    {
        return 0;
    }
    return gc_stream_dir(d, dir, s->regions.epoch, is_startup);
}

int tp_driver_gc_sweep(tp_driver_t *d)
{
    int removed = 0;
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        removed += tp_driver_stream_gc(d, &d->streams[i], false);
    }
    return removed;
}

int tp_driver_gc_stale_streams(tp_driver_t *d)
{
    char ns_dir[TP_PATH_MAX];
    if (tp_shm_layout_namespace_dir(ns_dir, sizeof(ns_dir), d->config.base_dir, d->config.name_space) < 0)
    {
        return 0;
    }
    DIR *dp = opendir(ns_dir);
    if (dp == NULL)
    {
        return 0;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
    {
        uint64_t id = 0;
        if (tp_shm_layout_parse_number(e->d_name, &id) < 0 || id > UINT32_MAX ||
            tp_driver_stream_find(d, (uint32_t)id) != NULL)
        {
            continue;
        }
        /* A stream this driver does not serve (a dynamic stream of an earlier run): keep its newest epochs, so
         * that its epochs still only grow if it comes back. */
        char stream_dir[TP_PATH_MAX + 300];
        snprintf(stream_dir, sizeof(stream_dir), "%s/%s", ns_dir, e->d_name);
        removed += gc_stream_dir(d, stream_dir, UINT64_MAX, true);
    }
    closedir(dp);
    return removed;
}

int tp_driver_announce(tp_driver_t *d, const tp_driver_stream_t *s)
{
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_wire_shm_pool_announce_set_stream_id(&e, s->stream_id);
    /* Driver spec 8: producerId is the attached producer's clientId, or 0. */
    tp_wire_shm_pool_announce_set_producer_id(&e, s->producer_lease_id != 0 ? s->producer_client_id : 0);
    tp_wire_shm_pool_announce_set_epoch(&e, s->regions.epoch);
    tp_wire_shm_pool_announce_set_announce_timestamp_ns(&e, (uint64_t)d->now_ns);
    tp_wire_shm_pool_announce_set_announce_clock_domain(&e, TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    tp_wire_shm_pool_announce_set_layout_version(&e, TP_LAYOUT_VERSION);
    tp_wire_shm_pool_announce_set_header_nslots(&e, s->profile.header_nslots);
    tp_wire_shm_pool_announce_set_header_slot_bytes(&e, TP_HEADER_SLOT_BYTES);
    tp_wire_shm_pool_announce_payload_pools_enc_t pools;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &pools, (uint16_t)s->profile.pool_count);
    for (uint32_t i = 0; i < s->profile.pool_count; i++)
    {
        tp_wire_shm_pool_announce_payload_pools_enc_next(&pools);
        tp_wire_shm_pool_announce_payload_pools_set_pool_id(&pools, s->profile.pools[i].pool_id);
        tp_wire_shm_pool_announce_payload_pools_set_pool_nslots(&pools, s->profile.header_nslots);
        tp_wire_shm_pool_announce_payload_pools_set_stride_bytes(&pools, s->profile.pools[i].stride_bytes);
        tp_wire_shm_pool_announce_payload_pools_put_region_uri(&pools, s->regions.pool_uris[i],
            strlen(s->regions.pool_uris[i]));
    }
    tp_wire_shm_pool_announce_put_header_region_uri(&e, s->regions.header_uri, strlen(s->regions.header_uri));
    int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
    if (n > 0 && d->discovery != NULL)
    {
        tp_discovery_provider_on_message(d->discovery, 0, d->scratch, (size_t)n, d->now_ns); /* our own index */
    }
    if (n < 0 || tp_driver_publish(d, d->announce_pub, d->scratch, n) < 0)
    {
        return -1;
    }
    d->counters.announces++;
    return 0;
}
