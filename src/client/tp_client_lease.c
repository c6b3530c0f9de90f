/*
 * Leases: attaching through the driver without blocking, mapping and validating the regions the response names,
 * keepalives, and attaching again when the lease is lost or superseded (see tp_client_internal.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "shm/tp_region_uri.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_driver.h"

/* A response the client must refuse even with code OK (driver spec 4.2, 4.7a): nulls, empty URIs, wrong sizes. */
static int check_response(const tp_attach_result_t *r, uint32_t stream_id)
{
    if (!r->has_lease_id || !r->has_stream_id || !r->has_epoch || !r->has_layout_version || !r->has_header_nslots ||
        !r->has_header_slot_bytes)
    {
        TP_SET_ERR(TP_E_MALFORMED, "attach response OK with a required field null");
        return -1;
    }
    if (r->stream_id != stream_id || r->header_slot_bytes != TP_HEADER_SLOT_BYTES || r->pool_count == 0 ||
        r->header_region_uri[0] == '\0' || r->layout_version != TP_LAYOUT_VERSION)
    {
        TP_SET_ERR(TP_E_MALFORMED, "attach response OK but stream %" PRIu32 ", headerSlotBytes %u, %" PRIu32
            " pools, layout %" PRIu32, r->stream_id, r->header_slot_bytes, r->pool_count, r->layout_version);
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
    /* Driver spec 17: with mlock_shm the client pins its own mappings too (a page fault on the hot path is what
     * the setting exists to rule out). Unpinned when unmapped. */
    if (l->client->config.mlock_shm && mlock(region->base, region->length_bytes) < 0)
    {
        TP_SET_ERR(errno, "mlock of %s (%zu bytes) failed: %s (raise RLIMIT_MEMLOCK or set client.mlock_shm false)",
            uri.path, region->length_bytes, strerror(errno));
        tp_shm_region_close(region);
        return -1;
    }
    return 0;
}

/* Map every region the response names through the containment rules, each superblock validated against it. */
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
    tp_superblock_t actual;
    tp_superblock_read(l->header.base, &actual);
    l->header_pid = actual.pid;
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
    /* One SIGBUS guard group for the attachment: a pool truncated under a frame being read zeroes the header ring
     * too, so that frame fails its seqlock re-check (tp_shm_guard.h). */
    tp_shm_region_set_group(&l->header, (uint64_t)(uintptr_t)l);
    for (uint32_t i = 0; i < l->pool_count; i++)
    {
        tp_shm_region_set_group(&l->pools[i], (uint64_t)(uintptr_t)l);
    }
    return 0;
}

/* A region of the attachment shrank under us (a SIGBUS already replaced it, or its file is shorter than the
 * mapping: one fstat per region, so only on the liveness checks and announces). Our regions are unusable then:
 * detach and map again, whatever the driver made of the stream. */
static bool lease_is_damaged(tp_client_lease_t *l)
{
    bool is_damaged = tp_shm_region_is_damaged(&l->header);
    for (uint32_t i = 0; i < l->pool_count && !is_damaged; i++)
    {
        is_damaged = tp_shm_region_is_damaged(&l->pools[i]);
    }
    if (is_damaged)
    {
        TP_LOG_W("client", "stream %" PRIu32 " epoch %" PRIu64 ": a region file shrank under its mapping; mapping "
            "again", l->stream_id, l->epoch);
        l->is_superseded = true;
        l->damaged++;
    }
    return is_damaged;
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

static void schedule_retry(tp_client_lease_t *l, int64_t now_ns)
{
    l->state = TP_LEASE_WAITING;
    l->next_attempt_ns = now_ns + l->backoff_ns;
    l->backoff_ns = l->backoff_ns * 2 < TP_CLIENT_BACKOFF_MAX_NS ? l->backoff_ns * 2 : TP_CLIENT_BACKOFF_MAX_NS;
}

static void remember_error(tp_client_lease_t *l)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s", tp_errmsg());
}

