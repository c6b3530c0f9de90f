/*
 * The SHM driver embedded in the test process (its own thread, tp_driver_start), talked to through the control
 * stream exactly as a client process would: attach, detach, keepalive, expiry, epochs, announces, dynamic
 * streams, shutdown, hostile input (tp_driver_regions_test covers the regions on disk; tp_driver_process_test runs
 * the same driver as `tp driver` processes and kills them).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "driver/tp_driver_leases.h"
#include "driver/tp_driver_streams.h"
#include "tp_driver_fixture.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

static void test_attach_ok_has_every_field(void **state)
{
    (void)state;
    /* covers: D-4.2-1, D-4.2-7, D-4.2-8, D-4.2-9, D-4.2-13, D-4.2-18, D-4.2-21, D-4.2-25, D-4.3-2, D-4.1-1 */
    /* covers: D-3-4, D-9-1, D-5-2, D-4.3-6, D-4.6-1, W-15.5-1 */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    int64_t cid = tp_driver_proxy_next_correlation_id(F.proxy);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    assert_true(r.correlation_id == cid);
    assert_true(r.has_lease_id && r.has_lease_expiry && r.has_stream_id && r.has_epoch && r.has_layout_version &&
        r.has_header_nslots && r.has_header_slot_bytes && r.has_node_id);
    assert_int_equal(r.stream_id, CAM);
    assert_int_equal(r.layout_version, TP_LAYOUT_VERSION);
    assert_int_equal(r.header_nslots, 8);
    assert_int_equal(r.header_slot_bytes, 256);
    assert_true(r.lease_expiry_ns > (uint64_t)tp_clock_monotonic_ns());
    assert_int_equal(r.pool_count, 2);
    assert_int_equal(r.error_message_length, 0);
    tp_superblock_t expected = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION,
        .epoch = r.epoch, .stream_id = CAM, .region_type = TP_REGION_HEADER_RING, .nslots = 8, .slot_bytes = 256 };
    map_region(r.header_region_uri, &expected);
    for (uint32_t i = 0; i < r.pool_count; i++)
    {
        assert_int_equal(r.pools[i].pool_nslots, r.header_nslots);
        assert_int_equal(r.pools[i].pool_id, i + 1);
        tp_superblock_t pe = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION, .epoch = r.epoch,
            .stream_id = CAM, .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = (uint16_t)(i + 1), .nslots = 8,
            .slot_bytes = r.pools[i].stride_bytes, .stride_bytes = r.pools[i].stride_bytes };
        map_region(r.pools[i].region_uri, &pe);
    }
    /* A second consumer of the same stream is fine and gets a different lease and node id. */
    tp_attach_params_t p2 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r2;
    attach_ok(&p2, &r2);
    assert_true(r2.lease_id != r.lease_id);
    assert_true(r2.node_id != r.node_id);
}

static void test_producer_attach_bumps_epoch_and_sets_producer_id(void **state)
{
    (void)state;
    /* covers: D-6-1, D-8-1, D-8-2, D-7-3, W-15.2-1 (a producer (re)start is a new epoch) */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t rp;
    attach_ok(&p, &rp);
    assert_true(rp.epoch > rc.epoch);
    uint32_t producer_id = 0;
    assert_true(wait_announce_epoch_above(CAM, rc.epoch, &from, &producer_id) == rp.epoch);
    assert_int_equal(producer_id, p.client_id);
    /* A consumer attaching now sees the producer's epoch. */
    tp_attach_params_t c2 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc2;
    attach_ok(&c2, &rc2);
    assert_true(rc2.epoch == rp.epoch);
    /* Without a producer the announce says producerId 0. */
    from = tp_driver_proxy_event_count(F.proxy);
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, IMU, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.client_id, 0);
}

