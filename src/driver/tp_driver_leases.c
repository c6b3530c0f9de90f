/*
 * Leases (driver spec 4): attach, detach, keepalive, expiry and revocation, with the exclusive-producer rule (5),
 * the epoch rules (6, 7) and the response codes of 4.6.
 *
 * Choices where the spec leaves room:
 *  - clientId is unique across all active leases (4.8): a second attach with the clientId of an active lease is
 *    REJECTED, unless it repeats the correlationId of the attach that created that lease, which is answered again
 *    with the same lease (a retry whose response was lost).
 *  - A missing publishMode means REQUIRE_EXISTING; an unknown one is UNSUPPORTED.
 *  - Dynamic streams: with EXISTING_OR_CREATE and policies.allow_dynamic_streams, streamId 0 asks for the lowest
 *    free id of driver.stream_id_range; a non-zero id must lie in that range.
 *  - A node id is assigned to every lease (the desired one if free), unique among active leases.
 *  - Detaching a lease that already ended answers OK (idempotent); an unknown lease id is REJECTED.
 *  - leaseExpiryTimestampNs is on CLOCK_MONOTONIC, the clock domain the announces name.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_leases.h"
#include "driver/tp_driver_liveness.h"
#include "driver/tp_driver_send.h"
#include "driver/tp_driver_streams.h"
#include "tensorpool/tp_trace.h"
#include "tp_sbe_driver.h"

typedef struct attach_request
{
    int64_t correlation_id;
    uint32_t stream_id;
    uint32_t client_id;
    uint8_t role;
    uint32_t expected_layout_version;
    uint8_t publish_mode;
    uint8_t require_hugepages;
    bool has_desired_node_id;
    uint32_t desired_node_id;
} attach_request_t;

static int64_t lease_duration_ns(const tp_driver_t *d)
{
    return (int64_t)d->config.lease_keepalive_interval_ms * d->config.lease_expiry_grace_intervals * TP_NS_PER_MS;
}

static tp_driver_lease_t *lease_find(tp_driver_t *d, uint64_t lease_id)
{
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        if (d->leases[i].lease_id == lease_id && lease_id != 0)
        {
            return &d->leases[i];
        }
    }
    return NULL;
}

static tp_driver_lease_t *lease_find_active_client(tp_driver_t *d, uint32_t client_id)
{
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        if (d->leases[i].is_active && d->leases[i].client_id == client_id)
        {
            return &d->leases[i];
        }
    }
    return NULL;
}

static bool node_id_is_taken(const tp_driver_t *d, uint32_t node_id)
{
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        if (d->leases[i].is_active && d->leases[i].node_id == node_id)
        {
            return true;
        }
    }
    return false;
}

/* Node ids go round-robin through [1, TP_TRACE_NODE_ID_MAX], the range a trace id can carry (tp_trace.h), so a
 * released id is handed out again only after every other one (TraceLink spec 6.2's cooldown). The table holds
 * fewer leases than ids, so a free one is always found. */
static uint32_t node_id_next_free(tp_driver_t *d)
{
    for (uint32_t tries = 0; tries < TP_TRACE_NODE_ID_MAX; tries++)
    {
        uint32_t id = d->next_node_id;
        d->next_node_id = id >= TP_TRACE_NODE_ID_MAX ? 1 : id + 1;
        if (id >= 1 && id <= TP_TRACE_NODE_ID_MAX && !node_id_is_taken(d, id))
        {
            return id;
        }
    }
    return 0; /* unreachable while TP_DRIVER_MAX_LEASES < TP_TRACE_NODE_ID_MAX */
}

_Static_assert(TP_DRIVER_MAX_LEASES < TP_TRACE_NODE_ID_MAX, "every lease must find a free node id");

/* A free table row: never used, or ended (ended leases keep their row until it is needed, so that a detach of
 * an ended lease is recognised). Prefers never-used rows. */
static tp_driver_lease_t *lease_slot(tp_driver_t *d)
{
    tp_driver_lease_t *ended = NULL;
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        tp_driver_lease_t *l = &d->leases[i];
        if (l->lease_id == 0)
        {
            return l;
        }
        if (!l->is_active && (ended == NULL || l->expiry_ns < ended->expiry_ns))
        {
            ended = l;
        }
    }
    return ended;
}

