/* The driver's life: context, init (lock, bus, static streams), the duty cycle, shutdown and close. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "discovery/tp_discovery_provider.h"
#include "driver/tp_driver_consumers.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_leases.h"
#include "driver/tp_driver_liveness.h"
#include "driver/tp_driver_lock.h"
#include "driver/tp_driver_send.h"
#include "driver/tp_driver_status.h"
#include "driver/tp_driver_streams.h"
#include "driver/tp_driver_supervisor.h"
#include "shm/tp_shm_layout.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

#define DRIVER_CONFIG_MAX_BYTES (4u << 20)
#define DRIVER_FRAGMENT_LIMIT 64
#define DRIVER_STATUS_PERIOD_NS (1000 * TP_NS_PER_MS)
#define DRIVER_STATUS_MIN_GAP_NS (50 * TP_NS_PER_MS)

/* ---- context ---- */

int tp_driver_context_init(tp_driver_context_t **out)
{
    *out = NULL;
    tp_driver_context_t *ctx = NULL;
    if (tp_driver_config_field_count > TP_DRIVER_CONTEXT_MAX_FIELDS)
    {
        TP_SET_ERR(TP_E_STATE, "driver context: %zu configuration keys, room for %d", tp_driver_config_field_count,
            TP_DRIVER_CONTEXT_MAX_FIELDS);
        return -1;
    }
    if (tp_alloc((void **)&ctx, sizeof(*ctx)) < 0)
    {
        return -1;
    }
    tp_config_report_t report;
    tp_config_report_init(&report, "<environment>");
    tp_driver_config_read(&ctx->config, NULL, &report, ctx->is_set);
    int rc = report.error_count == 0 ? 0 : -1;
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "%s", tp_strbuf_cstr(&report.errors));
    }
    tp_config_report_fini(&report);
    if (rc < 0)
    {
        tp_free(ctx);
        return -1;
    }
    *out = ctx;
    return 0;
}

int tp_driver_context_close(tp_driver_context_t *ctx)
{
    tp_free(ctx);
    return 0;
}

int tp_driver_context_load_file(tp_driver_context_t *ctx, const char *path)
{
    uint8_t *text = NULL;
    size_t length = 0;
    if (tp_fs_read_file(path, DRIVER_CONFIG_MAX_BYTES, &text, &length) < 0)
    {
        return -1;
    }
    tp_toml_value_t *doc = NULL;
    int rc = tp_toml_parse(&doc, (const char *)text, length, path);
    tp_free(text);
    if (rc < 0)
    {
        return -1;
    }
    tp_config_report_t report;
    tp_config_report_init(&report, path);
    tp_driver_config_read(&ctx->config, doc, &report, ctx->is_set);
    tp_toml_free(doc);
    if (report.warning_count > 0)
    {
        TP_LOG_W("driver", "%s", tp_strbuf_cstr(&report.warnings));
    }
    rc = report.error_count == 0 ? 0 : -1;
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "%zu error(s) in %s:\n%s", report.error_count, path,
            tp_strbuf_cstr(&report.errors));
    }
    ctx->is_loaded = rc == 0;
    snprintf(ctx->source, sizeof(ctx->source), "%s", path); /* errors found later name the file */
    tp_config_report_fini(&report);
    return rc;
}

int tp_driver_context_set_clock(tp_driver_context_t *ctx, tp_clock_fn_t clock, void *clientd)
{
    ctx->clock = (tp_clock_t){ .fn = clock, .clientd = clientd };
    return 0;
}

int tp_driver_context_set(tp_driver_context_t *ctx, const char *key, const char *value)
{
    int i = tp_driver_config_field_find(key);
    if (i < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "unknown driver setting '%s' (see docs/CONFIG.md)", key);
        return -1;
    }
    const char *why = NULL;
    if (tp_config_parse_text(&tp_driver_config_fields[i], &ctx->config, value, &why) < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "%s = '%s': %s", key, value, why != NULL ? why : "invalid value");
        return -1;
    }
    ctx->is_set[i] = true;
    return 0;
}

