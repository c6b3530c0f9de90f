/* The client: context, connection, and leases with their mapped regions. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "shm/tp_region_uri.h"
#include "tensorpool/tp_bus.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

#define C tp_client_config_t
const tp_config_field_t tp_client_config_fields[] = {
    TP_CFG_FIELD(C, bus_dir, "client.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "bus directory; empty: $TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus"),
    TP_CFG_FIELD(C, control_channel, "client.control_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0,
        false, "the driver's control channel"),
    TP_CFG_FIELD(C, control_stream_id, "client.control_stream_id", TP_CFG_U32, "1000", 1, INT32_MAX, false,
        "the driver's control stream"),
    TP_CFG_FIELD(C, announce_channel, "client.announce_channel", TP_CFG_STRING, "", 0, 0, false,
        "channel of the driver's ShmPoolAnnounce; empty: client.control_channel"),
    TP_CFG_FIELD(C, announce_stream_id, "client.announce_stream_id", TP_CFG_U32, "0", 0, INT32_MAX, false,
        "stream of the driver's ShmPoolAnnounce; 0: client.control_stream_id"),
    TP_CFG_FIELD(C, announce_period_ms, "client.announce_period_ms", TP_CFG_U32, "1000", 10, 3600000, false,
        "the driver's announce period: announces older than 3x this are ignored, and a region whose activity "
        "timestamp is older than 3x this is taken for dead"),
    TP_CFG_FIELD(C, metadata_channel, "client.metadata_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0,
        false, "channel of DataSourceAnnounce, DataSourceMeta and meta blobs"),
    TP_CFG_FIELD(C, metadata_stream_id, "client.metadata_stream_id", TP_CFG_U32, "1300", 1, INT32_MAX, false,
        "stream of the metadata messages"),
    TP_CFG_FIELD(C, metadata_period_ms, "client.metadata_period_ms", TP_CFG_U32, "1000", 10, 3600000, false,
        "DataSourceAnnounce and DataSourceMeta are repeated at this period (and sent at once on every change)"),
    TP_CFG_FIELD(C, qos_channel, "client.qos_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0, 0, false,
        "channel of QosProducer and QosConsumer"),
    TP_CFG_FIELD(C, qos_stream_id, "client.qos_stream_id", TP_CFG_U32, "1200", 1, INT32_MAX, false,
        "stream of the QoS messages"),
    TP_CFG_FIELD(C, qos_period_ms, "client.qos_period_ms", TP_CFG_U32, "1000", 10, 3600000, false,
        "producers send QosProducer and consumers QosConsumer at this period"),
    TP_CFG_FIELD(C, discovery_channel, "client.discovery_channel", TP_CFG_STRING, "aeron:ipc?term-length=1m", 0, 0,
        false, "channel of DiscoveryRequest (the driver's discovery.channel, or a registry's)"),
    TP_CFG_FIELD(C, discovery_stream_id, "client.discovery_stream_id", TP_CFG_U32, "7000", 1, INT32_MAX, false,
        "stream of DiscoveryRequest"),
    TP_CFG_FIELD(C, discovery_response_channel, "client.discovery_response_channel", TP_CFG_STRING,
        "aeron:ipc?term-length=1m", 0, 0, false, "where DiscoveryResponse should come back"),
    TP_CFG_FIELD(C, discovery_response_stream_id, "client.discovery_response_stream_id", TP_CFG_U32, "7004", 1,
        INT32_MAX, false, "stream of DiscoveryResponse"),
    TP_CFG_FIELD(C, descriptor_channel, "client.descriptor_channel", TP_CFG_STRING, TP_BUS_DEFAULT_CHANNEL, 0,
        0, false, "channel of FrameDescriptor"),
    TP_CFG_FIELD(C, descriptor_stream_id, "client.descriptor_stream_id", TP_CFG_U32, "1100", 1, INT32_MAX, false,
        "stream of FrameDescriptor (shared by every data stream; descriptors carry their stream id)"),
    TP_CFG_FIELD(C, allowed_base_dirs, "client.allowed_base_dirs", TP_CFG_STRING_LIST, "/dev/shm", 0, 0, false,
        "directories the regions must lie in (containment, wire spec 15.21a)"),
    TP_CFG_FIELD(C, client_id, "client.client_id", TP_CFG_U32, "0", 0, UINT32_MAX - 1, false,
        "first client id (0: random); each lease takes the next"),
    TP_CFG_FIELD(C, keepalive_interval_ms, "client.keepalive_interval_ms", TP_CFG_U32, "1000", 10, 60000, false,
        "lease keepalive period (also at most a third of the lease the driver grants)"),
    TP_CFG_FIELD(C, mlock_shm, "client.mlock_shm", TP_CFG_BOOL, "false", 0, 0, false,
        "mlock the regions this client maps; a failed mlock fails the attach"),
};
#undef C
const size_t tp_client_config_field_count = sizeof(tp_client_config_fields) / sizeof(tp_client_config_fields[0]);

int tp_client_context_init(tp_client_context_t **out)
{
    *out = NULL;
    tp_client_context_t *ctx = NULL;
    if (tp_alloc((void **)&ctx, sizeof(*ctx)) < 0)
    {
        return -1;
    }
    tp_config_apply_defaults(tp_client_config_fields, tp_client_config_field_count, &ctx->config);
    tp_config_report_t report;
    tp_config_report_init(&report, "<environment>");
    tp_config_apply_env(tp_client_config_fields, tp_client_config_field_count, &ctx->config, &report, NULL);
    int rc = report.error_count == 0 ? 0 : -1;
    if (report.warning_count > 0)
    {
        TP_LOG_W("client", "%s", tp_strbuf_cstr(&report.warnings));
    }
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "%s", tp_strbuf_cstr(&report.errors));
        tp_free(ctx);
        ctx = NULL;
    }
    tp_config_report_fini(&report);
    *out = ctx;
    return rc;
}

int tp_client_context_set_clock(tp_client_context_t *ctx, tp_clock_fn_t clock, void *clientd)
{
    ctx->clock = (tp_clock_t){ .fn = clock, .clientd = clientd };
    return 0;
}

int tp_client_context_set(tp_client_context_t *ctx, const char *key, const char *value)
{
    for (size_t i = 0; i < tp_client_config_field_count; i++)
    {
        if (strcmp(tp_client_config_fields[i].key, key) == 0)
        {
            const char *why = NULL;
            if (tp_config_parse_text(&tp_client_config_fields[i], &ctx->config, value, &why) < 0)
            {
                TP_SET_ERR(TP_E_CONFIG, "%s = '%s': %s", key, value, why != NULL ? why : "invalid value");
                return -1;
            }
            return 0;
        }
    }
    TP_SET_ERR(TP_E_CONFIG, "unknown client setting '%s'", key);
    return -1;
}

int tp_client_context_close(tp_client_context_t *ctx)
{
    tp_free(ctx);
    return 0;
}

/* Wire spec 10.1.1: an announce counts only if fresh (within the window of local receipt time) and, in the
 * MONOTONIC domain, stamped after our subscription joined. REALTIME_SYNCED announces get the window only. */