static void test_attach_refusals(void **state)
{
    (void)state;
    tp_attach_result_t r;
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    attach_ok(&p, &r);
    /* covers: D-5-1, D-4.6-4, W-15.17-1 (each refusal below carries the code its meaning calls for) */
    tp_attach_params_t second = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    attach_refused(&second, TP_DRIVER_RESPONSE_CODE_REJECTED, "already has a producer");
    /* covers: D-4.3-1 */
    tp_attach_params_t layout = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    layout.expected_layout_version = TP_LAYOUT_VERSION + 1;
    attach_refused(&layout, TP_DRIVER_RESPONSE_CODE_REJECTED, "expectedLayoutVersion");
    /* covers: D-4.2-4, D-4.3-3 */
    tp_attach_params_t unknown = params(4242, TP_DRIVER_ROLE_CONSUMER);
    attach_refused(&unknown, TP_DRIVER_RESPONSE_CODE_REJECTED, "not provisioned");
    unknown.publish_mode = 255; /* absent: REQUIRE_EXISTING */
    unknown.client_id = F.next_client_id++;
    attach_refused(&unknown, TP_DRIVER_RESPONSE_CODE_REJECTED, "not provisioned");
    /* covers: D-4.3-4, D-4.3-5 (the test directory is not hugetlbfs, so STANDARD is met and HUGEPAGES is not) */
    tp_attach_params_t huge = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    huge.require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_HUGEPAGES;
    attach_refused(&huge, TP_DRIVER_RESPONSE_CODE_REJECTED, "requireHugepages HUGEPAGES");
    tp_attach_params_t standard = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    standard.require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_STANDARD;
    attach_ok(&standard, &r);
    /* covers: D-4.8-4 */
    tp_attach_params_t dup = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    dup.client_id = p.client_id;
    attach_refused(&dup, TP_DRIVER_RESPONSE_CODE_REJECTED, "client_id already attached");
    /* covers: D-4.2-2, D-4.2-3 */
    tp_attach_params_t node = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    node.has_desired_node_id = true;
    node.desired_node_id = 777;
    tp_attach_result_t rn;
    attach_ok(&node, &rn);
    assert_int_equal(rn.node_id, 777);
    tp_attach_params_t taken = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    taken.has_desired_node_id = true;
    taken.desired_node_id = 777;
    attach_refused(&taken, TP_DRIVER_RESPONSE_CODE_REJECTED, "node id 777 is taken");
    /* covers: D-4.6-3, D-4.6-2 */
    tp_attach_params_t role = params(IMU, 9);
    attach_refused(&role, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "unknown role");
    tp_attach_params_t mode = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    mode.publish_mode = 7;
    attach_refused(&mode, TP_DRIVER_RESPONSE_CODE_UNSUPPORTED, "unknown publishMode");
    tp_attach_params_t hp = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    hp.require_hugepages = 9;
    attach_refused(&hp, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "unknown requireHugepages");
}

static void test_zero_pool_stream_is_invalid_params(void **state)
{
    (void)state;
    /* Profiles without pools are refused by the configuration (fail fast); a stream that has none anyway (here
     * forced by the test) is refused at attach time. covers: D-4.3-7 */
    teardown(NULL);
    fixture_context("zero-pools");
    tp_assert_ok(tp_driver_init(&F.driver, F.ctx));
    tp_driver_stream_find(F.driver, CAM)->profile.pool_count = 0;
    tp_assert_ok(tp_driver_start(F.driver));
    tp_assert_ok(tp_bus_init(&F.bus, F.bus_dir));
    tp_assert_ok(tp_driver_proxy_open(&F.proxy, F.bus, "aeron:ipc", 1000));
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    attach_refused(&p, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "no payload pools");
    tp_driver_stream_t *s = tp_driver_stream_find(driver_stopped(), CAM);
    s->profile.pool_count = 2; /* so close releases both pools */
}

/* A raw ShmAttachRequest (REQUIRE_EXISTING, no desired node id), for sending outside the proxy's exchange. */
static size_t encode_attach(uint8_t *msg, size_t capacity, int64_t correlation_id, uint32_t stream_id,
    uint32_t client_id, uint8_t role)
{
    tp_driver_shm_attach_request_enc_t e;
    tp_driver_shm_attach_request_enc_begin(&e, msg, capacity);
    tp_driver_shm_attach_request_set_correlation_id(&e, correlation_id);
    tp_driver_shm_attach_request_set_stream_id(&e, stream_id);
    tp_driver_shm_attach_request_set_client_id(&e, client_id);
    tp_driver_shm_attach_request_set_role(&e, role);
    tp_driver_shm_attach_request_set_publish_mode(&e, TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING);
    tp_driver_shm_attach_request_set_desired_node_id(&e, UINT32_MAX);
    int64_t n = tp_driver_shm_attach_request_enc_finish(&e);
    assert_true(n > 0);
    return (size_t)n;
}