int tp_driver_context_add_profile(tp_driver_context_t *ctx, const char *name, uint32_t header_nslots,
    const uint16_t *pool_ids, const uint32_t *stride_bytes, uint32_t pool_count)
{
    tp_driver_config_t *c = &ctx->config;
    if (c->profile_count == TP_DRIVER_MAX_PROFILES || pool_count > TP_DRIVER_MAX_POOLS ||
        strlen(name) >= TP_DRIVER_NAME_MAX)
    {
        TP_SET_ERR(TP_E_CAPACITY, "profile '%s': at most %d profiles of %d pools, names under %d bytes", name,
            TP_DRIVER_MAX_PROFILES, TP_DRIVER_MAX_POOLS, TP_DRIVER_NAME_MAX);
        return -1;
    }
    tp_driver_profile_config_t *p = &c->profiles[c->profile_count++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->header_nslots = header_nslots;
    p->pool_count = pool_count;
    for (uint32_t i = 0; i < pool_count; i++)
    {
        p->pools[i].pool_id = pool_ids[i];
        p->pools[i].stride_bytes = stride_bytes[i];
    }
    return 0;
}

int tp_driver_context_add_stream(tp_driver_context_t *ctx, const char *name, uint32_t stream_id,
    const char *profile)
{
    tp_driver_config_t *c = &ctx->config;
    if (c->stream_count == TP_DRIVER_MAX_STREAMS || strlen(name) >= TP_DRIVER_NAME_MAX ||
        strlen(profile) >= TP_DRIVER_NAME_MAX)
    {
        TP_SET_ERR(TP_E_CAPACITY, "stream '%s': at most %d streams, names under %d bytes", name,
            TP_DRIVER_MAX_STREAMS, TP_DRIVER_NAME_MAX);
        return -1;
    }
    tp_driver_stream_config_t *s = &c->streams[c->stream_count++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->profile, sizeof(s->profile), "%s", profile);
    s->stream_id = stream_id;
    return 0;
}

/* ---- init ---- */

/* Take an exclusive flock on path for the driver's life (the pid is written into it for messages). */
static int lock_file(const char *path, const char *what, int *out_fd)
{
    if (tp_driver_lock_is_ours(path))
    {
        /* Another driver of this process: opening (and closing) the file would drop that driver's record lock. */
        TP_SET_ERR(TP_E_STATE, "another driver (pid %d, this process) already serves %s (lock %s)", (int)getpid(),
            what, path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644); /* readable: clients ask who holds it */
    if (fd < 0)
    {
        TP_SET_ERR(errno, "cannot open the driver lock '%s': %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
    {
        char holder[32] = "";
        ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        TP_SET_ERR(TP_E_STATE, "another driver (pid %s) already serves %s (lock %s)", holder[0] != '\0' ? holder : "?",
            what, path);
        close(fd);
        return -1;
    }
    /* Also a POSIX record lock: unlike flock, F_GETLK tells another process who holds it, which is how clients
     * recognise the driver's bus images (tp_driver_proxy.c) among everyone who can write the control stream. */
    struct flock record = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_SETLK, &record) < 0)
    {
        TP_LOG_W("driver", "could not take the record lock on %s: %s (clients will not trust our notices)", path,
            strerror(errno));
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
    {
        TP_LOG_W("driver", "could not write the pid into %s: %s", path, strerror(errno));
    }
    tp_driver_lock_remember(fd); /* so that clients in this process never open (and close) it */
    *out_fd = fd;
    return 0;
}

/* Driver spec 2.1: one authoritative driver per stream. Two locks, held for the driver's life: one per control
 * stream and bus directory (the clients' rendezvous), one per SHM namespace (the regions). The lock files stay
 * after exit: unlinking them could let two drivers lock different inodes of one name. */
static int take_locks(tp_driver_t *d)
{
    char what[TP_PATH_MAX + 64];
    snprintf(d->lock_path, sizeof(d->lock_path), "%s/driver-%" PRIu32 ".lock", tp_bus_dir(d->bus),
        d->config.control_stream_id);
    snprintf(what, sizeof(what), "control stream %" PRIu32 " in %s", d->config.control_stream_id,
        tp_bus_dir(d->bus));
    if (lock_file(d->lock_path, what, &d->lock_fd) < 0)
    {
        return -1;
    }
    char ns_dir[TP_PATH_MAX];
    char ns_lock[TP_PATH_MAX + 16];
    const tp_driver_config_t *c = &d->config;
    if (tp_shm_layout_make_namespace_dir(ns_dir, sizeof(ns_dir), c->base_dir, c->name_space,
            tp_driver_config_dir_mode(c), tp_driver_config_gid(c)) < 0)
    {
        return -1;
    }
    snprintf(ns_lock, sizeof(ns_lock), "%s/driver.lock", ns_dir);
    snprintf(what, sizeof(what), "SHM namespace '%s' under %s", c->name_space, c->base_dir);
    return lock_file(ns_lock, what, &d->ns_lock_fd);
}

/* The base directory must exist, be one of the allowed base directories, and decide the page policy. */
static int check_base_dir(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    if (realpath(c->base_dir, d->base_dir_canonical) == NULL)
    {
        TP_SET_ERR(errno, "shm.base_dir '%s': %s", c->base_dir, strerror(errno));
        return -1;
    }
    bool is_allowed = false;
    for (size_t i = 0; i < c->allowed_base_dirs.count; i++)
    {
        char allowed[TP_PATH_MAX];
        if (realpath(c->allowed_base_dirs.items[i], allowed) != NULL && strcmp(allowed, d->base_dir_canonical) == 0)
        {
            is_allowed = true;
        }
    }
    if (!is_allowed)
    {
        TP_SET_ERR(TP_E_CONTAINMENT, "shm.base_dir '%s' is not one of shm.allowed_base_dirs", c->base_dir);
        return -1;
    }
    struct statfs sfs;
    if (statfs(d->base_dir_canonical, &sfs) < 0)
    {
        TP_SET_ERR(errno, "statfs '%s': %s", d->base_dir_canonical, strerror(errno));
        return -1;
    }
    d->is_base_hugetlbfs = (unsigned long)sfs.f_type == (unsigned long)HUGETLBFS_MAGIC;
    if (c->require_hugepages && !d->is_base_hugetlbfs)
    {
        TP_SET_ERR(TP_E_UNSUPPORTED, "shm.require_hugepages is set but shm.base_dir '%s' is not a hugetlbfs mount",
            c->base_dir);
        return -1;
    }
    return 0;
}

/* Announces on the control stream share its publication, so a ShmLeaseRevoked and the epoch-bumped announce
 * that follows it arrive in that order (driver spec 4.9). */
static int open_announce_publication(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    if (strcmp(c->announce_channel, c->control_channel) == 0 && c->announce_stream_id == c->control_stream_id)
    {
        d->announce_pub = d->control_pub;
        return 0;
    }
    return tp_bus_publication_open_with(&d->announce_pub, d->bus, c->announce_channel,
        (int32_t)c->announce_stream_id, TP_BUS_PUB_SERVICE);
}

/* The embedded discovery provider (discovery spec 4): this driver's streams, from its own announces and the
 * metadata stream, answered on discovery.channel / discovery.stream_id. */
static int open_discovery(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    if (!c->discovery_enabled)
    {
        return 0;
    }
    tp_discovery_driver_t me;
    memset(&me, 0, sizeof(me));
    snprintf(me.instance_id, sizeof(me.instance_id), "%s", c->instance_id);
    snprintf(me.control_channel, sizeof(me.control_channel), "%s", c->control_channel);
    me.control_stream_id = c->control_stream_id;
    if (tp_discovery_provider_open(&d->discovery, d->bus, c->discovery_channel, c->discovery_stream_id,
            3 * (int64_t)c->announce_period_ms * TP_NS_PER_MS, 0) < 0 ||
        tp_discovery_provider_add_driver(d->discovery, &me) < 0 ||
        tp_bus_subscription_open(&d->discovery_metadata_sub, d->bus, c->metadata_channel,
            (int32_t)c->metadata_stream_id, NULL, NULL, NULL) < 0)
    {
        TP_APPEND_ERR("starting the embedded discovery provider");
        return -1;
    }
    for (uint32_t i = 0; i < c->stream_count; i++)
    {
        if (tp_discovery_provider_set_defaults(d->discovery, 0, c->streams[i].stream_id, c->streams[i].name,
                c->streams[i].tags) < 0)
        {
            return -1;
        }
    }
    return 0;
}

static void on_discovery_metadata(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_driver_t *d = clientd;
    tp_discovery_provider_on_message(d->discovery, 0, buffer, length, d->now_ns);
}

static int discovery_do_work(tp_driver_t *d)
{
    if (d->discovery == NULL)
    {
        return 0;
    }
    int work = tp_bus_poll(d->discovery_metadata_sub, on_discovery_metadata, d, 64);
    work = work > 0 ? work : 0;
    return work + tp_discovery_provider_poll(d->discovery, d->now_ns);
}

static int open_bus(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    uint32_t file_mode = c->permissions_mode;
    const char *bus_dir = c->bus_dir[0] != '\0' ? c->bus_dir : NULL;
    int opened = c->group[0] != '\0'
        ? tp_bus_init_shared(&d->bus, bus_dir, c->group, tp_driver_config_dir_mode(c), file_mode)
        : tp_bus_init_with_modes(&d->bus, bus_dir, tp_driver_config_dir_mode(c), file_mode);
    if (opened < 0)
    {
        return -1;
    }
    if (take_locks(d) < 0)
    {
        return -1;
    }
    if (tp_bus_subscription_open(&d->control_sub, d->bus, c->control_channel, (int32_t)c->control_stream_id, NULL,
            NULL, NULL) < 0 ||
        tp_bus_publication_open_with(&d->control_pub, d->bus, c->control_channel, (int32_t)c->control_stream_id,
            TP_BUS_PUB_SERVICE) < 0 ||
        open_announce_publication(d) < 0 || tp_driver_supervisor_open(d) < 0 || open_discovery(d) < 0)
    {
        TP_APPEND_ERR("opening the driver's control and announce streams");
        return -1;
    }
    return 0;
}

static int provision_static_streams(tp_driver_t *d)
{
    const tp_driver_config_t *c = &d->config;
    for (uint32_t i = 0; i < c->stream_count; i++)
    {
        const tp_driver_stream_config_t *sc = &c->streams[i];
        const tp_driver_profile_config_t *p = tp_driver_config_profile(c, sc->profile);
        tp_driver_stream_t *s = p != NULL ? tp_driver_stream_add(d, sc->stream_id, sc->name, p, false) : NULL;
        if (s == NULL)
        {
            TP_APPEND_ERR("provisioning stream '%s' (%" PRIu32 ")", sc->name, sc->stream_id);
            return -1;
        }
        if (c->epoch_gc_enabled && c->epoch_gc_on_startup)
        {
            tp_driver_stream_gc(d, s, true);
        }
    }
    return 0;
}

int tp_driver_init(tp_driver_t **out, const tp_driver_context_t *ctx)
{
    *out = NULL;
    tp_driver_t *d = NULL;
    if (tp_alloc((void **)&d, sizeof(*d)) < 0)
    {
        return -1;
    }
    d->lock_fd = -1;
    d->ns_lock_fd = -1;
    d->config = ctx->config;
    tp_config_report_t report;
    tp_config_report_init(&report, ctx->is_loaded ? ctx->source : "<settings>");
    int rc = tp_driver_config_finish(&d->config, ctx->is_set, &report);
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "invalid driver configuration:\n%s", tp_strbuf_cstr(&report.errors));
    }
    tp_config_report_fini(&report);
    if (rc < 0 || check_base_dir(d) < 0 ||
        tp_alloc((void **)&d->streams, sizeof(d->streams[0]) * TP_DRIVER_MAX_LIVE_STREAMS) < 0 ||
        tp_alloc((void **)&d->leases, sizeof(d->leases[0]) * TP_DRIVER_MAX_LEASES) < 0 ||
        tp_alloc((void **)&d->scratch, TP_DRIVER_SCRATCH_BYTES) < 0 || open_bus(d) < 0)
    {
        goto error;
    }
    tp_driver_status_path(d->status_path, sizeof(d->status_path), tp_bus_dir(d->bus), d->config.control_stream_id);
    /* Lease ids start at a random point so that a lease id of an earlier driver instance is unlikely to name a
     * lease of this one (driver spec 4.8: ids are local to one driver instance). */
    d->next_lease_id = ((uint64_t)(tp_random_u32() & 0x7fffffffu) << 24) + 1;
    d->next_node_id = 1;
    d->clock = ctx->clock;
    d->start_ns = tp_clock_now(&d->clock);
    d->now_ns = d->start_ns;
    if (provision_static_streams(d) < 0)
    {
        goto error;
    }
    if (d->config.epoch_gc_enabled && d->config.epoch_gc_on_startup)
    {
        tp_driver_gc_stale_streams(d);
    }
    d->next_announce_ns = d->now_ns;
    d->is_status_dirty = true;
    TP_LOG_I("driver", "serving control stream %s/%" PRIu32 ", announces on %s/%" PRIu32 ", %" PRIu32
        " static stream(s), regions under %s", d->config.control_channel, d->config.control_stream_id,
        d->config.announce_channel, d->config.announce_stream_id, d->stream_count, d->base_dir_canonical);
    *out = d;
    return 0;
error:
    TP_APPEND_ERR("starting the driver");
    d->has_sent_shutdown = true; /* nobody was told it started */
    tp_driver_close(d);
    return -1;
}

static void publish_shutdown(tp_driver_t *d, uint8_t reason, const char *message)
{
    tp_driver_shm_driver_shutdown_enc_t e;
    tp_driver_shm_driver_shutdown_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_driver_shm_driver_shutdown_set_timestamp_ns(&e, (uint64_t)tp_clock_now(&d->clock));
    tp_driver_shm_driver_shutdown_set_reason(&e, reason);
    tp_driver_shm_driver_shutdown_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_driver_shutdown_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_publish(d, d->control_pub, d->scratch, n);
        if (d->announce_pub != d->control_pub)
        {
            /* Announce listeners (a discovery registry) learn that the next epochs are a new driver's. */
            tp_driver_publish(d, d->announce_pub, d->scratch, n);
        }
    }
    d->has_sent_shutdown = true;
    TP_LOG_I("driver", "published ShmDriverShutdown (%s)", tp_driver_shutdown_reason_name(reason));
}