static bool announce_is_fresh(const tp_client_t *c, const tp_control_event_t *e)
{
    int64_t stamp = (int64_t)e->announce_timestamp_ns;
    int64_t now;
    if (e->clock_domain == TP_WIRE_CLOCK_DOMAIN_MONOTONIC)
    {
        now = tp_client_now(c);
        if (stamp < c->join_time_ns)
        {
            return false;
        }
    }
    else if (e->clock_domain == TP_WIRE_CLOCK_DOMAIN_REALTIME_SYNCED)
    {
        now = tp_clock_realtime_ns();
    }
    else
    {
        return false; /* an unknown clock domain: no way to judge freshness */
    }
    return stamp <= now + c->freshness_ns && now - stamp <= c->freshness_ns;
}

static void remember_announce(tp_client_t *c, const tp_control_event_t *e, int64_t now_ns)
{
    tp_announced_t *slot = &c->announced[0];
    for (int i = 0; i < TP_CLIENT_ANNOUNCED_MAX; i++)
    {
        tp_announced_t *a = &c->announced[i];
        if (a->stream_id == e->stream_id)
        {
            slot = a;
            break;
        }
        slot = a->heard_ns < slot->heard_ns ? a : slot;
    }
    if (slot->stream_id == e->stream_id && e->epoch < slot->epoch)
    {
        return; /* the highest epoch stands */
    }
    slot->stream_id = e->stream_id;
    slot->epoch = e->epoch;
    slot->layout_version = e->layout_version;
    slot->header_nslots = e->header_nslots;
    slot->heard_ns = now_ns;
}

bool tp_client_is_attaching(const tp_client_t *c, uint32_t stream_id, uint8_t role)
{
    for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
    {
        const tp_client_lease_t *l = c->leases[i];
        if (l != NULL && l->state == TP_LEASE_ATTACHING && l->stream_id == stream_id && l->role == role)
        {
            return true;
        }
    }
    return false;
}

const tp_announced_t *tp_client_announced(const tp_client_t *c, uint32_t stream_id)
{
    for (int i = 0; i < TP_CLIENT_ANNOUNCED_MAX; i++)
    {
        if (c->announced[i].stream_id == stream_id && stream_id != 0)
        {
            return &c->announced[i];
        }
    }
    return NULL;
}

/* Every event of the conductor goes to the leases it concerns, which act on it themselves: the answer to a
 * request to the lease that made it; a revocation, a shutdown or a fresh announce to every lease (each decides
 * whether it is its own); announces first through the freshness rules. Owners observe their stream's hellos,
 * consumer configs, revocations and progress. */
