/*
 * Producer and consumer lives through an embedded driver: one producer per stream, closing in any order (the client
 * first too), revoked leases and a restarted driver attached again by themselves, runner threads, and the client
 * context's errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tp_client_frames.h"
#include "tp_malloc_count.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

static void test_exclusive_producer_and_close_order(void **state)
{
    (void)state;
    tp_producer_t *p = NULL;
    tp_producer_t *second = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_fails_with(tp_producer_attach(&second, client, STREAM, TIMEOUT_NS), "already has a producer");
    assert_null(second);
    tp_consumer_t *c = NULL;
    tp_assert_fails_with(tp_consumer_attach(&c, client, 4242, TIMEOUT_NS), "not provisioned");
    assert_null(c);
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    tp_producer_close(p);
    /* Detached: another producer may take the stream now, in a new epoch. The consumer's first descriptor of that
     * epoch makes it map the new regions before reading: it gets the frame, never one of the old epoch's slots.
     * covers: W-10.2.1-8, W-15.21-11, W-15.18-4, W-15.21-9 (the descriptor's epoch is the slot validation that
     * says remap: nothing of the old mapping is read, it is unmapped and the new epoch mapped) */
    tp_assert_ok(tp_producer_attach(&second, client, STREAM, TIMEOUT_NS));
    uint64_t old_epoch = tp_consumer_epoch(c);
    assert_true(tp_producer_epoch(second) > old_epoch);
    uint8_t buf[100];
    make_payload(buf, sizeof(buf), 0);
    int64_t seq = tp_producer_offer_frame(second, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    assert_true(seq >= 0);
    seen_t s = { 0 };
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    assert_int_equal(s.epoch, tp_producer_epoch(second));
    assert_int_equal(s.last_seq, (uint64_t)seq);
    assert_int_equal(tp_consumer_epoch(c), tp_producer_epoch(second));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.remaps, 1);
    assert_int_equal(k.frames, 1);
    assert_int_equal(s.bad, 0);
    tp_consumer_close(c);
    tp_producer_close(second);
}

static void test_client_closed_first(void **state)
{
    (void)state;
    /* Close in any order: the client first, its producer and consumer still work, the last close frees it (ASan
     * checks that nothing leaks and nothing is used after being freed). */
    tp_client_t *other = NULL;
    tp_assert_ok(tp_client_connect(&other, F.cctx));
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, other, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, other, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_client_close(other));
    uint8_t buf[100];
    make_payload(buf, sizeof(buf), 0);
    assert_int_equal(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0), 0);
    seen_t s = { 0 };
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    assert_int_equal(s.bad, 0);
    tp_assert_ok(tp_consumer_close(c));
    tp_assert_ok(tp_producer_close(p)); /* frees the client */
}

/* Offer a frame now and then, polling the consumer, until it delivers one of the producer's current epoch. */
static void until_frame_of_current_epoch(tp_producer_t *p, tp_consumer_t *c, seen_t *s)
{
    uint8_t buf[100];
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    for (uint64_t i = 0;; i++)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        if (tp_producer_is_attached(p) && i % 16 == 0)
        {
            make_payload(buf, sizeof(buf), i);
            tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
        }
        tp_consumer_poll(c, on_frame, s, 16);
        if (s->frames > 0 && tp_producer_is_attached(p) && s->epoch == tp_producer_epoch(p))
        {
            return;
        }
        usleep(1000);
    }
}