static void start_attach(tp_client_lease_t *l, int64_t now_ns)
{
    tp_client_t *c = l->client;
    tp_attach_params_t params = { .stream_id = l->stream_id, .client_id = l->client_id, .role = l->role,
        .expected_layout_version = TP_LAYOUT_VERSION, .publish_mode = l->publish_mode,
        .require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED };
    /* TraceLink 6.2: a node id stays the process's for its life, so a new attachment (after a lost lease or a
     * driver restart) asks for the first one back. */
    params.has_desired_node_id = l->first_node_id != 0 && !l->is_node_id_refused;
    params.desired_node_id = l->first_node_id;
    l->is_asking_node_id = params.has_desired_node_id;
    int64_t id = tp_client_conductor_attach(c->conductor, &params, now_ns);
    if (id < 0)
    {
        remember_error(l);
        schedule_retry(l, now_ns);
        return;
    }
    l->attach_id = id;
    l->state = TP_LEASE_ATTACHING;
}

/* The driver answered: map what it granted, or remember why not. */
static void finish_attach(tp_client_lease_t *l, const tp_attach_result_t *r, int64_t now_ns)
{
    tp_client_t *c = l->client;
    if (r->code != TP_DRIVER_RESPONSE_CODE_OK)
    {
        TP_SET_ERR(TP_E_REJECTED, "the driver refused the %s attach to stream %" PRIu32 " (%s): %s",
            tp_driver_role_name(l->role), l->stream_id, tp_driver_response_code_name(r->code), r->error_message);
        remember_error(l);
        l->is_refused = true;
        l->is_node_id_refused = l->is_node_id_refused || l->is_asking_node_id; /* perhaps why: not again */
        if (c->config.client_id == 0 && strcmp(r->error_message, TP_DRIVER_CLIENT_ID_IN_USE) == 0)
        {
            /* Driver spec B.2: our automatic id is someone else's: another one, after the backoff. */
            uint32_t taken = l->client_id;
            l->client_id = (tp_random_u32() >> 1) + 1;
            TP_LOG_I("client", "clientId %" PRIu32 " is taken; retrying stream %" PRIu32 " as clientId %" PRIu32,
                taken, l->stream_id, l->client_id);
        }
        schedule_retry(l, now_ns);
        return;
    }
    l->lease_id = r->lease_id;
    l->node_id = r->has_node_id ? r->node_id : 0;
    l->first_node_id = l->first_node_id != 0 ? l->first_node_id : l->node_id;
    l->epoch = r->epoch;
    l->nslots = r->header_nslots;
    if (check_response(r, l->stream_id) < 0 || lease_map(l, r) < 0)
    {
        TP_APPEND_ERR("attaching to stream %" PRIu32, l->stream_id);
        remember_error(l);
        l->is_refused = true;
        tp_client_conductor_detach_send(c->conductor, l->lease_id, l->stream_id, l->client_id, l->role);
        lease_unmap(l);
        l->lease_id = 0;
        schedule_retry(l, now_ns);
        return;
    }
    /* Keepalives at the configured period, and at least three per lease the driver grants (driver spec 4.4). */
    int64_t period = (int64_t)c->config.keepalive_interval_ms * TP_NS_PER_MS;
    if (r->has_lease_expiry && (int64_t)r->lease_expiry_ns > now_ns &&
        ((int64_t)r->lease_expiry_ns - now_ns) / 3 < period)
    {
        period = ((int64_t)r->lease_expiry_ns - now_ns) / 3;
    }
    l->keepalive_period_ns = period;
    l->next_keepalive_ns = now_ns + period;
    /* A granted expiry is a hard deadline (driver spec 4.2): if no keepalive went out in time, the lease is over. */
    l->lease_duration_ns = r->has_lease_expiry && (int64_t)r->lease_expiry_ns > now_ns ?
        (int64_t)r->lease_expiry_ns - now_ns : 0;
    l->lease_deadline_ns = now_ns + l->lease_duration_ns;
    l->next_liveness_check_ns = now_ns + c->freshness_ns / 6;
    l->announced_epoch = l->epoch; /* the driver's answer is the authority; older announces are ignored now */
    l->is_awaiting_epoch = false;
    l->state = TP_LEASE_ATTACHED;
    l->is_valid = true;
    l->is_lost = false;
    l->is_superseded = false;
    l->is_refused = false;
    l->last_error[0] = '\0';
    l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
    if (l->generation++ > 0)
    {
        l->remaps++;
    }
}