static void announce_all(tp_driver_t *d)
{
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        tp_driver_announce(d, &d->streams[i]);
    }
}

/* ---- control messages ---- */

/* Constant-time comparison so the token cannot be guessed byte by byte from response timing. */
static bool token_matches(const char *expected, const uint8_t *given, size_t given_length)
{
    size_t n = strlen(expected);
    if (n == 0 || given_length != n)
    {
        return false;
    }
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
    {
        diff |= (uint8_t)((uint8_t)expected[i] ^ given[i]);
    }
    return diff == 0;
}

static void on_shutdown_request(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_driver_shutdown_request_t m;
    if (tp_driver_shm_driver_shutdown_request_decode(&m, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        return;
    }
    tp_sbe_bytes_t token = tp_driver_shm_driver_shutdown_request_token(&m);
    uint8_t reason = tp_driver_shm_driver_shutdown_request_reason(&m);
    if (!token_matches(d->config.shutdown_token, token.data, token.length) ||
        !tp_driver_shutdown_reason_is_valid(reason))
    {
        d->counters.shutdown_requests_refused++;
        d->is_status_dirty = true;
        TP_LOG_W("driver", "ignored a shutdown request (correlation %" PRId64 "): %s",
            tp_driver_shm_driver_shutdown_request_correlation_id(&m),
            d->config.shutdown_token[0] == '\0' ? "no policies.shutdown_token is configured"
            : !tp_driver_shutdown_reason_is_valid(reason) ? "unknown reason"
                                                           : "wrong token");
        return;
    }
    if (d->is_draining)
    {
        return;
    }
    d->is_draining = true;
    d->shutdown_reason = reason;
    d->drain_deadline_ns = d->now_ns + (int64_t)d->config.shutdown_timeout_ms * TP_NS_PER_MS;
    d->is_status_dirty = true;
    TP_LOG_I("driver", "shutdown requested (%s): draining for %" PRIu32 " ms", tp_driver_shutdown_reason_name(reason),
        d->config.shutdown_timeout_ms);
    announce_all(d); /* the final announce */
}

static void on_control_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    tp_driver_t *d = clientd;
    if (header->session_id == tp_bus_publication_session_id(d->control_pub))
    {
        return; /* our own responses and notices */
    }
    d->message_session_id = header->session_id;
    tp_driver_on_message(d, buffer, length);
    d->message_session_id = 0;
}

