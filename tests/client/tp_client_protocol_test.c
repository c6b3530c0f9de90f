/*
 * The client against a fake driver that says exactly what each test needs (driver spec 4.2, 4.4, 4.4a, 4.7a,
 * 4.8, 4.9, B): attach responses with every kind of protocol error, duplicate and out-of-date responses, newer
 * schema versions, revocations with unknown values or for other leases, and lease expiries.
 *
 * A real embedded driver (control stream 1000) owns the stream's regions, refreshes their activity and gives the
 * fake (control stream 2000) valid URIs to hand out; the client under test speaks to the fake only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tp_fake_driver.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_driver.h"
#include "tp_test_util.h"

/* ---- tests ---- */

static void test_protocol_errors_fail_closed(void **state)
{
    (void)state;
    /* Each bad OK response: nothing stays mapped, the lease is given back, the reason is kept, and a new request
     * (a new correlation id) follows. A file named by a bad URI is never created.
     * covers: D-4.2-17, D-4.2-19, D-4.2-20, D-4.2-22, D-4.2-26, D-4.7a-1, D-2.3-1, D-2.3-2, D-3-2, D-3-3, D-9-2,
     * D-B.1-3, W-15.5-2, W-15.21-7, W-15.21a.4-2, W-15.22-9 */
    char missing[800], missing_uri[900];
    snprintf(missing, sizeof(missing), "%s/not-there.ring", shm);
    snprintf(missing_uri, sizeof(missing_uri), "shm:file?path=%s", missing);
    const struct
    {
        mutation_t mu;
        const char *why;
    } bad[] = {
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .null_lease_id = true }, "required field null" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 1, .null_epoch = true }, "required field null" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 2, .header_slot_bytes = 128 }, "headerSlotBytes 128" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 3, .no_pools = true }, "0 pools" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 4, .header_uri = "" }, "headerSlotBytes" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 5, .pool_nslots = 8 }, "has 8 slots" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 6, .header_uri = "shm:file?path=/etc/passwd" },
            "/etc/passwd" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 7, .header_uri = "file:///dev/shm/x" },
            "file:///dev/shm/x" },
        { { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 8, .header_uri = missing_uri }, "not-there.ring" },
    };
    int64_t last_cid = 0;
    size_t n = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < n; i++)
    {
        tp_consumer_t *c = NULL;
        tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
        const request_t *r = await_request(c, (int)i + 1);
        assert_true(r->correlation_id != last_cid);
        last_cid = r->correlation_id;
        int detaches = fake.detach_requests;
        fake_respond(r->correlation_id, &bad[i].mu);
        /* An OK the client cannot use still granted a lease (when it names one): it is given back. */
        int want_detaches = detaches + (bad[i].mu.null_lease_id ? 0 : 1);
        int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
        while (strstr(tp_consumer_last_error(c), bad[i].why) == NULL || fake.detach_requests < want_detaches)
        {
            if (tp_clock_monotonic_ns() > deadline)
            {
                fail_msg("case %zu: expected '%s' in '%s', %d detaches", i, bad[i].why, tp_consumer_last_error(c),
                    fake.detach_requests - detaches);
            }
            tp_consumer_poll(c, on_frame, NULL, 16);
            fake_poll();
        }
        assert_false(tp_consumer_is_attached(c));
        assert_int_equal(tp_consumer_lease_id(c), 0);
        tp_consumer_close(c);
    }
    assert_int_equal(access(missing, F_OK), -1);
    /* A good answer at last. */
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    const request_t *r = await_request(c, (int)n + 1);
    fake_respond(r->correlation_id, &ok);
    until_attached(c);
    assert_int_equal(tp_consumer_lease_id(c), ok.lease_id);
    assert_int_equal(tp_consumer_epoch(c), real.epoch);
    assert_string_equal(tp_consumer_last_error(c), "");
    tp_consumer_close(c);
}

