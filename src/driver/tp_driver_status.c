/*
 * The driver's status file: one JSON document in the bus directory (driver-<control stream id>.json) that
 * `tp driver status|streams|leases` and any other tool read without talking to the driver. Rewritten atomically
 * (temporary file + rename) once a second and shortly after every change; removed on close. A reader checks the
 * pid it names is alive, so a file left by a killed driver reads as stale, never as a running driver.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "core/tp_strbuf.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_status.h"
#include "shm/tp_shm_layout.h"
#include "tp_sbe_driver.h"

void tp_driver_status_path(char *out, size_t capacity, const char *bus_dir, uint32_t control_stream_id)
{
    snprintf(out, capacity, "%s/driver-%" PRIu32 ".json", bus_dir, control_stream_id);
}

static void json_key_string(tp_strbuf_t *b, const char *key, const char *value)
{
    tp_strbuf_printf(b, "\"%s\":", key);
    tp_strbuf_json_string(b, value, strlen(value));
}

static void status_counters(tp_strbuf_t *b, const tp_driver_counters_t *c)
{
    tp_strbuf_printf(b,
        "\"counters\":{\"attaches_ok\":%" PRIu64 ",\"attaches_rejected\":%" PRIu64 ",\"detaches\":%" PRIu64
        ",\"keepalives\":%" PRIu64 ",\"keepalives_ignored\":%" PRIu64 ",\"leases_expired\":%" PRIu64
        ",\"leases_revoked\":%" PRIu64
        ",\"announces\":%" PRIu64 ",\"epochs_bumped\":%" PRIu64 ",\"unknown_messages\":%" PRIu64
        ",\"newer_version_messages\":%" PRIu64 ",\"other_schema_messages\":%" PRIu64
        ",\"other_driver_messages\":%" PRIu64 ",\"malformed_messages\":%" PRIu64 ",\"publish_failures\":%" PRIu64
        ",\"shutdown_requests_refused\":%" PRIu64 ",\"epoch_dirs_removed\":%" PRIu64 ",\"consumer_configs\":%" PRIu64
        ",\"consumer_hellos_ignored\":%" PRIu64 ",\"epochs_damaged\":%" PRIu64 ",\"leases_dead_process\":%" PRIu64 "}",
        c->attaches_ok, c->attaches_rejected, c->detaches, c->keepalives, c->keepalives_ignored, c->leases_expired,
        c->leases_revoked,
        c->announces, c->epochs_bumped, c->unknown_messages, c->newer_version_messages, c->other_schema_messages,
        c->other_driver_messages, c->malformed_messages, c->publish_failures, c->shutdown_requests_refused,
        c->epoch_dirs_removed, c->consumer_configs, c->consumer_hellos_ignored, c->epochs_damaged,
        c->leases_dead_process);
}

static void status_streams(tp_strbuf_t *b, const tp_driver_t *d)
{
    tp_strbuf_puts(b, "\"streams\":[");
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        const tp_driver_stream_t *s = &d->streams[i];
        tp_strbuf_printf(b, "%s{\"stream_id\":%" PRIu32 ",", i > 0 ? "," : "", s->stream_id);
        json_key_string(b, "name", s->name);
        tp_strbuf_putc(b, ',');
        json_key_string(b, "profile", s->profile.name);
        tp_strbuf_printf(b, ",\"dynamic\":%s,\"epoch\":%" PRIu64 ",\"header_nslots\":%" PRIu32
            ",\"pools\":%" PRIu32 ",\"producer_lease_id\":%" PRIu64 ",\"producer_client_id\":%" PRIu32
            ",\"consumers\":%" PRIu32 ",", s->is_dynamic ? "true" : "false", s->regions.epoch,
            s->profile.header_nslots, s->profile.pool_count, s->producer_lease_id, s->producer_client_id,
            s->consumer_count);
        json_key_string(b, "epoch_dir", s->regions.epoch_dir);
        tp_strbuf_putc(b, '}');
    }
    tp_strbuf_puts(b, "]");
}

static void status_leases(tp_strbuf_t *b, const tp_driver_t *d)
{
    tp_strbuf_puts(b, "\"leases\":[");
    bool first = true;
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        const tp_driver_lease_t *l = &d->leases[i];
        if (!l->is_active)
        {
            continue;
        }
        tp_strbuf_printf(b,
            "%s{\"lease_id\":%" PRIu64 ",\"stream_id\":%" PRIu32 ",\"client_id\":%" PRIu32 ",\"role\":\"%s\""
            ",\"node_id\":%" PRIu32 ",\"age_ms\":%" PRId64 ",\"last_keepalive_ms\":%" PRId64
            ",\"expires_in_ms\":%" PRId64 ",\"descriptor_stream_id\":%" PRIu32 ",\"control_stream_id\":%" PRIu32 "}",
            first ? "" : ",", l->lease_id, l->stream_id, l->client_id, tp_driver_role_name(l->role), l->node_id,
            (int64_t)((d->now_ns - l->attached_ns) / TP_NS_PER_MS),
            (int64_t)((d->now_ns - l->keepalive_ns) / TP_NS_PER_MS),
            (int64_t)((l->expiry_ns - d->now_ns) / TP_NS_PER_MS), l->descriptor_stream_id, l->control_stream_id);
        first = false;
    }
    tp_strbuf_puts(b, "]");
}

/* The supervisor's view: every producer and consumer it heard of, and the rules it applied. */
static void status_supervisor(tp_strbuf_t *b, const tp_driver_t *d)
{
    const tp_driver_supervisor_t *s = d->supervisor;
    if (s == NULL)
    {
        return;
    }
    tp_strbuf_printf(b, ",\"supervisor\":{\"rules\":%" PRIu32 ",\"configs_sent\":%" PRIu64 ",\"parties\":[",
        d->config.supervisor_rule_count, s->configs_sent);
    bool first = true;
    for (uint32_t i = 0; i < TP_DRIVER_SUPERVISOR_MAX_PARTIES; i++)
    {
        const tp_driver_supervisor_party_t *p = &s->parties[i];
        if (!p->in_use)
        {
            continue;
        }
        tp_strbuf_printf(b,
            "%s{\"role\":\"%s\",\"stream_id\":%" PRIu32 ",\"id\":%" PRIu32 ",\"stale\":%s,\"last_seen_ms\":%" PRId64
            ",\"mode\":%u,\"max_rate_hz\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"drops_gap\":%" PRIu64
            ",\"drops_late\":%" PRIu64 ",\"hellos\":%" PRIu64 ",\"qos_reports\":%" PRIu64 ",\"rule\":%d}",
            first ? "" : ",", p->is_consumer ? "CONSUMER" : "PRODUCER", p->stream_id, p->id,
            p->is_stale ? "true" : "false", (int64_t)((d->now_ns - p->last_seen_ns) / TP_NS_PER_MS), p->mode,
            p->max_rate_hz, p->seq, p->drops_gap, p->drops_late, p->hellos, p->qos_reports, p->rule);
        first = false;
    }
    tp_strbuf_puts(b, "]}");
}