static void test_revoked_leases_attach_again(void **state)
{
    (void)state;
    /* covers: D-4.9-6, D-4.9-7, D-6-5, D-4.7-1, D-4.7-2 */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    seen_t s = { 0 };
    until_frame_of_current_epoch(p, c, &s);
    uint64_t epoch = tp_producer_epoch(p);
    uint64_t producer_lease = tp_producer_lease_id(p);
    uint64_t last_seq = s.last_seq;
    /* The operator revokes the producer: it stops, attaches again (a new epoch), and the consumer follows. */
    tp_assert_ok(tp_driver_revoke_lease(F.driver, producer_lease));
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (tp_producer_epoch(p) == epoch)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        usleep(1000);
    }
    memset(&s, 0, sizeof(s));
    until_frame_of_current_epoch(p, c, &s);
    assert_true(tp_producer_epoch(p) > epoch);
    assert_true(tp_producer_lease_id(p) != producer_lease);
    assert_true(s.last_seq > last_seq); /* sequences keep increasing across epochs */
    assert_int_equal(s.bad, 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.remaps, 1);
    assert_int_equal(k.lease_losses, 0);
    /* Now the consumer's own lease: dropped at once, attached again, frames flow on. */
    uint64_t consumer_lease = tp_consumer_lease_id(c);
    tp_assert_ok(tp_driver_revoke_lease(F.driver, consumer_lease));
    deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (tp_consumer_lease_id(c) == consumer_lease || tp_consumer_lease_id(c) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 16);
        tp_producer_do_work(p);
        usleep(1000);
    }
    memset(&s, 0, sizeof(s));
    until_frame_of_current_epoch(p, c, &s);
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    assert_int_equal(k.remaps, 2);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_driver_restart(void **state)
{
    (void)state;
    /* covers: D-4.13-9, D-10-1, D-10-2 */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    seen_t s = { 0 };
    until_frame_of_current_epoch(p, c, &s);
    uint64_t epoch = tp_producer_epoch(p);
    tp_driver_close(F.driver); /* ShmDriverShutdown */
    F.driver = NULL;
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (tp_producer_is_attached(p))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
    }
    uint8_t buf[100];
    make_payload(buf, sizeof(buf), 0);
    /* No lease: a sentinel, not an error (nothing formatted: the error record is untouched). */
    tp_err_clear();
    assert_int_equal(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0),
        TP_PRODUCER_NOT_ATTACHED);
    tp_claim_t claim;
    assert_int_equal(tp_producer_try_claim_by_size(p, sizeof(buf), &claim), TP_PRODUCER_NOT_ATTACHED);
    assert_int_equal(tp_errcode(), 0);
    tp_assert_ok(tp_driver_init(&F.driver, F.dctx));
    tp_assert_ok(tp_driver_start(F.driver));
    memset(&s, 0, sizeof(s));
    until_frame_of_current_epoch(p, c, &s);
    assert_true(tp_producer_epoch(p) > epoch);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    assert_int_equal(s.bad, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

typedef struct runner_state
{
    uint64_t offered;
    uint8_t payload[100];
    int last_seq_plus_one; /* atomic: the consumer thread writes, the test thread reads */
    uint64_t bad;
} runner_state_t;

static int produce_1000(void *clientd, tp_producer_t *p)
{
    runner_state_t *r = clientd;
    if (r->offered == 1000)
    {
        return 0;
    }
    make_payload(r->payload, sizeof(r->payload), r->offered);
    if (tp_producer_offer_frame(p, r->payload, sizeof(r->payload), tensor_of(sizeof(r->payload)), 0, 0) < 0)
    {
        return 0;
    }
    r->offered++;
    return 1;
}

static void on_runner_frame(void *clientd, const tp_frame_t *f)
{
    runner_state_t *r = clientd;
    uint8_t copy[100];
    if (tp_frame_copy_out(f, copy, sizeof(copy)) == 0)
    {
        r->bad += !payload_ok(copy, f->payload_length);
    }
    __atomic_store_n(&r->last_seq_plus_one, (int)f->seq + 1, __ATOMIC_RELEASE);
}

static void test_runner_threads(void **state)
{
    (void)state;
    /* A producer and a consumer, each with its own client, each on a runner thread. */
    tp_client_t *other = NULL;
    tp_assert_ok(tp_client_connect(&other, F.cctx));
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, other, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    runner_state_t produced = { 0 };
    runner_state_t consumed = { 0 };
    tp_agent_t pa, ca;
    tp_producer_agent(&pa, p, produce_1000, &produced);
    tp_consumer_agent(&ca, c, on_runner_frame, &consumed);
    tp_idle_strategy_t idle;
    tp_idle_backoff(&idle, 0, 0, 0, 0);
    tp_agent_runner_t *pr = NULL;
    tp_agent_runner_t *cr = NULL;
    tp_assert_ok(tp_agent_runner_init(&cr, &ca, &idle));
    tp_assert_ok(tp_agent_runner_init(&pr, &pa, &idle));
    tp_assert_ok(tp_agent_runner_start(cr));
    tp_assert_ok(tp_agent_runner_start(pr));
    /* The last frame is never overwritten, so the consumer gets it whatever it dropped before. */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (__atomic_load_n(&consumed.last_seq_plus_one, __ATOMIC_ACQUIRE) != 1000)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(1000);
    }
    tp_assert_ok(tp_agent_runner_close(pr));
    tp_assert_ok(tp_agent_runner_close(cr));
    assert_int_equal(produced.offered, 1000);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames + k.drops_gap + k.drops_late, 1000);
    assert_int_equal(consumed.bad, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
    tp_assert_ok(tp_client_close(other));
}

static void test_context_errors(void **state)
{
    (void)state;
    tp_client_context_t *ctx = NULL;
    tp_assert_ok(tp_client_context_init(&ctx));
    tp_assert_fails_with(tp_client_context_set(ctx, "client.nope", "1"), "unknown client setting");
    tp_assert_fails_with(tp_client_context_set(ctx, "client.control_stream_id", "x"), "control_stream_id");
    tp_assert_ok(tp_client_context_set(ctx, "client.allowed_base_dirs", "/nonexistent-tp-dir"));
    tp_client_t *cl = NULL;
    tp_assert_fails_with(tp_client_connect(&cl, ctx), "/nonexistent-tp-dir");
    assert_null(cl);
    tp_client_context_close(ctx);
}

static int setup_dynamic(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-dynamic");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 8, 4096);
    tp_assert_ok(tp_driver_context_set(F.dctx, "policies.allow_dynamic_streams", "true"));
    tp_assert_ok(tp_driver_context_set(F.dctx, "driver.stream_id_range", "20000-20009"));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static void test_producer_creates_a_dynamic_stream(void **state)
{
    (void)state;
    /* A producer asked for REQUIRE_EXISTING only: a stream of the dynamic range could not be created from C. */
    tp_producer_t *p = NULL;
    tp_assert_fails_with(tp_producer_open(&p, client, 20005, NULL, TIMEOUT_NS), "stream 20005 is not provisioned");
    tp_producer_options_t o;
    tp_producer_options_init(&o);
    assert_false(o.create_stream);
    o.create_stream = true;
    tp_assert_ok(tp_producer_open(&p, client, 20005, &o, TIMEOUT_NS));
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, 20005, TIMEOUT_NS));
    seen_t s = { 0 };
    uint8_t buf[100];
    make_payload(buf, sizeof(buf), 0);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (s.frames == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
        tp_consumer_poll(c, on_frame, &s, 16);
    }
    assert_int_equal(s.bad, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exclusive_producer_and_close_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_closed_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_leases_attach_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runner_threads, setup, teardown),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test_setup_teardown(test_producer_creates_a_dynamic_stream, setup_dynamic, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