static void on_control_event(void *clientd, const tp_control_event_t *e)
{
    tp_client_t *c = clientd;
    int64_t now = tp_client_now(c);
    if (e->kind == TP_CONTROL_EVENT_ATTACH_RESPONSE || e->kind == TP_CONTROL_EVENT_DETACH_RESPONSE)
    {
        for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
        {
            tp_client_lease_t *l = c->leases[i];
            if (l != NULL && (e->correlation_id == l->attach_id || e->correlation_id == l->detach_id))
            {
                tp_client_lease_on_event(l, e, now);
                return;
            }
        }
        return;
    }
    bool is_fresh = e->kind == TP_CONTROL_EVENT_ANNOUNCE && announce_is_fresh(c, e);
    if (e->kind == TP_CONTROL_EVENT_ANNOUNCE && !is_fresh)
    {
        c->announces_ignored++;
        return;
    }
    if (is_fresh)
    {
        remember_announce(c, e, now);
    }
    bool is_ignored = false;
    for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
    {
        tp_client_lease_t *l = c->leases[i];
        if (l == NULL)
        {
            continue;
        }
        if (l->observer != NULL && e->stream_id == l->stream_id &&
            (e->kind == TP_CONTROL_EVENT_HELLO || e->kind == TP_CONTROL_EVENT_CONSUMER_CONFIG ||
                e->kind == TP_CONTROL_EVENT_REVOKED || e->kind == TP_CONTROL_EVENT_PROGRESS))
        {
            l->observer(l->owner, e);
        }
        if (e->kind == TP_CONTROL_EVENT_ANNOUNCE || e->kind == TP_CONTROL_EVENT_REVOKED ||
            e->kind == TP_CONTROL_EVENT_SHUTDOWN)
        {
            is_ignored |= !tp_client_lease_on_event(l, e, now);
        }
    }
    c->announces_ignored += is_ignored;
}

/* Announces on the control stream unless configured elsewhere; the join time starts the freshness rules. */
static int subscribe_announces(tp_client_t *c)
{
    const tp_client_config_t *k = &c->config;
    const char *channel = k->announce_channel[0] != '\0' ? k->announce_channel : k->control_channel;
    uint32_t stream = k->announce_stream_id != 0 ? k->announce_stream_id : k->control_stream_id;
    if ((strcmp(channel, k->control_channel) != 0 || stream != k->control_stream_id) &&
        tp_client_conductor_subscribe_announces(c->conductor, c->bus, channel, stream) < 0)
    {
        return -1;
    }
    c->join_time_ns = tp_client_now(c);
    c->freshness_ns = 3 * (int64_t)k->announce_period_ms * TP_NS_PER_MS;
    return 0;
}

int tp_client_connect(tp_client_t **out, const tp_client_context_t *ctx)
{
    *out = NULL;
    tp_client_t *c = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return -1;
    }
    c->config = ctx->config;
    c->clock = ctx->clock;
    const char *dirs[TP_CONFIG_LIST_MAX];
    for (size_t i = 0; i < c->config.allowed_base_dirs.count; i++)
    {
        dirs[i] = c->config.allowed_base_dirs.items[i];
    }
    c->next_client_id = c->config.client_id != 0 ? c->config.client_id : (tp_random_u32() >> 1) + 1;
    if (tp_shm_allowed_dirs_init(&c->allowed, dirs, c->config.allowed_base_dirs.count) < 0 ||
        tp_bus_init(&c->bus, c->config.bus_dir[0] != '\0' ? c->config.bus_dir : NULL) < 0 ||
        tp_client_conductor_open(&c->conductor, c->bus, c->config.control_channel, c->config.control_stream_id) < 0 ||
        subscribe_announces(c) < 0)
    {
        TP_APPEND_ERR("connecting to the driver on %s stream %" PRIu32, c->config.control_channel,
            c->config.control_stream_id);
        tp_client_free(c);
        return -1;
    }
    tp_client_conductor_set_handler(c->conductor, on_control_event, c);
    tp_client_conductor_set_clock(c->conductor, c->clock.fn, c->clock.clientd);
    *out = c;
    return 0;
}

void tp_client_free(tp_client_t *c)
{
    tp_client_conductor_close(c->conductor);
    tp_bus_close(c->bus);
    tp_shm_allowed_dirs_fini(&c->allowed);
    tp_free(c);
}

void tp_client_retain(tp_client_t *c)
{
    c->open_handles++;
}

void tp_client_release(tp_client_t *c)
{
    c->open_handles--;
    if (c->is_closing && c->open_handles == 0)
    {
        tp_client_free(c); /* the client was closed first */
    }
}

int tp_client_close(tp_client_t *c)
{
    if (c == NULL)
    {
        return 0;
    }
    if (c->open_handles > 0)
    {
        c->is_closing = true; /* freed when its last producer or consumer is closed */
        return 0;
    }
    tp_client_free(c);
    return 0;
}