/* ---- responses ---- */

static void respond_attach_error(tp_driver_t *d, int64_t correlation_id, int32_t code, const char *fmt, ...)
    TP_PRINTF_LIKE(4, 5);

static void respond_attach_error(tp_driver_t *d, int64_t correlation_id, int32_t code, const char *fmt, ...)
{
    char message[TP_DRIVER_ERROR_MESSAGE_MAX + 1]; /* driver spec 4.2: at most 1024 bytes, truncated */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    tp_driver_shm_attach_response_enc_t e;
    tp_driver_shm_attach_response_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_driver_shm_attach_response_set_correlation_id(&e, correlation_id);
    tp_driver_shm_attach_response_set_code(&e, code);
    /* Driver spec 4.2: optional fields hold their null values when code != OK. */
    tp_driver_shm_attach_response_set_lease_id(&e, UINT64_MAX);
    tp_driver_shm_attach_response_set_lease_expiry_timestamp_ns(&e, UINT64_MAX);
    tp_driver_shm_attach_response_set_stream_id(&e, UINT32_MAX);
    tp_driver_shm_attach_response_set_epoch(&e, UINT64_MAX);
    tp_driver_shm_attach_response_set_layout_version(&e, UINT32_MAX);
    tp_driver_shm_attach_response_set_header_nslots(&e, UINT32_MAX);
    tp_driver_shm_attach_response_set_header_slot_bytes(&e, UINT16_MAX);
    tp_driver_shm_attach_response_set_node_id(&e, UINT32_MAX);
    tp_driver_shm_attach_response_payload_pools_enc_t pools;
    tp_driver_shm_attach_response_payload_pools_begin(&e, &pools, 0);
    tp_driver_shm_attach_response_payload_pools_end(&pools);
    tp_driver_shm_attach_response_put_header_region_uri(&e, "", 0);
    tp_driver_shm_attach_response_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_attach_response_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_publish(d, d->control_pub, d->scratch, n);
    }
    d->counters.attaches_rejected++;
    d->is_status_dirty = true;
    TP_LOG_I("driver", "attach %" PRId64 " refused (%s): %s", correlation_id, tp_driver_response_code_name(code),
        message);
}

static void respond_attach_ok(tp_driver_t *d, const tp_driver_lease_t *lease, const tp_driver_stream_t *s)
{
    tp_driver_shm_attach_response_enc_t e;
    tp_driver_shm_attach_response_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_driver_shm_attach_response_set_correlation_id(&e, lease->correlation_id);
    tp_driver_shm_attach_response_set_code(&e, TP_DRIVER_RESPONSE_CODE_OK);
    tp_driver_shm_attach_response_set_lease_id(&e, lease->lease_id);
    tp_driver_shm_attach_response_set_lease_expiry_timestamp_ns(&e, (uint64_t)lease->expiry_ns);
    tp_driver_shm_attach_response_set_stream_id(&e, s->stream_id);
    tp_driver_shm_attach_response_set_epoch(&e, s->regions.epoch);
    tp_driver_shm_attach_response_set_layout_version(&e, TP_LAYOUT_VERSION);
    tp_driver_shm_attach_response_set_header_nslots(&e, s->profile.header_nslots);
    tp_driver_shm_attach_response_set_header_slot_bytes(&e, TP_HEADER_SLOT_BYTES);
    tp_driver_shm_attach_response_set_node_id(&e, lease->node_id);
    tp_driver_shm_attach_response_payload_pools_enc_t pools;
    tp_driver_shm_attach_response_payload_pools_begin(&e, &pools, (uint16_t)s->profile.pool_count);
    for (uint32_t i = 0; i < s->profile.pool_count; i++)
    {
        tp_driver_shm_attach_response_payload_pools_enc_next(&pools);
        tp_driver_shm_attach_response_payload_pools_set_pool_id(&pools, s->profile.pools[i].pool_id);
        /* Driver spec 4.2: poolNslots equals headerNslots. */
        tp_driver_shm_attach_response_payload_pools_set_pool_nslots(&pools, s->profile.header_nslots);
        tp_driver_shm_attach_response_payload_pools_set_stride_bytes(&pools, s->profile.pools[i].stride_bytes);
        tp_driver_shm_attach_response_payload_pools_put_region_uri(&pools, s->regions.pool_uris[i],
            strlen(s->regions.pool_uris[i]));
    }
    tp_driver_shm_attach_response_payload_pools_end(&pools);
    tp_driver_shm_attach_response_put_header_region_uri(&e, s->regions.header_uri, strlen(s->regions.header_uri));
    tp_driver_shm_attach_response_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_attach_response_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_publish(d, d->control_pub, d->scratch, n);
    }
}