void tp_driver_on_message(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        return;
    }
    if (h.schema_id == TP_WIRE_SCHEMA_ID && h.template_id == TP_WIRE_CONSUMER_HELLO_TEMPLATE_ID)
    {
        if (h.version > TP_WIRE_SCHEMA_VERSION)
        {
            d->counters.newer_version_messages++;
            return;
        }
        tp_driver_on_consumer_hello(d, buffer, length);
        tp_driver_supervisor_on_hello(d, buffer, length);
        return;
    }
    if (h.schema_id != TP_DRIVER_SCHEMA_ID)
    {
        d->counters.other_schema_messages++; /* e.g. wire-schema messages of producers sharing the control stream */
        return;
    }
    if (h.version > TP_DRIVER_SCHEMA_VERSION)
    {
        d->counters.newer_version_messages++;
        if (h.template_id == TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID)
        {
            tp_driver_on_attach_unsupported_version(d, buffer, length, h.version);
        }
        return;
    }
    switch (h.template_id)
    {
    case TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID: tp_driver_on_attach(d, buffer, length); break;
    case TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID: tp_driver_on_detach(d, buffer, length); break;
    case TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID: tp_driver_on_keepalive(d, buffer, length); break;
    case TP_DRIVER_SHM_DRIVER_SHUTDOWN_REQUEST_TEMPLATE_ID: on_shutdown_request(d, buffer, length); break;
    case TP_DRIVER_SHM_ATTACH_RESPONSE_TEMPLATE_ID:
    case TP_DRIVER_SHM_DETACH_RESPONSE_TEMPLATE_ID:
    case TP_DRIVER_SHM_LEASE_REVOKED_TEMPLATE_ID:
    case TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID:
        d->counters.other_driver_messages++; /* another driver's output on a shared stream */
        break;
    default: d->counters.unknown_messages++; break;
    }
}