static void test_newer_attach_version_is_unsupported(void **state)
{
    (void)state;
    /* covers: D-4.4a-3, D-4.6-2 */
    uint8_t msg[64];
    size_t n = encode_attach(msg, sizeof(msg), 4711, CAM, 5, TP_DRIVER_ROLE_CONSUMER);
    tp_sbe_put_u16(msg + 6, 2); /* version 2 */
    tp_assert_ok(tp_driver_proxy_send(F.proxy, msg, n));
    /* The response is read by a proxy waiting on correlation 4711: send through a raw attach of ours instead. */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&p, &r); /* the driver is still fine */
    tp_driver_t *d = driver_stopped();
    assert_int_equal(d->counters.newer_version_messages, 1);
    assert_int_equal(d->counters.attaches_rejected, 1);
    assert_int_equal(d->counters.attaches_ok, 1);
}

static void test_duplicate_attach_is_answered_again(void **state)
{
    (void)state;
    /* A client retrying an attach whose response it missed gets the same lease, not a second one (nor a
     * refusal for reusing its clientId). */
    uint8_t msg[64];
    size_t n = encode_attach(msg, sizeof(msg), 99, IMU, 55, TP_DRIVER_ROLE_PRODUCER);
    for (int i = 0; i < 3; i++)
    {
        tp_assert_ok(tp_driver_proxy_send(F.proxy, msg, n));
    }
    /* Wait until the driver has handled them: an attach of ours is answered after them. */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    tp_driver_t *d = driver_stopped();
    assert_int_equal(d->counters.attaches_ok, 2);
    assert_int_equal(d->counters.attaches_rejected, 0);
    assert_int_equal(d->counters.epochs_bumped, 1); /* one producer lease, one bump */
}

/* ---- detach and revocation ---- */

static void test_detach(void **state)
{
    (void)state;
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    int32_t code = -1;
    char message[256];
    /* Mismatched fields are refused and change nothing: the client id, the stream, the role. */
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id + 1, TP_DRIVER_ROLE_PRODUCER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_REJECTED);
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, IMU, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_REJECTED);
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_CONSUMER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_REJECTED);
    tp_test_assert_contains(message, "streamId, clientId or role do not match the lease");
    /* covers: D-4.9-1, D-4.9-4, D-4.9-3, D-4.9-5, D-6-2 */
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_REVOKED, r.lease_id, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.reason, TP_DRIVER_LEASE_REVOKE_REASON_DETACHED);
    assert_int_equal(e.role, TP_DRIVER_ROLE_PRODUCER);
    assert_int_equal(e.client_id, p.client_id);
    /* The revocation comes before the epoch-bumped announce. covers: D-4.9-12s */
    uint32_t producer = 1;
    assert_true(wait_announce_epoch_above(CAM, r.epoch, &from, &producer) > r.epoch);
    assert_int_equal(producer, 0);
    /* Idempotent: detaching again answers OK and sends no second revocation. covers: D-4.9-2s, D-4.9-16s */
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, 123456789, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_REJECTED);
    tp_test_assert_contains(message, "unknown lease");
    /* A consumer detach is revoked too, without an epoch change. */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, rc.lease_id, CAM, c.client_id, TP_DRIVER_ROLE_CONSUMER, &code,
        message, sizeof(message), TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_REVOKED, rc.lease_id, 0, &from, &e, TIMEOUT_NS));
    /* covers: D-4.8-1: the same client attaching again gets a new lease id */
    tp_attach_result_t again;
    p.client_id = F.next_client_id++;
    attach_ok(&p, &again);
    assert_true(again.lease_id != r.lease_id && again.lease_id != rc.lease_id);
    assert_true(again.epoch > rc.epoch);
    tp_driver_t *d = driver_stopped();
    size_t revoked = 0;
    for (size_t i = 0; i < tp_driver_proxy_event_count(F.proxy); i++)
    {
        revoked += tp_driver_proxy_event(F.proxy, i)->kind == TP_CONTROL_EVENT_REVOKED;
    }
    assert_int_equal(revoked, 2); /* no duplicate for the repeated detach */
    assert_int_equal(d->counters.detaches, 2);
}

