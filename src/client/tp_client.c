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
#include "tp_sbe_driver.h"

#define C tp_client_config_t
static const tp_config_field_t client_fields[] = {
    TP_CFG_FIELD(C, bus_dir, "client.bus_dir", TP_CFG_STRING, "", 0, 0, false,
        "bus directory; empty: $TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus"),
    TP_CFG_FIELD(C, control_channel, "client.control_channel", TP_CFG_STRING, "aeron:ipc?term-length=4m", 0, 0,
        false, "the driver's control channel"),
    TP_CFG_FIELD(C, control_stream_id, "client.control_stream_id", TP_CFG_U32, "1000", 1, INT32_MAX, false,
        "the driver's control stream"),
    TP_CFG_FIELD(C, descriptor_channel, "client.descriptor_channel", TP_CFG_STRING, "aeron:ipc?term-length=4m", 0,
        0, false, "channel of FrameDescriptor"),
    TP_CFG_FIELD(C, descriptor_stream_id, "client.descriptor_stream_id", TP_CFG_U32, "1100", 1, INT32_MAX, false,
        "stream of FrameDescriptor (shared by every data stream; descriptors carry their stream id)"),
    TP_CFG_FIELD(C, allowed_base_dirs, "client.allowed_base_dirs", TP_CFG_STRING_LIST, "/dev/shm", 0, 0, false,
        "directories the regions must lie in (containment, wire spec 15.21a)"),
    TP_CFG_FIELD(C, client_id, "client.client_id", TP_CFG_U32, "0", 0, UINT32_MAX - 1, false,
        "first client id (0: random); each lease takes the next"),
    TP_CFG_FIELD(C, keepalive_interval_ms, "client.keepalive_interval_ms", TP_CFG_U32, "1000", 10, 60000, false,
        "lease keepalive period (also at most a third of the lease the driver grants)"),
};
#undef C
static const size_t client_field_count = sizeof(client_fields) / sizeof(client_fields[0]);