/* ---- duty cycle ---- */

/* One duty cycle at now_ns, the time every timer of this cycle compares with (read once, passed down). */
static int driver_do_work_at(tp_driver_t *d, int64_t now_ns)
{
    if (d->is_shutdown)
    {
        return 0;
    }
    d->now_ns = now_ns;
    int work = tp_bus_poll(d->control_sub, on_control_message, d, DRIVER_FRAGMENT_LIMIT);
    if (work < 0)
    {
        return -1;
    }
    work += tp_driver_revoke_queued(d);
    /* UDP control or announce channels need servicing (retransmits, heartbeats); IPC ones return at once. */
    work += tp_bus_publication_do_work(d->control_pub) + tp_bus_publication_do_work(d->announce_pub);
    work += tp_driver_liveness_check(d);
    work += tp_driver_supervisor_do_work(d);
    work += discovery_do_work(d);
    if (d->now_ns >= d->next_expiry_check_ns)
    {
        work += tp_driver_expire_leases(d);
        int64_t period = (int64_t)d->config.lease_keepalive_interval_ms * TP_NS_PER_MS / 4;
        d->next_expiry_check_ns = d->now_ns + (period > TP_NS_PER_MS ? period : TP_NS_PER_MS);
    }
    if (d->now_ns >= d->next_announce_ns)
    {
        work += tp_driver_retire_damaged(d);
        tp_driver_streams_touch(d, (uint64_t)d->now_ns); /* the clock of the superblock timestamps */
        announce_all(d);
        d->next_announce_ns = d->now_ns + (int64_t)d->config.announce_period_ms * TP_NS_PER_MS;
        work++;
    }
    if (d->config.epoch_gc_enabled && d->config.epoch_gc_interval_ms != 0 && d->now_ns >= d->next_gc_sweep_ns)
    {
        if (d->next_gc_sweep_ns != 0)
        {
            work += tp_driver_gc_sweep(d);
        }
        d->next_gc_sweep_ns = d->now_ns + (int64_t)d->config.epoch_gc_interval_ms * TP_NS_PER_MS;
    }
    if (d->is_draining && d->now_ns >= d->drain_deadline_ns)
    {
        publish_shutdown(d, d->shutdown_reason, "shutdown requested");
        tp_store_release_bool(&d->is_shutdown, true);
        d->is_status_dirty = true;
        work++;
    }
    /* The status file: once a second, and at most 50 ms after a change (at most 20 writes a second). */
    int64_t since_write = d->now_ns - d->last_status_ns;
    if (since_write >= DRIVER_STATUS_PERIOD_NS || (d->is_status_dirty && since_write >= DRIVER_STATUS_MIN_GAP_NS))
    {
        tp_driver_status_write(d);
        d->is_status_dirty = false;
        d->last_status_ns = d->now_ns;
    }
    return work;
}