/* Allocated bytes of every file below dirfd (the namespace: streams, then epochs, then regions; nothing deeper,
 * no symlink followed); epoch directories counted at depth 1. */
static void tree_usage(int dirfd, int depth, uint64_t *bytes, uint64_t *epoch_dirs)
{
    DIR *dir = fdopendir(dirfd);
    if (dir == NULL)
    {
        close(dirfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
    {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
            continue;
        }
        if (S_ISREG(st.st_mode))
        {
            *bytes += (uint64_t)st.st_blocks * 512u;
        }
        else if (S_ISDIR(st.st_mode) && depth < 2)
        {
            *epoch_dirs += depth == 1 ? 1u : 0u;
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
            {
                tree_usage(sub, depth + 1, bytes, epoch_dirs);
            }
        }
    }
    closedir(dir);
}

/* The shared memory this driver's namespace holds (every epoch directory, old ones too) and what its filesystem
 * has left: what `tp driver status` and `tp top` report as /dev/shm use. */
static void status_shm(tp_strbuf_t *b, const tp_driver_t *d)
{
    uint64_t bytes = 0;
    uint64_t epoch_dirs = 0;
    char ns[TP_PATH_MAX];
    if (tp_shm_layout_namespace_dir(ns, sizeof(ns), d->config.base_dir, d->config.name_space) == 0)
    {
        int fd = open(ns, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
        {
            tree_usage(fd, 0, &bytes, &epoch_dirs);
        }
    }
    struct statvfs fs;
    uint64_t size = 0;
    uint64_t avail = 0;
    if (statvfs(d->base_dir_canonical, &fs) == 0)
    {
        size = (uint64_t)fs.f_blocks * fs.f_frsize;
        avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    }
    tp_strbuf_printf(b, ",\"shm\":{\"namespace_bytes\":%" PRIu64 ",\"epoch_dirs\":%" PRIu64 ",\"fs_size_bytes\":%" PRIu64
        ",\"fs_available_bytes\":%" PRIu64 "}", bytes, epoch_dirs, size, avail);
}

int tp_driver_status_write(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    tp_strbuf_printf(&b, "{\"format\":1,\"pid\":%d,", (int)getpid());
    json_key_string(&b, "instance_id", c->instance_id);
    tp_strbuf_putc(&b, ',');
    json_key_string(&b, "state", d->is_shutdown ? "shutdown" : d->is_draining ? "draining" : "running");
    tp_strbuf_printf(&b, ",\"uptime_ms\":%" PRId64 ",\"written_realtime_ns\":%" PRId64 ",",
        (int64_t)((d->now_ns - d->start_ns) / TP_NS_PER_MS), tp_clock_realtime_ns());
    json_key_string(&b, "control_channel", c->control_channel);
    tp_strbuf_printf(&b, ",\"control_stream_id\":%" PRIu32 ",", c->control_stream_id);
    json_key_string(&b, "announce_channel", c->announce_channel);
    tp_strbuf_printf(&b, ",\"announce_stream_id\":%" PRIu32 ",", c->announce_stream_id);
    json_key_string(&b, "base_dir", d->base_dir_canonical);
    tp_strbuf_putc(&b, ',');
    json_key_string(&b, "namespace", c->name_space);
    tp_strbuf_printf(&b, ",\"announce_period_ms\":%" PRIu32 ",\"lease_keepalive_interval_ms\":%" PRIu32
        ",\"lease_expiry_grace_intervals\":%" PRIu32 ",", c->announce_period_ms, c->lease_keepalive_interval_ms,
        c->lease_expiry_grace_intervals);
    status_counters(&b, &d->counters);
    tp_strbuf_putc(&b, ',');
    status_streams(&b, d);
    tp_strbuf_putc(&b, ',');
    status_leases(&b, d);
    status_supervisor(&b, d);
    status_shm(&b, d);
    tp_strbuf_puts(&b, "}\n");

    char tmp[TP_PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->status_path);
    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0)
    {
        const char *text = tp_strbuf_cstr(&b);
        size_t length = strlen(text);
        rc = write(fd, text, length) == (ssize_t)length ? 0 : -1;
        close(fd);
        if (rc == 0 && rename(tmp, d->status_path) < 0)
        {
            rc = -1;
        }
    }
    if (rc < 0)
    {
        TP_SET_ERR(errno, "writing the status file %s: %s", d->status_path, strerror(errno));
        TP_LOG_D("driver", "%s", tp_errmsg());
        unlink(tmp);
    }
    tp_strbuf_fini(&b);
    return rc;
}