static void test_operator_revocation(void **state)
{
    (void)state;
    /* covers: D-6-2, D-4.9-5, D-4.7a-2, D-4.7a-3 (reason REVOKED) */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t rc, rp;
    attach_ok(&c, &rc);
    attach_ok(&p, &rp);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_assert_ok(tp_driver_revoke_lease(F.driver, rp.lease_id));
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_REVOKED, rp.lease_id, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.reason, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED);
    assert_int_equal(e.role, TP_DRIVER_ROLE_PRODUCER);
    assert_true(wait_announce_epoch_above(CAM, rp.epoch, &from, NULL) > rp.epoch);
    /* The revoked producer's keepalives are ignored and its detach is answered without a second notice. */
    int32_t code;
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, rp.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code, NULL,
        0, TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
    tp_assert_ok(tp_driver_revoke_lease(F.driver, rc.lease_id));
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_REVOKED, rc.lease_id, 0, &from, &e, TIMEOUT_NS));
    tp_driver_t *d = driver_stopped();
    assert_int_equal(d->counters.leases_revoked, 2);
    /* Requests queue while the driver does not run; the 17th finds no room. */
    for (int i = 0; i < 16; i++)
    {
        tp_assert_ok(tp_driver_revoke_lease(d, 1000 + (uint64_t)i));
    }
    tp_assert_fails_with(tp_driver_revoke_lease(d, 2000), "already waiting");
    assert_int_equal(tp_driver_revoke_queued(d), 0); /* unknown leases: nothing to do */
    tp_assert_ok(tp_driver_revoke_lease(d, 2000));
}

/* The driver on a clock the test moves by hand, run in this thread one duty cycle at a time. */
static int64_t fake_now_ns;

static int64_t fake_clock(void *clientd)
{
    (void)clientd;
    return fake_now_ns;
}

/* Let the driver work (at the current fake time) until the proxy's pending attach is answered. */
static void attach_on_fake_clock(tp_attach_params_t *p, tp_attach_result_t *r)
{
    tp_assert_ok(tp_driver_proxy_attach_start(F.proxy, p, r));
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++)
    {
        tp_driver_do_work(F.driver);
        rc = tp_driver_proxy_attach_poll(F.proxy);
    }
    assert_int_equal(rc, 1);
    assert_int_equal(r->code, TP_DRIVER_RESPONSE_CODE_OK);
}

/* Advance the fake clock by step_ns and let the driver see everything sent so far. */
static void advance(int64_t step_ns)
{
    fake_now_ns += step_ns;
    while (tp_driver_do_work(F.driver) > 0)
    {
    }
}

static bool was_revoked(uint64_t lease_id)
{
    tp_driver_proxy_poll(F.proxy);
    for (size_t i = 0; i < tp_driver_proxy_event_count(F.proxy); i++)
    {
        const tp_control_event_t *ev = tp_driver_proxy_event(F.proxy, i);
        if (ev->kind == TP_CONTROL_EVENT_REVOKED && ev->lease_id == lease_id)
        {
            return true;
        }
    }
    return false;
}

static void test_silent_producer_expires(void **state)
{
    (void)state;
    /* On a fake clock, exactly: a lease of 3 x 50 ms lasts 150 ms after its attach or last keepalive, checked every
     * 12.5 ms. covers: D-4.4-3, D-4.4-4, D-4.7a-2, D-4.7a-3, D-4.1-2, D-7-2, D-4.4-1s */
    teardown(NULL);
    fixture_context("expiry");
    set("policies.lease_keepalive_interval_ms", "50");
    set("policies.lease_expiry_grace_intervals", "3");
    fake_now_ns = tp_clock_monotonic_ns();
    tp_assert_ok(tp_driver_context_set_clock(F.ctx, fake_clock, NULL));
    tp_assert_ok(tp_driver_init(&F.driver, F.ctx)); /* not started: this thread runs it */
    tp_assert_ok(tp_bus_init(&F.bus, F.bus_dir));
    tp_assert_ok(tp_driver_proxy_open(&F.proxy, F.bus, "aeron:ipc", 1000));
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t rc, rp;
    attach_on_fake_clock(&c, &rc);
    attach_on_fake_clock(&p, &rp);
    assert_true(rp.lease_expiry_ns == (uint64_t)(fake_now_ns + 150 * TP_NS_PER_MS));
    /* The consumer sends a keepalive every 100 ms; the producer nothing. */
    advance(100 * TP_NS_PER_MS);
    tp_assert_ok(tp_driver_proxy_keepalive(F.proxy, rc.lease_id, CAM, c.client_id, TP_DRIVER_ROLE_CONSUMER));
    advance(0);
    advance(50 * TP_NS_PER_MS); /* 150 ms: due, not past */
    assert_false(was_revoked(rp.lease_id));
    advance(13 * TP_NS_PER_MS); /* 163 ms: past, and a check has run since */
    assert_true(was_revoked(rp.lease_id));
    size_t from = 0;
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_REVOKED, rp.lease_id, 0, &from, &e, 0));
    assert_int_equal(e.reason, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED);
    /* then the epoch-bumped announce */
    tp_control_event_t a;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, CAM, &from, &a, 0));
    assert_true(a.epoch > rp.epoch);
    /* The consumer, kept alive at 100 ms, lasts until 250 ms. */
    advance(86 * TP_NS_PER_MS); /* 249 ms */
    assert_false(was_revoked(rc.lease_id));
    advance(14 * TP_NS_PER_MS); /* 263 ms */
    assert_true(was_revoked(rc.lease_id));
    /* A keepalive for the expired lease is ignored, not revived. */
    tp_assert_ok(tp_driver_proxy_keepalive(F.proxy, rp.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER));
    advance(0);
    tp_attach_params_t p2 = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t rp2;
    attach_on_fake_clock(&p2, &rp2); /* the stream has no producer any more */
    assert_int_equal(F.driver->counters.leases_expired, 2);
    assert_int_equal(F.driver->counters.keepalives, 1);
    assert_int_equal(F.driver->counters.keepalives_ignored, 1);
}