static void respond_detach(tp_driver_t *d, int64_t correlation_id, int32_t code, const char *message)
{
    tp_driver_shm_detach_response_enc_t e;
    tp_driver_shm_detach_response_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_driver_shm_detach_response_set_correlation_id(&e, correlation_id);
    tp_driver_shm_detach_response_set_code(&e, code);
    tp_driver_shm_detach_response_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_detach_response_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_publish(d, d->control_pub, d->scratch, n);
    }
}

/* ---- attach ---- */

void tp_driver_on_attach_unsupported_version(tp_driver_t *d, const uint8_t *buffer, size_t length, uint16_t version)
{
    if (length >= 8 + sizeof(int64_t))
    {
        int64_t correlation_id = tp_sbe_get_i64(buffer + 8);
        respond_attach_error(d, correlation_id, TP_DRIVER_RESPONSE_CODE_UNSUPPORTED,
            "ShmAttachRequest version %u is newer than this driver's schema version %u", version,
            TP_DRIVER_SCHEMA_VERSION);
    }
}

static int attach_request_read(tp_driver_t *d, const uint8_t *buffer, size_t length, attach_request_t *r)
{
    tp_driver_shm_attach_request_t m;
    if (tp_driver_shm_attach_request_decode(&m, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        if (length >= 8 + sizeof(int64_t))
        {
            respond_attach_error(d, tp_sbe_get_i64(buffer + 8), TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS,
                "malformed ShmAttachRequest: %s", tp_errmsg());
        }
        return -1;
    }
    r->correlation_id = tp_driver_shm_attach_request_correlation_id(&m);
    r->stream_id = tp_driver_shm_attach_request_stream_id(&m);
    r->client_id = tp_driver_shm_attach_request_client_id(&m);
    r->role = tp_driver_shm_attach_request_role(&m);
    r->expected_layout_version = tp_driver_shm_attach_request_expected_layout_version(&m);
    r->publish_mode = tp_driver_shm_attach_request_has_publish_mode(&m)
        ? tp_driver_shm_attach_request_publish_mode(&m)
        : TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING;
    r->require_hugepages = tp_driver_shm_attach_request_require_hugepages(&m);
    r->has_desired_node_id = tp_driver_shm_attach_request_has_desired_node_id(&m);
    r->desired_node_id = tp_driver_shm_attach_request_desired_node_id(&m);
    return 0;
}

/* The lowest id of driver.stream_id_range that no stream uses, or 0. */
static uint32_t dynamic_stream_id_free(tp_driver_t *d)
{
    const tp_config_range_t *range = &d->config.stream_id_range;
    for (uint64_t id = range->start; id <= range->end; id++)
    {
        if (tp_driver_stream_find(d, (uint32_t)id) == NULL)
        {
            return (uint32_t)id;
        }
    }
    return 0;
}

/* Find the stream, or create it under the dynamic-stream policy. On refusal answers and returns NULL. */
static tp_driver_stream_t *attach_stream(tp_driver_t *d, const attach_request_t *r, bool *is_new)
{
    *is_new = false;
    tp_driver_stream_t *s = r->stream_id != 0 ? tp_driver_stream_find(d, r->stream_id) : NULL;
    if (s != NULL)
    {
        return s;
    }
    if (r->publish_mode == TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "stream %" PRIu32 " is not provisioned (publishMode REQUIRE_EXISTING)", r->stream_id);
        return NULL;
    }
    const tp_driver_config_t *c = &d->config;
    if (!c->allow_dynamic_streams)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "stream %" PRIu32 " is not provisioned and policies.allow_dynamic_streams is false", r->stream_id);
        return NULL;
    }
    if (!c->stream_id_range.is_set || c->stream_id_range.start > c->stream_id_range.end)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS,
            "dynamic streams need driver.stream_id_range, which is not set");
        return NULL;
    }
    uint32_t id = r->stream_id;
    if (id == 0)
    {
        id = dynamic_stream_id_free(d);
        if (id == 0)
        {
            respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED,
                "driver.stream_id_range %" PRIu32 "-%" PRIu32 " is exhausted", c->stream_id_range.start,
                c->stream_id_range.end);
            return NULL;
        }
    }
    else if (!tp_config_range_contains(&c->stream_id_range, id))
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS,
            "stream %" PRIu32 " is outside driver.stream_id_range %" PRIu32 "-%" PRIu32, id,
            c->stream_id_range.start, c->stream_id_range.end);
        return NULL;
    }
    const tp_driver_profile_config_t *p = tp_driver_config_profile(c, c->default_profile);
    if (p == NULL)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS,
            "policies.default_profile '%s' does not exist", c->default_profile);
        return NULL;
    }
    char name[TP_DRIVER_NAME_MAX];
    snprintf(name, sizeof(name), "dynamic-%" PRIu32, id);
    s = tp_driver_stream_add(d, id, name, p, true);
    if (s == NULL)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR,
            "could not create stream %" PRIu32 ": %s", id, tp_errmsg());
        return NULL;
    }
    *is_new = true;
    return s;
}