int tp_driver_do_work(tp_driver_t *d)
{
    return driver_do_work_at(d, tp_clock_now(&d->clock));
}

static int driver_agent_work(void *state, int64_t now_ns)
{
    tp_driver_t *d = state;
    /* The runner read CLOCK_MONOTONIC for this cycle; a driver given its own clock keeps to it. */
    return driver_do_work_at(d, d->clock.fn != NULL ? tp_clock_now(&d->clock) : now_ns);
}

static int driver_park(void *clientd, int64_t timeout_ns)
{
    tp_driver_t *d = clientd;
    /* Never sleep past the next timer. */
    int64_t until = d->next_announce_ns < d->next_expiry_check_ns ? d->next_announce_ns : d->next_expiry_check_ns;
    int64_t left = until - tp_clock_now(&d->clock);
    if (left < timeout_ns)
    {
        timeout_ns = left > 0 ? left : 0;
    }
    return timeout_ns > 0 ? tp_bus_subscription_park(d->control_sub, timeout_ns) : 0;
}

int tp_driver_start(tp_driver_t *d)
{
    if (d->runner != NULL)
    {
        TP_SET_ERR(TP_E_STATE, "the driver already runs on its own thread");
        return -1;
    }
    tp_agent_t agent = { .name = "tp-driver", .do_work = driver_agent_work, .on_close = NULL, .state = d };
    tp_idle_strategy_t idle;
    tp_idle_backoff(&idle, 10, 5, 10 * TP_NS_PER_US, 10 * TP_NS_PER_MS);
    tp_idle_set_park(&idle, driver_park, d);
    if (tp_agent_runner_init(&d->runner, &agent, &idle) < 0)
    {
        return -1;
    }
    if (tp_agent_runner_start(d->runner) < 0)
    {
        tp_agent_runner_close(d->runner);
        d->runner = NULL;
        return -1;
    }
    return 0;
}