/* ---- dynamic streams ---- */

static void test_dynamic_streams(void **state)
{
    (void)state;
    /* covers: D-11-1 */
    tp_attach_params_t a = params(0, TP_DRIVER_ROLE_PRODUCER);
    a.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    tp_attach_result_t r1, r2;
    attach_ok(&a, &r1);
    assert_int_equal(r1.stream_id, 20000);
    tp_attach_params_t b = params(20001, TP_DRIVER_ROLE_CONSUMER);
    b.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    attach_ok(&b, &r2);
    assert_int_equal(r2.stream_id, 20001);
    tp_attach_params_t full = params(0, TP_DRIVER_ROLE_CONSUMER);
    full.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    attach_refused(&full, TP_DRIVER_RESPONSE_CODE_REJECTED, "exhausted");
    tp_attach_params_t outside = params(30000, TP_DRIVER_ROLE_CONSUMER);
    outside.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    attach_refused(&outside, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "outside driver.stream_id_range");
    /* The created stream is announced and then found by REQUIRE_EXISTING. */
    tp_attach_params_t existing = params(20000, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r3;
    attach_ok(&existing, &r3);
    assert_int_equal(r3.epoch, r1.epoch);
}

static void test_dynamic_streams_disabled_or_without_range(void **state)
{
    (void)state;
    teardown(NULL);
    fixture_context("nodyn");
    set("policies.allow_dynamic_streams", "false");
    fixture_start();
    tp_attach_params_t a = params(0, TP_DRIVER_ROLE_CONSUMER);
    a.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    attach_refused(&a, TP_DRIVER_RESPONSE_CODE_REJECTED, "allow_dynamic_streams is false");
    teardown(NULL);
    /* covers: D-11-2 */
    fixture_context("norange");
    set("driver.stream_id_range", "");
    fixture_start();
    a.client_id = F.next_client_id++;
    attach_refused(&a, TP_DRIVER_RESPONSE_CODE_INVALID_PARAMS, "stream_id_range");
}

/* ---- per-consumer streams ---- */

static void send_hello(uint32_t consumer_id, const char *descriptor_channel, uint32_t descriptor_stream_id,
    const char *control_channel, uint32_t control_stream_id)
{
    uint8_t msg[512];
    tp_wire_consumer_hello_enc_t e;
    tp_wire_consumer_hello_enc_begin(&e, msg, sizeof(msg));
    tp_wire_consumer_hello_set_stream_id(&e, CAM);
    tp_wire_consumer_hello_set_consumer_id(&e, consumer_id);
    tp_wire_consumer_hello_set_supports_shm(&e, TP_WIRE_BOOL_TRUE);
    tp_wire_consumer_hello_set_supports_progress(&e, TP_WIRE_BOOL_FALSE);
    tp_wire_consumer_hello_set_mode(&e, TP_WIRE_MODE_STREAM);
    tp_wire_consumer_hello_set_expected_layout_version(&e, TP_LAYOUT_VERSION);
    tp_wire_consumer_hello_set_progress_interval_us(&e, UINT32_MAX);
    tp_wire_consumer_hello_set_progress_bytes_delta(&e, UINT32_MAX);
    tp_wire_consumer_hello_set_progress_major_delta_units(&e, UINT32_MAX);
    tp_wire_consumer_hello_set_descriptor_stream_id(&e, descriptor_stream_id);
    tp_wire_consumer_hello_set_control_stream_id(&e, control_stream_id);
    tp_wire_consumer_hello_put_descriptor_channel(&e, descriptor_channel, strlen(descriptor_channel));
    tp_wire_consumer_hello_put_control_channel(&e, control_channel, strlen(control_channel));
    int64_t n = tp_wire_consumer_hello_enc_finish(&e);
    assert_true(n > 0);
    tp_assert_ok(tp_driver_proxy_send(F.proxy, msg, (size_t)n));
}

/* The next ConsumerConfig for consumer_id (from event *from on). */
static tp_control_event_t await_config(uint32_t consumer_id, size_t *from)
{
    tp_control_event_t e;
    do
    {
        tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_CONSUMER_CONFIG, 0, CAM, from, &e,
            TIMEOUT_NS));
    } while (e.client_id != consumer_id);
    return e;
}