/* The request's enums (driver spec 4.2, 4.3): true when it was refused (and answered). */
static bool attach_is_invalid(tp_driver_t *d, const attach_request_t *r)
{
    int64_t cid = r->correlation_id;
    if (!tp_driver_role_is_valid(r->role))
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "unknown role %u", r->role);
        return true;
    }
    if (!tp_driver_publish_mode_is_valid(r->publish_mode))
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_UNSUPPORTED, "unknown publishMode %u", r->publish_mode);
        return true;
    }
    if (!tp_driver_hugepages_policy_is_valid(r->require_hugepages))
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "unknown requireHugepages %u",
            r->require_hugepages);
        return true;
    }
    return false;
}

/* What the driver can grant (after the enum checks and the client's own lease): true when refused (answered). */
static bool attach_cannot_be_met(tp_driver_t *d, const attach_request_t *r)
{
    int64_t cid = r->correlation_id;
    if (d->is_draining)
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED, "the driver is shutting down");
        return true;
    }
    if (r->expected_layout_version != 0 && r->expected_layout_version != TP_LAYOUT_VERSION)
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "expectedLayoutVersion %" PRIu32 " does not match the stream's layout version %d",
            r->expected_layout_version, TP_LAYOUT_VERSION);
        return true;
    }
    if ((r->require_hugepages == TP_DRIVER_HUGEPAGES_POLICY_HUGEPAGES && !d->is_base_hugetlbfs) ||
        (r->require_hugepages == TP_DRIVER_HUGEPAGES_POLICY_STANDARD && d->is_base_hugetlbfs))
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "requireHugepages %s cannot be met: regions live in %s, which is %sa hugetlbfs mount",
            tp_driver_hugepages_policy_name(r->require_hugepages), d->base_dir_canonical,
            d->is_base_hugetlbfs ? "" : "not ");
        return true;
    }
    if (r->has_desired_node_id && node_id_is_taken(d, r->desired_node_id))
    {
        respond_attach_error(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED, "node id %" PRIu32 " is taken",
            r->desired_node_id);
        return true;
    }
    return false;
}

/* A client id holds one active lease: the same attach again is a retry (answered again), anything else a refusal.
 * true when the request was answered here. */
static bool attach_is_from_leaseholder(tp_driver_t *d, const attach_request_t *r)
{
    tp_driver_lease_t *same_client = lease_find_active_client(d, r->client_id);
    if (same_client == NULL)
    {
        return false;
    }
    if (same_client->correlation_id == r->correlation_id && same_client->stream_id == r->stream_id &&
        same_client->role == r->role)
    {
        respond_attach_ok(d, same_client, tp_driver_stream_find(d, same_client->stream_id)); /* a retry */
        return true;
    }
    /* Driver spec B.2: exactly this message, on which a client with an auto-assigned id picks another. */
    TP_LOG_I("driver", "attach refused: clientId %" PRIu32 " already holds active lease %" PRIu64 " (%s of stream %"
        PRIu32 ")", r->client_id, same_client->lease_id, tp_driver_role_name(same_client->role),
        same_client->stream_id);
    respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED, "%s", TP_DRIVER_CLIENT_ID_IN_USE);
    return true;
}