int tp_driver_stop(tp_driver_t *d)
{
    if (d->runner == NULL)
    {
        return 0;
    }
    int rc = tp_agent_runner_close(d->runner);
    d->runner = NULL;
    return rc;
}

bool tp_driver_is_shutdown(const tp_driver_t *d)
{
    return tp_load_acquire_bool(&d->is_shutdown); /* may be asked from another thread */
}

int tp_driver_run(tp_driver_t *d, const int *stop)
{
    tp_agent_t agent = { .name = "tp-driver", .do_work = driver_agent_work, .on_close = NULL, .state = d };
    tp_idle_strategy_t idle;
    tp_idle_backoff(&idle, 10, 5, 10 * TP_NS_PER_US, 10 * TP_NS_PER_MS);
    tp_idle_set_park(&idle, driver_park, d);
    /* Stop when asked, or once an authorised shutdown request has drained. */
    while (!tp_load_acquire_int(stop) && !d->is_shutdown)
    {
        int work = tp_agent_invoke(&agent);
        if (work < 0)
        {
            return -1;
        }
        tp_idle(&idle, work);
    }
    return 0;
}

/* policies.cleanup_shm_on_exit: every region file goes, but the last epoch's directory stays, empty, so that the
 * next driver's epochs still start above it (driver spec 14: deleting the files does not suspend the epoch rules). */