static void test_per_consumer_streams(void **state)
{
    (void)state;
    teardown(NULL);
    fixture_context("per-consumer");
    set("driver.descriptor_stream_id_range", "31000-31001");
    set("driver.control_stream_id_range", "32000-32000");
    fixture_start();
    tp_attach_params_t c1 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_params_t c2 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_params_t c3 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r1, r2, r3;
    attach_ok(&c1, &r1);
    attach_ok(&c2, &r2);
    attach_ok(&c3, &r3);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    /* covers: D-11-3s: ids come from the ranges, channels are echoed */
    send_hello(c1.client_id, "aeron:ipc?term-length=1m", 7, "aeron:ipc", 32000);
    tp_control_event_t e = await_config(c1.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 31000);
    assert_string_equal(e.descriptor_channel, "aeron:ipc?term-length=1m");
    assert_int_equal(e.control_stream_id, 32000);
    assert_string_equal(e.control_channel, "aeron:ipc");
    /* Asking again gets the same ids. */
    send_hello(c1.client_id, "aeron:ipc", 31001, "aeron:ipc", 5);
    e = await_config(c1.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 31000);
    assert_int_equal(e.control_stream_id, 32000);
    /* The control range is exhausted: declined with an empty channel and id 0, the descriptor is granted.
     * covers: D-11-5 */
    send_hello(c2.client_id, "aeron:ipc", 1, "aeron:ipc", 1);
    e = await_config(c2.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 31001);
    assert_int_equal(e.control_stream_id, 0);
    assert_string_equal(e.control_channel, "");
    send_hello(c3.client_id, "aeron:ipc", 1, "", 0);
    e = await_config(c3.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 0);
    assert_string_equal(e.descriptor_channel, "");
    /* A channel with stream id 0 is malformed: both declined (wire spec 10.1.2), for either stream. In the driver
     * model the driver answers for the producer, so the producer rules of 10.1.2-10.1.3 are its.
     * covers: W-5-7, W-5-11, W-5-12, W-10.1.2-3, W-10.1.2-5, W-10.1.2-6, W-10.1.2-8, W-10.1.3-4, W-10.1.3-5 */
    send_hello(c3.client_id, "aeron:ipc", 0, "", 0);
    e = await_config(c3.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 0);
    assert_string_equal(e.descriptor_channel, "");
    send_hello(c3.client_id, "", 0, "aeron:ipc", 0);
    e = await_config(c3.client_id, &from);
    assert_int_equal(e.control_stream_id, 0);
    assert_string_equal(e.control_channel, "");
    assert_int_equal(e.descriptor_stream_id, 0);
    /* Ids return to the pool when the lease ends. */
    int32_t code;
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r1.lease_id, CAM, c1.client_id, TP_DRIVER_ROLE_CONSUMER, &code,
        NULL, 0, TIMEOUT_NS));
    send_hello(c3.client_id, "aeron:ipc", 1, "aeron:ipc", 1);
    e = await_config(c3.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 31000);
    assert_int_equal(e.control_stream_id, 32000);
    /* Hellos without a consumer lease (the detached client), or without a request, are not answered. */
    send_hello(c1.client_id, "aeron:ipc", 1, "", 0);
    send_hello(c2.client_id, "", 0, "", 0);
    tp_attach_params_t sync = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    attach_ok(&sync, &r1); /* handled after both hellos */
    tp_driver_t *d = driver_stopped();
    assert_int_equal(d->counters.consumer_configs, 7);
    assert_int_equal(d->counters.consumer_hellos_ignored, 2);
}