/* Driver spec 6: one producer per stream, and a producer attaching to a stream without one moves it to a new epoch
 * (a stream created by this very attach is already in a fresh epoch nobody has seen). -1 when refused (answered). */
static int attach_take_producer_slot(tp_driver_t *d, tp_driver_stream_t *s, const attach_request_t *r, bool is_new)
{
    if (s->producer_lease_id != 0)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "stream %" PRIu32 " already has a producer (lease %" PRIu64 ", clientId %" PRIu32 ")", s->stream_id,
            s->producer_lease_id, s->producer_client_id);
        return -1;
    }
    if (!is_new && tp_driver_stream_bump_epoch(d, s) < 0)
    {
        respond_attach_error(d, r->correlation_id, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR,
            "could not move stream %" PRIu32 " to a new epoch: %s", s->stream_id, tp_errmsg());
        return -1;
    }
    return 0;
}

/* Fill the granted lease, watch its holder's process, and count it on its stream. */
static void lease_grant(tp_driver_t *d, tp_driver_lease_t *lease, tp_driver_stream_t *s, const attach_request_t *r)
{
    memset(lease, 0, sizeof(*lease));
    lease->lease_id = d->next_lease_id++;
    lease->stream_id = s->stream_id;
    lease->client_id = r->client_id;
    lease->role = r->role;
    lease->node_id = r->has_desired_node_id ? r->desired_node_id : node_id_next_free(d);
    lease->correlation_id = r->correlation_id;
    lease->attached_ns = d->now_ns;
    lease->keepalive_ns = d->now_ns;
    lease->expiry_ns = d->now_ns + lease_duration_ns(d);
    lease->is_active = true;
    int32_t pid = 0;
    uint64_t pid_start_time = 0;
    if (d->message_session_id != 0 &&
        tp_bus_subscription_image_owner(d->control_sub, d->message_session_id, &pid, &pid_start_time) == 0)
    {
        tp_driver_liveness_watch(d, lease, pid, pid_start_time); /* driver spec 7: process liveness */
    }
    if (r->role == TP_DRIVER_ROLE_PRODUCER)
    {
        s->producer_lease_id = lease->lease_id;
        s->producer_client_id = r->client_id;
    }
    else
    {
        s->consumer_count++;
    }
    d->counters.attaches_ok++;
    d->is_status_dirty = true;
}

void tp_driver_on_attach(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    attach_request_t r;
    if (attach_request_read(d, buffer, length, &r) < 0 || attach_is_invalid(d, &r) ||
        attach_is_from_leaseholder(d, &r) || attach_cannot_be_met(d, &r))
    {
        return;
    }
    tp_driver_lease_t *lease = lease_slot(d);
    if (lease == NULL)
    {
        respond_attach_error(d, r.correlation_id, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "the lease table is full (%d leases)", TP_DRIVER_MAX_LEASES);
        return;
    }
    bool is_new = false;
    tp_driver_stream_t *s = attach_stream(d, &r, &is_new);
    if (s == NULL)
    {
        return;
    }
    if (s->profile.pool_count == 0)
    {
        respond_attach_error(d, r.correlation_id, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS,
            "stream %" PRIu32 " has no payload pools", s->stream_id);
        return;
    }
    if (r.role == TP_DRIVER_ROLE_PRODUCER && attach_take_producer_slot(d, s, &r, is_new) < 0)
    {
        return;
    }
    lease_grant(d, lease, s, &r);
    if (r.role == TP_DRIVER_ROLE_PRODUCER || is_new)
    {
        /* The new epoch, or the new stream, and its producerId. Announced before the producer hears its answer, so
         * the announce is on the bus before any descriptor of the new epoch: consumers believe a new epoch only
         * from the driver, and find it there when the first descriptor names it. */
        tp_driver_announce(d, s);
    }
    respond_attach_ok(d, lease, s);
    TP_LOG_I("driver", "lease %" PRIu64 ": clientId %" PRIu32 " attached as %s of stream %" PRIu32 " epoch %" PRIu64,
        lease->lease_id, lease->client_id, tp_driver_role_name(lease->role), s->stream_id, s->regions.epoch);
}