/* Poll the producer and the fake until `done` says so. */
static void poll_producer_until(tp_producer_t *p, bool (*done)(tp_producer_t *, const void *), const void *arg)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!done(p, arg))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        fake_poll();
    }
}

static bool has_requests(tp_producer_t *p, const void *count)
{
    (void)p;
    return fake.attach_requests >= *(const int *)count;
}

static bool error_names(tp_producer_t *p, const void *text)
{
    return strstr(tp_producer_last_error(p), text) != NULL;
}

static bool is_attached(tp_producer_t *p, const void *unused)
{
    (void)unused;
    return tp_producer_is_attached(p);
}

/* The producer maps what the driver made and nothing else: a region that does not exist is not created, and the
 * regions it wrote into are neither truncated nor removed when it leaves. covers: D-2.2-1 */
static void test_producer_never_creates_or_removes_files(void **state)
{
    (void)state;
    char missing[800], missing_uri[900];
    snprintf(missing, sizeof(missing), "%s/not-there.ring", shm);
    snprintf(missing_uri, sizeof(missing_uri), "shm:file?path=%s", missing);
    const char *header = real.header_region_uri + strlen("shm:file?path=");
    struct stat before;
    assert_int_equal(stat(header, &before), 0);
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach_async(&p, client, STREAM));
    int want = 1;
    poll_producer_until(p, has_requests, &want);
    mutation_t mu = { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 600, .header_uri = missing_uri };
    fake_respond(fake.requests[0].correlation_id, &mu);
    poll_producer_until(p, error_names, "not-there.ring");
    assert_int_equal(access(missing, F_OK), -1);
    assert_false(tp_producer_is_attached(p));
    /* The next request is answered with the real regions: attached, a frame written, closed. */
    want = 2;
    poll_producer_until(p, has_requests, &want);
    assert_int_equal(fake.requests[1].role, TP_DRIVER_ROLE_PRODUCER);
    fake_respond(fake.requests[1].correlation_id, &ok);
    poll_producer_until(p, is_attached, NULL);
    uint8_t byte = 7;
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = 1;
    assert_true(tp_producer_offer_frame(p, &byte, 1, &t, 0, 0) >= 0);
    tp_producer_close(p);
    struct stat after;
    assert_int_equal(stat(header, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_ino, before.st_ino);
}

static void test_duplicate_and_newer_responses(void **state)
{
    (void)state;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    const request_t *r = await_request(c, 1);
    /* A response in a newer schema version is not read: the client keeps waiting. covers: D-4.4a-1 */
    mutation_t newer = ok;
    newer.schema_version = TP_DRIVER_SCHEMA_VERSION + 1;
    fake_respond(r->correlation_id, &newer);
    run_for(c, 50);
    assert_false(tp_consumer_is_attached(c));
    assert_true(tp_client_conductor_messages_rejected(client->conductor) >= 1);
    /* The OK is taken; a later duplicate (OK with another lease, or a refusal) changes nothing.
     * covers: D-B.1-4, D-B.1-5 */
    fake_respond(r->correlation_id, &ok);
    until_attached(c);
    mutation_t other = ok;
    other.lease_id = 999;
    fake_respond(r->correlation_id, &other);
    mutation_t refused = { .code = TP_DRIVER_RESPONSE_CODE_REJECTED };
    fake_respond(r->correlation_id, &refused);
    run_for(c, 50);
    assert_true(tp_consumer_is_attached(c));
    assert_int_equal(tp_consumer_lease_id(c), ok.lease_id);
    assert_int_equal(fake.attach_requests, 1);
    tp_consumer_close(c);
}