static void test_per_consumer_streams_without_ranges_are_declined(void **state)
{
    (void)state;
    /* Ranges unset: declined with the wire spec's encoding (empty channel, id 0; see ARCHITECTURE.md). */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&c, &r);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    send_hello(c.client_id, "aeron:ipc", 9, "aeron:ipc", 9);
    tp_control_event_t e = await_config(c.client_id, &from);
    assert_int_equal(e.descriptor_stream_id, 0);
    assert_int_equal(e.control_stream_id, 0);
    assert_string_equal(e.descriptor_channel, "");
    assert_string_equal(e.control_channel, "");
}

/* ---- hostile input ---- */

static void test_flood_of_garbage_is_counted_and_ignored(void **state)
{
    (void)state;
    /* covers: D-4.4a-4 (driver side), D-4.5-1, W-15.16-3 (demultiplexed by schema and template id) */
    uint8_t msg[256];
    uint32_t seed = 12345;
    int sent = 0;
    for (int i = 0; i < 3000; i++)
    {
        size_t length = (size_t)(i % 200) + 1;
        for (size_t k = 0; k < length; k++)
        {
            seed = seed * 1103515245u + 12345u;
            msg[k] = (uint8_t)(seed >> 16);
        }
        if (length >= 8)
        {
            switch (i % 5)
            {
            case 0: /* an unknown template */
                tp_sbe_put_u16(msg + 4, TP_DRIVER_SCHEMA_ID);
                tp_sbe_put_u16(msg + 2, 77);
                tp_sbe_put_u16(msg + 6, 1);
                break;
            case 1: tp_sbe_put_u16(msg + 4, TP_WIRE_SCHEMA_ID); break;
            case 2: /* a driver message with a truncated or garbage body */
                tp_sbe_put_u16(msg + 4, TP_DRIVER_SCHEMA_ID);
                tp_sbe_put_u16(msg + 2, (uint16_t)(1 + i % 8));
                tp_sbe_put_u16(msg + 6, 1);
                tp_sbe_put_u16(msg, 200);
                break;
            case 3: tp_sbe_put_u16(msg + 4, TP_DRIVER_SCHEMA_ID); tp_sbe_put_u16(msg + 6, 9); break;
            default: break;
            }
        }
        tp_assert_ok(tp_driver_proxy_send(F.proxy, msg, length));
        sent++;
        if (i % 100 == 0)
        {
            usleep(1000); /* let the driver keep up with our request log (128 KiB, TP_BUS_PUB_REQUESTS) */
        }
    }
    int64_t start = tp_clock_monotonic_ns();
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    int64_t took = tp_clock_monotonic_ns() - start;
    tp_driver_t *d = driver_stopped();
    tp_driver_counters_t *k = &d->counters;
    uint64_t ignored = k->malformed_messages + k->unknown_messages + k->newer_version_messages +
        k->other_schema_messages + k->other_driver_messages;
    print_message("flood: %d messages, %llu ignored, %llu malformed, attach afterwards took %.2f ms\n", sent,
        (unsigned long long)ignored, (unsigned long long)k->malformed_messages, (double)took / 1e6);
    assert_true(k->unknown_messages > 0 && k->malformed_messages > 0 && k->newer_version_messages > 0 &&
        k->other_schema_messages > 0);
    /* Every garbage message was accounted for (a garbage attach answered INVALID_PARAMS is also malformed). */
    assert_true(ignored + k->keepalives_ignored + k->detaches + k->shutdown_requests_refused +
        k->consumer_hellos_ignored >= (uint64_t)sent - 8);
    assert_int_equal(k->attaches_ok, 1);
}

/* ---- shutdown ---- */

static void test_shutdown_token(void **state)
{
    (void)state;
    /* covers: D-4.13-2, D-4.13-3, D-4.13-5, D-4.13-1s, D-4.13-7s (the token guards it; the reason is the request's) */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    tp_assert_ok(tp_driver_proxy_shutdown_request(F.proxy, "wrong", TP_DRIVER_SHUTDOWN_REASON_ADMIN));
    tp_assert_ok(tp_driver_proxy_shutdown_request(F.proxy, "", TP_DRIVER_SHUTDOWN_REASON_ADMIN));
    tp_assert_ok(tp_driver_proxy_shutdown_request(F.proxy, "to", TP_DRIVER_SHUTDOWN_REASON_ADMIN));
    tp_attach_params_t p2 = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    attach_ok(&p2, &r); /* handled after the three requests: the driver still serves */
    assert_false(tp_driver_is_shutdown(F.driver));
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_assert_ok(tp_driver_proxy_shutdown_request(F.proxy, "tok", TP_DRIVER_SHUTDOWN_REASON_ADMIN));
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_SHUTDOWN, 0, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.reason, TP_DRIVER_SHUTDOWN_REASON_ADMIN);
    tp_driver_t *d = driver_stopped();
    assert_true(tp_driver_is_shutdown(d));
    assert_int_equal(d->counters.shutdown_requests_refused, 3);
}