int tp_client_context_init(tp_client_context_t **out)
{
    *out = NULL;
    tp_client_context_t *ctx = NULL;
    if (tp_alloc((void **)&ctx, sizeof(*ctx)) < 0)
    {
        return -1;
    }
    tp_config_apply_defaults(client_fields, client_field_count, &ctx->config);
    tp_config_report_t report;
    tp_config_report_init(&report, "<environment>");
    tp_config_apply_env(client_fields, client_field_count, &ctx->config, &report, NULL);
    int rc = report.error_count == 0 ? 0 : -1;
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

int tp_client_context_set(tp_client_context_t *ctx, const char *key, const char *value)
{
    for (size_t i = 0; i < client_field_count; i++)
    {
        if (strcmp(client_fields[i].key, key) == 0)
        {
            const char *why = NULL;
            if (tp_config_parse_text(&client_fields[i], &ctx->config, value, &why) < 0)
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

static void on_notice(void *clientd, const tp_proxy_event_t *e);

int tp_client_connect(tp_client_t **out, const tp_client_context_t *ctx)
{
    *out = NULL;
    tp_client_t *c = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return -1;
    }
    c->config = ctx->config;
    const char *dirs[TP_CONFIG_LIST_MAX];
    for (size_t i = 0; i < c->config.allowed_base_dirs.count; i++)
    {
        dirs[i] = c->config.allowed_base_dirs.items[i];
    }
    c->next_client_id = c->config.client_id != 0 ? c->config.client_id : (tp_random_u32() >> 1) + 1;
    if (tp_shm_allowed_dirs_init(&c->allowed, dirs, c->config.allowed_base_dirs.count) < 0 ||
        tp_bus_init(&c->bus, c->config.bus_dir[0] != '\0' ? c->config.bus_dir : NULL) < 0 ||
        tp_driver_proxy_open(&c->proxy, c->bus, c->config.control_channel, c->config.control_stream_id) < 0)
    {
        TP_APPEND_ERR("connecting to the driver on %s stream %" PRIu32, c->config.control_channel,
            c->config.control_stream_id);
        tp_client_close(c);
        return -1;
    }
    tp_driver_proxy_set_notice_handler(c->proxy, on_notice, c);
    *out = c;
    return 0;
}

int tp_client_close(tp_client_t *c)
{
    if (c == NULL)
    {
        return 0;
    }
    if (c->open_handles > 0)
    {
        TP_SET_ERR(TP_E_STATE, "%" PRIu32 " producer(s) or consumer(s) of this client are still open",
            c->open_handles);
        return -1;
    }
    tp_driver_proxy_close(c->proxy);
    tp_bus_close(c->bus);
    tp_shm_allowed_dirs_fini(&c->allowed);
    tp_free(c);
    return 0;
}

/* ---- leases ---- */

/* A response the client must refuse even with code OK (driver spec 4.2, 4.7a): nulls, empty URIs, wrong sizes. */
static int check_response(const tp_attach_result_t *r)
{
    if (!r->has_lease_id || !r->has_stream_id || !r->has_epoch || !r->has_layout_version || !r->has_header_nslots ||
        !r->has_header_slot_bytes)
    {
        TP_SET_ERR(TP_E_MALFORMED, "attach response OK with a required field null");
        return -1;
    }
    if (r->header_slot_bytes != TP_HEADER_SLOT_BYTES || r->pool_count == 0 || r->header_region_uri[0] == '\0' ||
        r->layout_version != TP_LAYOUT_VERSION)
    {
        TP_SET_ERR(TP_E_MALFORMED, "attach response OK but headerSlotBytes %u, %" PRIu32 " pools, layout %" PRIu32,
            r->header_slot_bytes, r->pool_count, r->layout_version);
        return -1;
    }
    for (uint32_t i = 0; i < r->pool_count; i++)
    {
        if (r->pools[i].pool_nslots != r->header_nslots || r->pools[i].region_uri[0] == '\0')
        {
            TP_SET_ERR(TP_E_MALFORMED, "attach response OK but pool %u has %" PRIu32 " slots (header %" PRIu32
                ") or no URI", r->pools[i].pool_id, r->pools[i].pool_nslots, r->header_nslots);
            return -1;
        }
    }
    return 0;
}

static int map_one(tp_client_lease_t *l, tp_shm_region_t *region, const char *uri_text,
    const tp_superblock_t *expected, bool writable)
{
    tp_region_uri_t uri;
    if (tp_region_uri_parse(&uri, uri_text, strlen(uri_text)) < 0 ||
        tp_shm_region_map(region, &l->client->allowed, &uri, expected, writable) < 0)
    {
        TP_APPEND_ERR("mapping %s", uri_text);
        return -1;
    }
    return 0;
}

static int lease_map(tp_client_lease_t *l, const tp_attach_result_t *r)
{
    bool writable = l->role == TP_DRIVER_ROLE_PRODUCER;
    tp_superblock_t expected = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION,
        .epoch = r->epoch, .stream_id = r->stream_id, .region_type = TP_REGION_HEADER_RING, .pool_id = 0,
        .nslots = r->header_nslots, .slot_bytes = TP_HEADER_SLOT_BYTES, .stride_bytes = 0 };
    if (map_one(l, &l->header, r->header_region_uri, &expected, writable) < 0)
    {
        return -1;
    }
    if (r->pool_count > TP_CLIENT_MAX_POOLS)
    {
        TP_SET_ERR(TP_E_CAPACITY, "%" PRIu32 " pools; this client maps at most %d", r->pool_count,
            TP_CLIENT_MAX_POOLS);
        return -1;
    }
    for (uint32_t i = 0; i < r->pool_count; i++)
    {
        const tp_attach_pool_t *p = &r->pools[i];
        tp_superblock_t pe = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION, .epoch = r->epoch,
            .stream_id = r->stream_id, .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = p->pool_id,
            .nslots = p->pool_nslots, .slot_bytes = p->stride_bytes, .stride_bytes = p->stride_bytes };
        if (map_one(l, &l->pools[i], p->region_uri, &pe, writable) < 0)
        {
            return -1;
        }
        l->pool_ids[i] = p->pool_id;
        l->strides[i] = p->stride_bytes;
        l->pool_count = i + 1;
    }
    return 0;
}

static void lease_unmap(tp_client_lease_t *l)
{
    tp_shm_region_close(&l->header);
    for (uint32_t i = 0; i < TP_CLIENT_MAX_POOLS; i++)
    {
        tp_shm_region_close(&l->pools[i]);
    }
    l->pool_count = 0;
}

/* Drop the driver's notices on the leases they concern: a revocation of the lease, or the driver's shutdown
 * (every lease is gone). The lease is unmapped by its owner's next tick. */
static void on_notice(void *clientd, const tp_proxy_event_t *e)
{
    tp_client_t *c = clientd;
    for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
    {
        tp_client_lease_t *l = c->leases[i];
        if (l == NULL || !l->is_valid)
        {
            continue;
        }
        if ((e->kind == TP_PROXY_EVENT_REVOKED && e->lease_id == l->lease_id) || e->kind == TP_PROXY_EVENT_SHUTDOWN)
        {
            l->is_revoked = true;
        }
    }
}

/* Attach and map; on any failure nothing stays attached or mapped. */
static int lease_attach(tp_client_lease_t *l, int64_t timeout_ns)
{
    tp_client_t *client = l->client;
    tp_attach_params_t params = { .stream_id = l->stream_id, .client_id = l->client_id, .role = l->role,
        .expected_layout_version = TP_LAYOUT_VERSION, .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING,
        .require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED };
    tp_attach_result_t *r = NULL;
    if (tp_alloc((void **)&r, sizeof(*r)) < 0)
    {
        return -1;
    }
    int rc = -1;
    if (tp_driver_proxy_attach(client->proxy, &params, r, timeout_ns) < 0)
    {
        TP_APPEND_ERR("attaching to stream %" PRIu32, l->stream_id);
        goto done;
    }
    if (r->code != TP_DRIVER_RESPONSE_CODE_OK)
    {
        TP_SET_ERR(TP_E_REJECTED, "the driver refused the %s attach to stream %" PRIu32 " (%s): %s",
            tp_driver_role_name(l->role), l->stream_id, tp_driver_response_code_name(r->code), r->error_message);
        goto done;
    }
    l->lease_id = r->lease_id;
    l->epoch = r->epoch;
    l->nslots = r->header_nslots;
    if (check_response(r) < 0 || lease_map(l, r) < 0)
    {
        TP_APPEND_ERR("attaching to stream %" PRIu32, l->stream_id);
        int32_t code;
        tp_driver_proxy_detach(client->proxy, l->lease_id, l->stream_id, l->client_id, l->role, &code, NULL, 0,
            timeout_ns);
        lease_unmap(l);
        l->lease_id = 0;
        goto done;
    }
    /* Keepalives at the configured period, and at least three per lease the driver grants. */
    int64_t now = tp_clock_monotonic_ns();
    int64_t period = (int64_t)client->config.keepalive_interval_ms * TP_NS_PER_MS;
    if (r->has_lease_expiry && (int64_t)r->lease_expiry_ns > now && ((int64_t)r->lease_expiry_ns - now) / 3 < period)
    {
        period = ((int64_t)r->lease_expiry_ns - now) / 3;
    }
    l->keepalive_period_ns = period;
    l->next_keepalive_ns = now + period;
    l->is_valid = true;
    l->is_revoked = false;
    l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
    l->generation++;
    rc = 0;
done:
    tp_free(r);
    return rc;
}

/* Unmap; detach first if the lease is still ours (not revoked). */
static void lease_release(tp_client_lease_t *l, int64_t detach_timeout_ns)
{
    bool is_ours = l->is_valid && !l->is_revoked && l->lease_id != 0;
    if (l->is_revoked)
    {
        l->revocations++;
    }
    /* Invalid before detaching: the ShmLeaseRevoked our own detach causes is not a loss. */
    l->is_valid = false;
    l->is_revoked = false;
    if (is_ours)
    {
        int32_t code;
        if (tp_driver_proxy_detach(l->client->proxy, l->lease_id, l->stream_id, l->client_id, l->role, &code, NULL, 0,
                detach_timeout_ns) < 0)
        {
            TP_LOG_W("client", "detach of lease %" PRIu64 " got no answer: %s (the lease will expire)", l->lease_id,
                tp_errmsg());
        }
    }
    lease_unmap(l);
    l->lease_id = 0;
}

int tp_client_lease_open(tp_client_lease_t *l, tp_client_t *client, uint32_t stream_id, uint8_t role,
    int64_t timeout_ns)
{
    memset(l, 0, sizeof(*l));
    l->client = client;
    l->role = role;
    l->stream_id = stream_id;
    l->client_id = client->next_client_id++;
    int slot = -1;
    for (int i = 0; i < TP_CLIENT_MAX_LEASES && slot < 0; i++)
    {
        slot = client->leases[i] == NULL ? i : -1;
    }
    if (slot < 0)
    {
        TP_SET_ERR(TP_E_CAPACITY, "this client already holds %d leases", TP_CLIENT_MAX_LEASES);
        l->client = NULL;
        return -1;
    }
    if (lease_attach(l, timeout_ns) < 0)
    {
        l->client = NULL;
        return -1;
    }
    client->leases[slot] = l;
    l->is_counted = true;
    client->open_handles++;
    return 0;
}

int tp_client_lease_renew(tp_client_lease_t *l, int64_t now_ns)
{
    lease_release(l, TP_CLIENT_REATTACH_TIMEOUT_NS);
    if (lease_attach(l, TP_CLIENT_REATTACH_TIMEOUT_NS) < 0)
    {
        l->next_attempt_ns = now_ns + l->backoff_ns;
        l->backoff_ns = l->backoff_ns * 2 < TP_CLIENT_BACKOFF_MAX_NS ? l->backoff_ns * 2 : TP_CLIENT_BACKOFF_MAX_NS;
        return -1;
    }
    return 0;
}

int tp_client_lease_tick(tp_client_lease_t *l, int64_t now_ns)
{
    int work = tp_driver_proxy_poll(l->client->proxy); /* notices reach on_notice */
    work = work > 0 ? work : 0;
    if (l->is_revoked)
    {
        /* Driver spec 4.9, 4.13: stop using the regions at once, then attach again. */
        TP_LOG_I("client", "lease %" PRIu64 " of stream %" PRIu32 " is gone; attaching again", l->lease_id,
            l->stream_id);
        lease_release(l, 0);
        l->next_attempt_ns = now_ns;
        l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
        work++;
    }
    if (!l->is_valid)
    {
        if (now_ns >= l->next_attempt_ns)
        {
            tp_client_lease_renew(l, now_ns);
            work++;
        }
        return work;
    }
    if (now_ns >= l->next_keepalive_ns)
    {
        tp_driver_proxy_keepalive(l->client->proxy, l->lease_id, l->stream_id, l->client_id, l->role);
        l->next_keepalive_ns = now_ns + l->keepalive_period_ns;
        work++;
    }
    return work;
}

void tp_client_lease_close(tp_client_lease_t *l)
{
    if (l->client == NULL)
    {
        return;
    }
    lease_release(l, TP_NS_PER_S);
    for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
    {
        if (l->client->leases[i] == l)
        {
            l->client->leases[i] = NULL;
        }
    }
    if (l->is_counted)
    {
        l->client->open_handles--;
    }
    l->client = NULL;
}