/* Stop using the regions at once; tell the driver only if the lease is still ours. */
static void release(tp_client_lease_t *l, bool send_detach)
{
    if (l->state == TP_LEASE_ATTACHING)
    {
        tp_client_conductor_cancel(l->client->conductor, l->attach_id); /* a late answer is ignored */
        l->attach_id = 0;
    }
    if (l->is_valid && send_detach)
    {
        tp_client_conductor_detach_send(l->client->conductor, l->lease_id, l->stream_id, l->client_id, l->role);
    }
    l->is_valid = false;
    l->state = TP_LEASE_WAITING;
    lease_unmap(l);
    l->lease_id = 0;
}

/* The mapped header's superblock still belongs to this epoch and its driver is alive (wire spec 15.1, 15.14). */
static void check_superblock(tp_client_lease_t *l, int64_t now_ns)
{
    if (lease_is_damaged(l))
    {
        return;
    }
    tp_superblock_t sb;
    tp_superblock_read(l->header.base, &sb);
    if (sb.magic != TP_SUPERBLOCK_MAGIC || sb.epoch != l->epoch || sb.layout_version != TP_LAYOUT_VERSION ||
        sb.pid != l->header_pid)
    {
        TP_LOG_I("client", "the header superblock of stream %" PRIu32 " changed (epoch %" PRIu64 " -> %" PRIu64
            "); mapping again", l->stream_id, l->epoch, sb.epoch);
        l->is_superseded = true;
        return;
    }
    if (now_ns - (int64_t)sb.activity_timestamp_ns > l->client->freshness_ns)
    {
        TP_LOG_W("client", "stream %" PRIu32 " epoch %" PRIu64 ": no activity for %" PRId64 " ms; the driver is "
            "gone, attaching again", l->stream_id, l->epoch,
            (int64_t)((now_ns - (int64_t)sb.activity_timestamp_ns) / TP_NS_PER_MS));
        l->is_lost = true;
    }
}

static void on_producer_revoked(tp_client_lease_t *l, int64_t now_ns)
{
    if (!l->is_valid || l->is_awaiting_epoch)
    {
        return; /* a duplicate changes nothing */
    }
    /* Driver spec 4.9: keep the mapping until the epoch-bumped announce of this stream, but not for longer than
     * three announce periods. */
    l->is_awaiting_epoch = true;
    l->awaited_above = l->epoch > l->announced_epoch ? l->epoch : l->announced_epoch;
    l->await_deadline_ns = now_ns + l->client->freshness_ns;
}

static bool on_announce(tp_client_lease_t *l, const tp_control_event_t *a, int64_t now_ns)
{
    if (a->epoch < l->announced_epoch)
    {
        return false; /* follow the highest epoch (wire spec 10.1.1) */
    }
    l->announced_epoch = a->epoch;
    if (l->is_awaiting_epoch && a->epoch > l->awaited_above)
    {
        l->is_awaiting_epoch = false; /* the epoch-bumped announce: strictly above what we knew */
    }
    if (l->state == TP_LEASE_WAITING)
    {
        l->next_attempt_ns = now_ns; /* the stream is (again) announced: try now rather than after the backoff */
        return true;
    }
    if (!l->is_valid || l->is_lost || l->is_superseded)
    {
        return true;
    }
    if (l->role == TP_DRIVER_ROLE_PRODUCER)
    {
        /* The driver moved the stream past our epoch: our lease is over (driver spec 6). The regions are the
         * driver's to describe; the producer checks their liveness in its ticks. */
        l->is_lost = a->epoch > l->epoch;
        return true;
    }
    if (a->epoch != l->epoch || a->layout_version != TP_LAYOUT_VERSION || a->header_nslots != l->nslots)
    {
        l->is_superseded = true; /* drop everything in flight, unmap, map the announced epoch */
        return true;
    }
    check_superblock(l, now_ns);
    return true;
}