static void cleanup_regions(tp_driver_t *d)
{
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        char dir[TP_PATH_MAX], epoch_dir[TP_PATH_MAX];
        const tp_driver_stream_t *s = &d->streams[i];
        if (tp_shm_layout_stream_dir(dir, sizeof(dir), d->config.base_dir, d->config.name_space, s->stream_id) == 0 &&
            tp_shm_layout_epoch_dir(epoch_dir, sizeof(epoch_dir), d->config.base_dir, d->config.name_space,
                s->stream_id, s->regions.epoch) == 0)
        {
            tp_fs_remove_tree_below(d->config.base_dir, dir);
            tp_fs_mkdirs(d->config.base_dir, epoch_dir, tp_driver_config_dir_mode(&d->config));
        }
    }
}

int tp_driver_close(tp_driver_t *d)
{
    if (d == NULL)
    {
        return 0;
    }
    tp_driver_stop(d);
    if (d->control_pub != NULL && !d->has_sent_shutdown)
    {
        publish_shutdown(d, TP_DRIVER_SHUTDOWN_REASON_NORMAL, "driver closed");
    }
    for (uint32_t i = 0; d->streams != NULL && i < d->stream_count; i++)
    {
        tp_driver_stream_release(&d->streams[i]);
    }
    tp_driver_liveness_close(d);
    if (d->config.cleanup_shm_on_exit && d->streams != NULL)
    {
        cleanup_regions(d);
    }
    if (d->status_path[0] != '\0')
    {
        unlink(d->status_path);
    }
    tp_driver_supervisor_close(d);
    tp_bus_subscription_close(d->discovery_metadata_sub);
    tp_discovery_provider_close(d->discovery);
    tp_bus_subscription_reap(d->control_sub); /* leave no log of an exited client behind (nor its entries) */
    tp_bus_subscription_close(d->control_sub);
    tp_bus_publication_close(d->control_pub);
    if (d->announce_pub != d->control_pub)
    {
        tp_bus_publication_close(d->announce_pub);
    }
    if (d->lock_fd >= 0)
    {
        tp_driver_lock_forget(d->lock_fd);
        close(d->lock_fd);
    }
    if (d->ns_lock_fd >= 0)
    {
        tp_driver_lock_forget(d->ns_lock_fd);
        close(d->ns_lock_fd);
    }
    tp_bus_close(d->bus);
    tp_free(d->streams);
    tp_free(d->leases);
    tp_free(d->scratch);
    tp_free(d);
    return 0;
}