/* ---- ending leases ---- */

static void publish_revoked(tp_driver_t *d, const tp_driver_lease_t *lease, uint8_t reason, const char *why)
{
    char message[TP_DRIVER_ERROR_MESSAGE_MAX + 1];
    snprintf(message, sizeof(message), "%s", why);
    tp_driver_shm_lease_revoked_enc_t e;
    tp_driver_shm_lease_revoked_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_driver_shm_lease_revoked_set_timestamp_ns(&e, (uint64_t)d->now_ns);
    tp_driver_shm_lease_revoked_set_lease_id(&e, lease->lease_id);
    tp_driver_shm_lease_revoked_set_stream_id(&e, lease->stream_id);
    tp_driver_shm_lease_revoked_set_client_id(&e, lease->client_id);
    tp_driver_shm_lease_revoked_set_role(&e, lease->role);
    tp_driver_shm_lease_revoked_set_reason(&e, reason);
    tp_driver_shm_lease_revoked_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_lease_revoked_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_publish(d, d->control_pub, d->scratch, n);
    }
}

void tp_driver_end_lease(tp_driver_t *d, tp_driver_lease_t *lease, uint8_t reason, const char *why)
{
    if (!lease->is_active)
    {
        return;
    }
    lease->is_active = false;
    lease->end_reason = reason;
    tp_driver_liveness_unwatch(d, lease);
    lease->expiry_ns = d->now_ns; /* the row's age for reuse */
    d->is_status_dirty = true;
    tp_driver_stream_t *s = tp_driver_stream_find(d, lease->stream_id);
    /* Driver spec 4.9: every invalidation is announced, before the epoch-bumped ShmPoolAnnounce. */
    publish_revoked(d, lease, reason, why);
    TP_LOG_I("driver", "lease %" PRIu64 " (clientId %" PRIu32 ", %s of stream %" PRIu32 ") ended: %s",
        lease->lease_id, lease->client_id, tp_driver_role_name(lease->role), lease->stream_id, why);
    if (s == NULL)
    {
        return;
    }
    if (lease->role == TP_DRIVER_ROLE_CONSUMER)
    {
        s->consumer_count -= s->consumer_count > 0 ? 1 : 0;
        return;
    }
    if (s->producer_lease_id == lease->lease_id)
    {
        s->producer_lease_id = 0;
        s->producer_client_id = 0;
        /* Driver spec 4.7a, 6, 7: a producer lease that ends moves the stream to a new epoch, announced now. */
        if (tp_driver_stream_bump_epoch(d, s) < 0)
        {
            TP_LOG_E("driver", "stream %" PRIu32 ": could not move to a new epoch: %s", s->stream_id, tp_errmsg());
        }
        tp_driver_announce(d, s);
    }
}

int tp_driver_retire_damaged(tp_driver_t *d)
{
    int retired = 0;
    for (uint32_t i = 0; i < d->stream_count; i++)
    {
        tp_driver_stream_t *s = &d->streams[i];
        if (!tp_driver_stream_is_damaged(s))
        {
            continue;
        }
        TP_LOG_W("driver", "stream %" PRIu32 ": a region file of epoch %" PRIu64 " shrank under its mapping "
            "(truncated by a process that can write it); retiring the epoch", s->stream_id, s->regions.epoch);
        d->counters.epochs_damaged++;
        retired++;
        tp_driver_lease_t *producer = s->producer_lease_id != 0 ? lease_find(d, s->producer_lease_id) : NULL;
        if (producer != NULL && producer->is_active)
        {
            tp_driver_end_lease(d, producer, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED,
                "a region file of the stream's epoch was truncated"); /* moves the stream on and announces */
            continue;
        }
        if (tp_driver_stream_bump_epoch(d, s) < 0)
        {
            TP_LOG_E("driver", "stream %" PRIu32 ": could not move to a new epoch: %s", s->stream_id, tp_errmsg());
            continue;
        }
        tp_driver_announce(d, s);
    }
    return retired;
}