static void test_revocations(void **state)
{
    (void)state;
    /* Two consumers of the stream in one client: their requests go out one at a time, with distinct non-zero
     * client ids. covers: D-4.8-3, D-4.8-5, D-B.2-1 */
    tp_consumer_t *a = NULL;
    tp_consumer_t *b = NULL;
    tp_assert_ok(tp_consumer_attach_async(&a, client, STREAM));
    tp_assert_ok(tp_consumer_attach_async(&b, client, STREAM));
    const request_t *ra = await_request(a, 1);
    run_for(b, 50);
    assert_int_equal(fake.attach_requests, 1); /* b waits for a's answer */
    request_t first = *ra;
    fake_respond(first.correlation_id, &ok);
    const request_t *rb = await_request(b, 2);
    assert_true(first.client_id != 0 && rb->client_id != 0 && first.client_id != rb->client_id);
    mutation_t second = ok;
    second.lease_id = 600;
    fake_respond(rb->correlation_id, &second);
    until_attached(a);
    until_attached(b);
    /* Unknown reason or role: rejected, not acted on. covers: D-4.9-10, D-4.9-11 */
    uint64_t rejected = tp_client_conductor_messages_rejected(client->conductor);
    fake_revoke(500, first.client_id, TP_DRIVER_ROLE_CONSUMER, 9);
    fake_revoke(500, first.client_id, 7, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED);
    run_for(a, 30);
    assert_true(tp_consumer_is_attached(a));
    assert_int_equal(tp_client_conductor_messages_rejected(client->conductor), rejected + 2);
    /* A's lease revoked (twice): a drops it and asks again, once; b keeps its lease.
     * covers: D-4.9-9, D-4.9-17, D-4.9-8s (per lease: b is not touched) */
    fake_revoke(500, first.client_id, TP_DRIVER_ROLE_CONSUMER, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED);
    fake_revoke(500, first.client_id, TP_DRIVER_ROLE_CONSUMER, TP_DRIVER_LEASE_REVOKE_REASON_REVOKED);
    const request_t *again = await_request(a, 3);
    assert_int_equal(again->client_id, first.client_id);
    assert_false(tp_consumer_is_attached(a));
    run_for(b, 30);
    assert_true(tp_consumer_is_attached(b));
    assert_int_equal(tp_consumer_lease_id(b), 600);
    mutation_t third = ok;
    third.lease_id = 700;
    fake_respond(again->correlation_id, &third);
    until_attached(a);
    /* The old lease's late revocation concerns nobody now. */
    fake_revoke(500, first.client_id, TP_DRIVER_ROLE_CONSUMER, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED);
    run_for(a, 30);
    assert_true(tp_consumer_is_attached(a));
    tp_consumer_counters_t k;
    tp_consumer_counters(a, &k);
    assert_int_equal(k.lease_losses, 1);
    assert_int_equal(fake.attach_requests, 3);
    tp_consumer_close(a);
    tp_consumer_close(b);
}

static void test_keepalives_and_expiry(void **state)
{
    (void)state;
    /* No expiry granted: keepalives at the configured 50 ms, the lease valid until revoked. covers: D-4.2-24 */
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    fake_respond(await_request(c, 1)->correlation_id, &ok);
    until_attached(c);
    int before = fake.keepalives;
    run_for(c, 400);
    assert_true(fake.keepalives - before >= 5);
    assert_true(tp_consumer_is_attached(c));
    tp_consumer_close(c);

    /* An expiry 300 ms out: keepalives at least every 100 ms while polled; not polled past the deadline, the
     * lease is over and the client asks again. covers: D-4.2-23, D-4.4-2 */
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    mutation_t expiring = ok;
    expiring.lease_id = 800;
    expiring.lease_expiry_ns = (uint64_t)(tp_clock_monotonic_ns() + 300 * TP_NS_PER_MS);
    const request_t *r = await_request(c, 2);
    fake_respond(r->correlation_id, &expiring);
    until_attached(c);
    before = fake.keepalives;
    run_for(c, 500);
    assert_true(fake.keepalives - before >= 5);
    assert_true(tp_consumer_is_attached(c));
    usleep(400 * 1000); /* the application stalls past the lease */
    await_request(c, 3);
    assert_false(tp_consumer_is_attached(c));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    tp_consumer_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protocol_errors_fail_closed, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_producer_never_creates_or_removes_files, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_newer_responses, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_revocations, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_keepalives_and_expiry, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
