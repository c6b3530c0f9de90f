/*
 * How a client recovers, against the fake driver (tp_fake_driver.h): an unanswered attach resent with backoff, a
 * keepalive that cannot be sent, a producer revocation whose epoch-bumped announce never comes, an automatic client
 * id that is taken, and correlation ids that do not repeat across runs (driver spec 4.2, 4.4, 4.9, B).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_atomic.h"
#include "bus/tp_bus_ipc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_driver.h"
#include "tp_fake_driver.h"
#include "tp_sbe_driver.h"
#include "tp_test_util.h"

static int64_t fake_now_ns;

static int64_t fake_clock(void *clientd)
{
    (void)clientd;
    return tp_load_acquire_i64(&fake_now_ns);
}

static void fake_advance(int64_t ns)
{
    tp_store_release_i64(&fake_now_ns, tp_load_acquire_i64(&fake_now_ns) + ns);
}

static void start_fake_clock(void)
{
    tp_store_release_i64(&fake_now_ns, tp_clock_monotonic_ns());
}

/* Poll the consumer and the fake a few times without moving the fake clock. */
static void spin(tp_consumer_t *c)
{
    for (int i = 0; i < 20; i++)
    {
        tp_consumer_poll(c, on_frame, NULL, 16);
        fake_poll();
        usleep(100);
    }
}

static void test_attach_resends_back_off(void **state)
{
    (void)state;
    /* The driver never answers: the same request goes out again after 100 ms, then 200, 400, 800, and every second
     * from then on, on the client's clock. covers: D-4.2-6s */
    fake_teardown(NULL);
    start_fake_clock();
    fake_setup_with(NULL, NULL, fake_clock);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    await_request(c, 1);
    spin(c);
    assert_int_equal(fake.attach_messages, 1);
    const int64_t gaps_ms[] = { 100, 200, 400, 800, 1000, 1000 };
    for (size_t i = 0; i < sizeof(gaps_ms) / sizeof(gaps_ms[0]); i++)
    {
        fake_advance(gaps_ms[i] * TP_NS_PER_MS - 1);
        spin(c);
        assert_int_equal(fake.attach_messages, (int)i + 1); /* not a nanosecond early */
        fake_advance(1);
        spin(c);
        assert_int_equal(fake.attach_messages, (int)i + 2);
    }
    assert_int_equal(fake.attach_requests, 1); /* all under one correlation id */
    tp_consumer_close(c);
}

static void test_keepalive_send_failure_reattaches(void **state)
{
    (void)state;
    /* The control stream's registry says nobody subscribes any more (as when the bus is lost): the next keepalive
     * cannot be sent, the client gives the lease up at once, and attaches again once the stream is back.
     * covers: D-4.4-7s */
    fake_teardown(NULL);
    start_fake_clock();
    fake_setup_with(NULL, NULL, fake_clock);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    fake_respond(await_request(c, 1)->correlation_id, &ok);
    until_attached(c);
    fake_advance(50 * TP_NS_PER_MS);
    spin(c);
    assert_true(tp_consumer_is_attached(c)); /* keepalives go out */
    tp_bus_registry_map_t reg;
    tp_assert_ok(tp_bus_registry_open(&reg, bus_dir, FAKE_CONTROL, 0700, 0600, TP_BUS_REGISTRY_SLOTS_DEFAULT));
    uint32_t subscribers = tp_load_acquire_u32(&reg.reg->subscriber_count);
    tp_store_release_u32(&reg.reg->subscriber_count, 0);
    fake_advance(50 * TP_NS_PER_MS);
    spin(c); /* the keepalive is due and fails: the lease is given up */
    assert_false(tp_consumer_is_attached(c));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    tp_store_release_u32(&reg.reg->subscriber_count, subscribers);
    tp_bus_registry_close(&reg);
    /* The client's new attach request arrives (after its backoff). */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (fake.attach_requests < 2)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        fake_advance(10 * TP_NS_PER_MS);
        spin(c);
    }
    tp_consumer_close(c);
}