void tp_driver_on_detach(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_detach_request_t m;
    if (tp_driver_shm_detach_request_decode(&m, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        return;
    }
    int64_t cid = tp_driver_shm_detach_request_correlation_id(&m);
    uint64_t lease_id = tp_driver_shm_detach_request_lease_id(&m);
    tp_driver_lease_t *lease = lease_find(d, lease_id);
    if (lease == NULL)
    {
        respond_detach(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED, "unknown lease");
        return;
    }
    if (lease->stream_id != tp_driver_shm_detach_request_stream_id(&m) ||
        lease->client_id != tp_driver_shm_detach_request_client_id(&m) ||
        lease->role != tp_driver_shm_detach_request_role(&m))
    {
        respond_detach(d, cid, TP_DRIVER_RESPONSE_CODE_REJECTED,
            "streamId, clientId or role do not match the lease");
        return;
    }
    if (lease->is_active)
    {
        d->counters.detaches++;
        tp_driver_end_lease(d, lease, TP_DRIVER_LEASE_REVOKE_REASON_DETACHED, "detached by the client");
    }
    respond_detach(d, cid, TP_DRIVER_RESPONSE_CODE_OK, ""); /* idempotent: an ended lease detaches again */
}

void tp_driver_on_keepalive(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_driver_shm_lease_keepalive_t m;
    if (tp_driver_shm_lease_keepalive_decode(&m, buffer, length) < 0)
    {
        d->counters.malformed_messages++;
        return;
    }
    tp_driver_lease_t *lease = lease_find(d, tp_driver_shm_lease_keepalive_lease_id(&m));
    if (lease == NULL || !lease->is_active || lease->stream_id != tp_driver_shm_lease_keepalive_stream_id(&m) ||
        lease->client_id != tp_driver_shm_lease_keepalive_client_id(&m) ||
        lease->role != tp_driver_shm_lease_keepalive_role(&m))
    {
        d->counters.keepalives_ignored++;
        return;
    }
    lease->keepalive_ns = d->now_ns;
    lease->expiry_ns = d->now_ns + lease_duration_ns(d); /* driver spec 4.4 */
    d->counters.keepalives++;
}

int tp_driver_expire_leases(tp_driver_t *d)
{
    int expired = 0;
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        tp_driver_lease_t *l = &d->leases[i];
        if (l->is_active && d->now_ns > l->expiry_ns)
        {
            char why[128];
            snprintf(why, sizeof(why), "no keepalive for %" PRId64 " ms",
                (int64_t)((d->now_ns - l->keepalive_ns) / TP_NS_PER_MS));
            d->counters.leases_expired++;
            tp_driver_end_lease(d, l, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED, why);
            expired++;
        }
    }
    return expired;
}

/* ---- administrative revocation ---- */

int tp_driver_revoke_lease(tp_driver_t *d, uint64_t lease_id)
{
    if (lease_id == 0)
    {
        return 0;
    }
    for (int i = 0; i < TP_DRIVER_REVOKE_QUEUE; i++)
    {
        uint64_t expected = 0;
        if (tp_cas_release_u64(&d->revoke_queue[i], &expected, lease_id)) /* pairs with the driver's exchange */
        {
            return 0;
        }
    }
    TP_SET_ERR(TP_E_CAPACITY, "%d revocations are already waiting for the driver", TP_DRIVER_REVOKE_QUEUE);
    return -1;
}

int tp_driver_revoke_queued(tp_driver_t *d)
{
    int done = 0;
    for (int i = 0; i < TP_DRIVER_REVOKE_QUEUE; i++)
    {
        if (tp_load_relaxed_u64(&d->revoke_queue[i]) == 0)
        {
            continue;
        }
        uint64_t lease_id = tp_exchange_acquire_u64(&d->revoke_queue[i], 0);
        tp_driver_lease_t *lease = lease_find(d, lease_id);
        if (lease != NULL && lease->is_active)
        {
            d->counters.leases_revoked++;
            tp_driver_end_lease(d, lease, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED, "revoked by the driver's operator");
            done++;
        }
    }
    return done;
}