/* The answer to our attach, or why none will come. */
static void on_attach_answer(tp_client_lease_t *l, const tp_control_event_t *e, int64_t now_ns)
{
    if (l->state != TP_LEASE_ATTACHING || e->correlation_id != l->attach_id)
    {
        return;
    }
    l->attach_id = 0;
    if (e->attach == NULL)
    {
        TP_SET_ERR(TP_E_MALFORMED, "%s", e->failure != NULL ? e->failure : "no attach response");
        remember_error(l);
        schedule_retry(l, now_ns);
        return;
    }
    finish_attach(l, e->attach, now_ns);
}

bool tp_client_lease_on_event(tp_client_lease_t *l, const tp_control_event_t *e, int64_t now_ns)
{
    switch (e->kind)
    {
    case TP_CONTROL_EVENT_ATTACH_RESPONSE:
        on_attach_answer(l, e, now_ns);
        return true;
    case TP_CONTROL_EVENT_DETACH_RESPONSE:
        if (l->detach_id != 0 && e->correlation_id == l->detach_id)
        {
            l->detach_id = 0;
            l->is_detached = true;
        }
        return true;
    case TP_CONTROL_EVENT_REVOKED:
        if (l->is_valid && e->lease_id == l->lease_id)
        {
            l->is_lost = true; /* its owner's next tick unmaps it */
        }
        else if (e->role == TP_DRIVER_ROLE_PRODUCER && e->stream_id == l->stream_id &&
            l->role == TP_DRIVER_ROLE_CONSUMER)
        {
            on_producer_revoked(l, now_ns);
        }
        return true;
    case TP_CONTROL_EVENT_SHUTDOWN:
        l->is_lost = l->is_lost || l->is_valid;
        return true;
    case TP_CONTROL_EVENT_ANNOUNCE:
        return e->stream_id != l->stream_id || on_announce(l, e, now_ns);
    default:
        return true;
    }
}

int tp_client_lease_tick(tp_client_lease_t *l, int64_t now_ns)
{
    int work = tp_client_conductor_do_work(l->client->conductor, now_ns); /* events reach leases via on_event */
    return (work > 0 ? work : 0) + tp_client_lease_do_work(l, now_ns);
}

int tp_client_lease_do_work(tp_client_lease_t *l, int64_t now_ns)
{
    tp_client_t *c = l->client;
    int work = 0;
    if (l->is_lost)
    {
        /* Driver spec 4.9, 4.13: stop using the regions at once, then attach again. */
        TP_LOG_I("client", "lease %" PRIu64 " of stream %" PRIu32 " is gone; attaching again", l->lease_id,
            l->stream_id);
        release(l, false);
        l->is_lost = false;
        l->is_superseded = false;
        l->revocations++;
        l->next_attempt_ns = now_ns;
        l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
        work++;
    }
    if (l->is_superseded)
    {
        TP_LOG_I("client", "stream %" PRIu32 ": epoch %" PRIu64 " is over (announced %" PRIu64 "); mapping again",
            l->stream_id, l->epoch, l->announced_epoch);
        release(l, true);
        l->is_superseded = false;
        l->next_attempt_ns = now_ns;
        l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
        work++;
    }
    switch (l->state)
    {
    case TP_LEASE_WAITING:
        if (now_ns >= l->next_attempt_ns && !tp_client_is_attaching(c, l->stream_id, l->role))
        {
            start_attach(l, now_ns);
            work++;
        }
        break;
    case TP_LEASE_ATTACHING:
        break; /* the answer comes through on_event; the conductor resends the request until then */
    case TP_LEASE_ATTACHED:
        if (l->lease_duration_ns > 0 && now_ns > l->lease_deadline_ns)
        {
            /* We were not called for longer than the lease: the driver has expired it. Fail closed. */
            TP_LOG_W("client", "lease %" PRIu64 " of stream %" PRIu32 " passed its expiry without a keepalive",
                l->lease_id, l->stream_id);
            l->is_lost = true;
            break;
        }
        if (l->is_awaiting_epoch && now_ns > l->await_deadline_ns)
        {
            /* Driver spec 4.9: the producer's lease ended and no announce of a newer epoch came in time. */
            TP_LOG_W("client", "stream %" PRIu32 ": no announce above epoch %" PRIu64 " within %" PRId64 " ms of the "
                "producer's revocation; unmapping and attaching again", l->stream_id, l->awaited_above,
                (int64_t)(l->client->freshness_ns / TP_NS_PER_MS));
            release(l, true);
            l->is_awaiting_epoch = false;
            schedule_retry(l, now_ns);
            work++;
            break;
        }
        if (now_ns >= l->next_keepalive_ns)
        {
            if (tp_client_conductor_keepalive(c->conductor, l->lease_id, l->stream_id, l->client_id, l->role) < 0)
            {
                l->is_lost = true; /* driver spec 4.4: a failed keepalive send is fatal; attach again */
            }
            l->next_keepalive_ns = now_ns + l->keepalive_period_ns;
            l->lease_deadline_ns = now_ns + l->lease_duration_ns;
            work++;
        }
        if (now_ns >= l->next_liveness_check_ns)
        {
            check_superblock(l, now_ns);
            l->next_liveness_check_ns = now_ns + c->freshness_ns / 6;
            work++;
        }
        break;
    }
    return work;
}