static void test_producer_revocation_waits_for_a_newer_epoch(void **state)
{
    (void)state;
    /* The producer's lease is revoked; the consumer keeps its mapping and waits for the announce of a newer epoch
     * of its stream, at most three announce periods (3 x 300 ms): announces of the same epoch or of another stream
     * do not end the wait. Then it unmaps, tells the driver, and attaches again after its backoff.
     * covers: D-4.9-13s, D-4.9-14s, D-4.9-15s */
    fake_teardown(NULL);
    const char *const driver_settings[] = { "policies.announce_period_ms=100", NULL };
    const char *const client_settings[] = { "client.announce_period_ms=300", NULL };
    fake_setup_with(driver_settings, client_settings, NULL);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    fake_respond(await_request(c, 1)->correlation_id, &ok);
    until_attached(c);
    int64_t revoked_ns = tp_clock_monotonic_ns();
    fake_revoke(901, 4242, TP_DRIVER_ROLE_PRODUCER, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED);
    fake_announce(STREAM, real.epoch);         /* not above the epoch we know */
    fake_announce(STREAM + 1, real.epoch + 5); /* another stream's */
    run_for(c, 100);
    assert_true(tp_consumer_is_attached(c)); /* still waiting, still mapped */
    assert_int_equal(fake.detach_requests, 0);
    await_request(c, 2);
    assert_true(tp_clock_monotonic_ns() - revoked_ns >= 900 * TP_NS_PER_MS);
    assert_int_equal(fake.detach_requests, 1);
    assert_false(tp_consumer_is_attached(c));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 0); /* our own lease was never revoked */
    tp_consumer_close(c);
}

static void test_taken_client_id_is_replaced(void **state)
{
    (void)state;
    /* An automatic clientId refused as taken: the next request (after the backoff) carries another one; any other
     * refusal keeps the id. covers: D-B.2-2s */
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    request_t first = *await_request(c, 1);
    mutation_t other = { .code = TP_DRIVER_RESPONSE_CODE_REJECTED, .error_message = "stream is busy" };
    fake_respond(first.correlation_id, &other);
    request_t second = *await_request(c, 2);
    assert_int_equal(second.client_id, first.client_id);
    mutation_t taken = { .code = TP_DRIVER_RESPONSE_CODE_REJECTED, .error_message = TP_DRIVER_CLIENT_ID_IN_USE };
    fake_respond(second.correlation_id, &taken);
    request_t third = *await_request(c, 3);
    assert_true(third.client_id != 0 && third.client_id != first.client_id);
    fake_respond(third.correlation_id, &ok);
    until_attached(c);
    tp_consumer_close(c);
}

static void test_configured_client_id_is_kept(void **state)
{
    (void)state;
    /* A clientId the application configured is never changed behind its back. */
    fake_teardown(NULL);
    const char *const settings[] = { "client.client_id=777", NULL };
    fake_setup_with(NULL, settings, NULL);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    request_t first = *await_request(c, 1);
    assert_int_equal(first.client_id, 777);
    mutation_t taken = { .code = TP_DRIVER_RESPONSE_CODE_REJECTED, .error_message = TP_DRIVER_CLIENT_ID_IN_USE };
    fake_respond(first.correlation_id, &taken);
    assert_int_equal(await_request(c, 2)->client_id, 777);
    tp_consumer_close(c);
}

static void test_correlation_ids_start_at_random(void **state)
{
    (void)state;
    /* Two proxies (as two runs of a program would) start their correlation ids at different random points, far
     * from 0, so a stale response of an earlier run does not match a new request. covers: D-B.1-2s */
    tp_driver_proxy_t *a = NULL;
    tp_driver_proxy_t *b = NULL;
    tp_assert_ok(tp_driver_proxy_open(&a, bus, "aeron:ipc?term-length=4m", 3000));
    tp_assert_ok(tp_driver_proxy_open(&b, bus, "aeron:ipc?term-length=4m", 3000));
    int64_t ia = tp_driver_proxy_next_correlation_id(a);
    int64_t ib = tp_driver_proxy_next_correlation_id(b);
    assert_true(ia != ib);
    assert_true(ia > (1 << 24) || ib > (1 << 24)); /* both near the bottom: 1 in 2^14 */
    tp_driver_proxy_close(b);
    tp_driver_proxy_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_attach_resends_back_off, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_send_failure_reattaches, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_producer_revocation_waits_for_a_newer_epoch, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_taken_client_id_is_replaced, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_configured_client_id_is_kept, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_correlation_ids_start_at_random, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