static void test_draining_refuses_attaches(void **state)
{
    (void)state;
    teardown(NULL);
    fixture_context("drain");
    set("policies.shutdown_timeout_ms", "2000");
    fixture_start();
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_assert_ok(tp_driver_proxy_shutdown_request(F.proxy, "tok", TP_DRIVER_SHUTDOWN_REASON_NORMAL));
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    attach_refused(&p, TP_DRIVER_RESPONSE_CODE_REJECTED, "shutting down");
    /* The final announce was sent when draining began. covers: D-4.13-6s */
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, CAM, &from, NULL, TIMEOUT_NS));
    assert_false(tp_driver_is_shutdown(F.driver));
}

static void test_close_publishes_shutdown(void **state)
{
    (void)state;
    /* covers: D-4.13-8s */
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_driver_close(F.driver);
    F.driver = NULL;
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_SHUTDOWN, 0, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.reason, TP_DRIVER_SHUTDOWN_REASON_NORMAL);
}

static void test_context_errors(void **state)
{
    (void)state;
    tp_driver_context_t *ctx = NULL;
    tp_assert_ok(tp_driver_context_init(&ctx));
    tp_assert_fails_with(tp_driver_context_set(ctx, "policies.no_such_key", "1"), "unknown driver setting");
    tp_assert_fails_with(tp_driver_context_set(ctx, "policies.announce_period_ms", "soon"), "announce_period_ms");
    tp_driver_t *d = NULL;
    tp_assert_fails_with(tp_driver_init(&d, ctx), "profile"); /* no profile at all */
    tp_assert_ok(tp_driver_context_set(ctx, "shm.base_dir", "/nonexistent-tp-dir"));
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { 4096 };
    tp_assert_ok(tp_driver_context_add_profile(ctx, "p", 8, ids, strides, 1));
    tp_assert_ok(tp_driver_context_add_stream(ctx, "s", 5, "p"));
    tp_assert_fails_with(tp_driver_init(&d, ctx), "/nonexistent-tp-dir");
    tp_assert_fails_with(tp_driver_context_load_file(ctx, "/nonexistent-tp-dir/x.toml"), "cannot open");
    /* The driver keeps its own regions inside the allowed base directories too. covers: D-9-1 */
    tp_assert_ok(tp_driver_context_set(ctx, "shm.base_dir", "/tmp"));
    tp_assert_ok(tp_driver_context_set(ctx, "shm.allowed_base_dirs", "/dev,/run"));
    tp_assert_fails_with(tp_driver_init(&d, ctx), "not one of shm.allowed_base_dirs");
    tp_driver_context_close(ctx);
}

/* Each run of a client starts its correlation ids at a random multiple of 2^24, so a response still on the stream
 * from an earlier run is not taken for one of ours. covers: D-B.1-1 */
static void test_correlation_ids_differ_between_runs(void **state)
{
    (void)state;
    enum { RUNS = 16 };
    int64_t first[RUNS];
    for (int i = 0; i < RUNS; i++)
    {
        tp_driver_proxy_t *proxy = NULL;
        tp_assert_ok(tp_driver_proxy_open(&proxy, F.bus, "aeron:ipc", 1000));
        first[i] = tp_driver_proxy_next_correlation_id(proxy);
        tp_driver_proxy_close(proxy);
    }
    for (int i = 0; i < RUNS; i++)
    {
        for (int j = i + 1; j < RUNS; j++)
        {
            int64_t apart = first[i] > first[j] ? first[i] - first[j] : first[j] - first[i];
            assert_true(apart >= (INT64_C(1) << 24)); /* 16 M requests each before two runs could meet */
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attach_ok_has_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_attach_bumps_epoch_and_sets_producer_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_pool_stream_is_invalid_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_attach_version_is_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_attach_is_answered_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_correlation_ids_differ_between_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_revocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_producer_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dynamic_streams_disabled_or_without_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_consumer_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_consumer_streams_without_ranges_are_declined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_of_garbage_is_counted_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_draining_refuses_attaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_publishes_shutdown, setup, teardown),
        cmocka_unit_test(test_context_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