/* How long a blocking call parks on the control stream when nothing came: until the conductor's next resend, from
 * 1 to 10 ms (an answer wakes it sooner). Waking every millisecond for nothing costs a crowd of waiters the CPU the
 * driver needs to answer them. */
static int64_t await_park_ns(tp_client_t *c)
{
    int64_t wait = tp_client_conductor_park_ns(c->conductor, tp_client_now(c), 10 * TP_NS_PER_MS);
    return wait < TP_NS_PER_MS ? TP_NS_PER_MS : wait;
}

/* Wait (parked on the control stream) until the pending attach of l is answered or the deadline (real time:
 * CLOCK_MONOTONIC, whatever the client's clock) passed. */
static void await_attach(tp_client_lease_t *l, int64_t deadline_ns)
{
    tp_client_t *c = l->client;
    for (;;)
    {
        int work = tp_client_lease_tick(l, tp_client_now(c));
        if (l->state != TP_LEASE_ATTACHING || tp_clock_monotonic_ns() > deadline_ns)
        {
            return;
        }
        if (work == 0)
        {
            /* nothing came */
            tp_bus_subscription_park(tp_client_conductor_subscription(c->conductor), await_park_ns(c));
        }
    }
}

void tp_client_lease_poll_notices(tp_client_lease_t *l)
{
    (void)tp_client_conductor_do_work(l->client->conductor, tp_client_now(l->client));
}

int tp_client_lease_remap(tp_client_lease_t *l, int64_t timeout_ns)
{
    TP_LOG_I("client", "stream %" PRIu32 ": a descriptor of a newer epoch ends epoch %" PRIu64 "; mapping again",
        l->stream_id, l->epoch);
    release(l, true);
    l->is_superseded = false;
    l->next_attempt_ns = tp_client_now(l->client);
    l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
    if (!tp_client_is_attaching(l->client, l->stream_id, l->role))
    {
        start_attach(l, tp_client_now(l->client));
    }
    await_attach(l, tp_clock_monotonic_ns() + timeout_ns);
    return l->is_valid ? 0 : -1;
}

int tp_client_lease_open(tp_client_lease_t *l, tp_client_t *client, uint32_t stream_id, uint8_t role,
    uint8_t publish_mode, int64_t timeout_ns)
{
    memset(l, 0, sizeof(*l));
    int slot = -1;
    for (int i = 0; i < TP_CLIENT_MAX_LEASES && slot < 0; i++)
    {
        slot = client->leases[i] == NULL ? i : -1;
    }
    if (slot < 0)
    {
        TP_SET_ERR(TP_E_CAPACITY, "this client already holds %d leases", TP_CLIENT_MAX_LEASES);
        return -1;
    }
    l->client = client;
    l->role = role;
    l->publish_mode = publish_mode;
    l->stream_id = stream_id;
    l->client_id = client->next_client_id++;
    l->state = TP_LEASE_WAITING;
    l->next_attempt_ns = tp_client_now(client);
    l->backoff_ns = TP_CLIENT_BACKOFF_MIN_NS;
    client->leases[slot] = l;
    tp_client_retain(client);
    if (timeout_ns < 0)
    {
        tp_client_lease_tick(l, tp_client_now(client));
        return 0;
    }
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns; /* real time: a blocking call's timeout */
    while (!l->is_valid && !l->is_refused && tp_clock_monotonic_ns() <= deadline)
    {
        tp_client_lease_tick(l, tp_client_now(client));
        await_attach(l, deadline);
        if (l->state == TP_LEASE_WAITING && !l->is_valid && !l->is_refused)
        {
            tp_bus_subscription_park(tp_client_conductor_subscription(client->conductor), await_park_ns(client));
        }
    }
    if (l->is_valid)
    {
        return 0;
    }
    if (l->is_refused)
    {
        TP_SET_ERR(TP_E_REJECTED, "%s", l->last_error);
    }
    else
    {
        TP_SET_ERR(TP_E_TIMEOUT, "no answer from the driver on %s stream %" PRIu32 " within %" PRId64 " ms%s%s",
            client->config.control_channel, client->config.control_stream_id, (int64_t)(timeout_ns / TP_NS_PER_MS),
            l->last_error[0] != '\0' ? ": " : "", l->last_error);
    }
    tp_client_lease_close(l);
    return -1;
}

/* Detach and wait (real time) for the answer, so that whoever attaches next (another process, perhaps) finds the
 * stream free. */
static void detach_and_wait(tp_client_lease_t *l, int64_t timeout_ns)
{
    tp_client_t *c = l->client;
    l->is_detached = false;
    l->detach_id = tp_client_conductor_detach(c->conductor, l->lease_id, l->stream_id, l->client_id, l->role,
        tp_client_now(c));
    if (l->detach_id < 0)
    {
        l->detach_id = 0;
        tp_client_conductor_detach_send(c->conductor, l->lease_id, l->stream_id, l->client_id, l->role);
        return;
    }
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    while (!l->is_detached && tp_clock_monotonic_ns() <= deadline)
    {
        if (tp_client_conductor_do_work(c->conductor, tp_client_now(c)) == 0)
        {
            tp_bus_subscription_park(tp_client_conductor_subscription(c->conductor), await_park_ns(c));
        }
    }
    if (!l->is_detached)
    {
        tp_client_conductor_cancel(c->conductor, l->detach_id);
        TP_LOG_W("client", "detach of lease %" PRIu64 " got no answer within %" PRId64 " ms (the lease will expire)",
            l->lease_id, (int64_t)(timeout_ns / TP_NS_PER_MS));
    }
    l->detach_id = 0;
}

void tp_client_lease_close(tp_client_lease_t *l)
{
    tp_client_t *c = l->client;
    if (c == NULL)
    {
        return;
    }
    if (l->is_valid && !l->is_lost)
    {
        detach_and_wait(l, TP_NS_PER_S);
        l->is_valid = false;
    }
    release(l, false);
    for (int i = 0; i < TP_CLIENT_MAX_LEASES; i++)
    {
        if (c->leases[i] == l)
        {
            c->leases[i] = NULL;
        }
    }
    l->client = NULL;
    tp_client_release(c);
}

int tp_client_lease_region_of(const tp_client_lease_t *l, const uint8_t *p, tp_region_info_t *out)
{
    for (uint32_t i = 0; l->is_valid && i < l->pool_count; i++)
    {
        const tp_shm_region_t *r = &l->pools[i];
        if (r->has_fd && p >= r->base && p < r->base + r->length_bytes)
        {
            out->fd = r->fd;
            out->base = r->base;
            out->length = r->length_bytes;
            return 0;
        }
    }
    TP_SET_ERR(TP_E_STATE, "the payload is not in a region of the current mapping");
    return -1;
}
