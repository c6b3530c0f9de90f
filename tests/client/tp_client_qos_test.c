/*
 * QoS (wire spec 10.4) with an embedded driver: producers and consumers report by themselves every QoS period;
 * the monitor's view of a consumer matches exactly what the consumer counted (gaps from a lapped ring, late drops
 * from a slot overwritten during the callback), producers report their newest sequence, rates follow, and a party
 * that went away turns stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_qos.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-qos");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 8, 4096);
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.qos_period_ms", "20"));
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

typedef struct lapper
{
    tp_producer_t *p; /* when set, the handler offers 8 frames, overwriting the slot it reads */
    int frames;
} lapper_t;

static int64_t offer(tp_producer_t *p)
{
    uint8_t frame[64] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    return tp_producer_offer_frame(p, frame, sizeof(frame), &t, 0, 0);
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)f;
    lapper_t *l = clientd;
    l->frames++;
    for (int i = 0; l->p != NULL && i < 8; i++)
    {
        offer(l->p);
    }
}

/* Until the monitor holds a report of consumer `consumer_id` (0: any) with exactly these counts. */
static void await_consumer_report(tp_qos_monitor_t *m, tp_consumer_t *c, tp_producer_t *p, uint32_t consumer_id,
    const tp_consumer_counters_t *k, uint64_t last_seq, tp_qos_consumer_view_t *out)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    for (;;)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        lapper_t idle = { 0 };
        tp_consumer_poll(c, on_frame, &idle, 16); /* sends QoS when due; no frames are pending */
        tp_producer_do_work(p);
        tp_qos_monitor_poll(m, 64);
        tp_qos_consumer_view_t views[8];
        size_t n = tp_qos_monitor_consumers(m, views, 8);
        for (size_t i = 0; i < n && i < 8; i++)
        {
            if ((consumer_id == 0 || views[i].consumer_id == consumer_id) && views[i].drops_gap == k->drops_gap &&
                views[i].drops_late == k->drops_late && views[i].last_seq_seen == last_seq)
            {
                *out = views[i];
                return;
            }
        }
        usleep(1000);
    }
}

static void test_reports_match_the_counters(void **state)
{
    (void)state;
    /* covers: W-10.4.1-1, W-10.4.2-1 */
    tp_qos_monitor_t *m = NULL;
    tp_assert_ok(tp_qos_monitor_open(&m, client, 0));
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    /* 20 frames into 8 slots before the consumer reads: 12 gaps. */
    for (int i = 0; i < 20; i++)
    {
        assert_true(offer(p) >= 0);
    }
    lapper_t l = { 0 };
    while (tp_consumer_poll(c, on_frame, &l, 64) > 0)
    {
    }
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.drops_gap, 12);
    tp_qos_consumer_view_t v;
    await_consumer_report(m, c, p, 0, &k, 19, &v);
    assert_int_equal(v.stream_id, STREAM);
    assert_int_equal(v.epoch, tp_consumer_epoch(c));
    assert_int_equal(v.mode, 1);
    assert_false(v.is_stale);
    /* Late drops: the slot is overwritten while the callback reads it. */
    l.p = p;
    assert_true(offer(p) >= 0); /* seq 20 */
    assert_int_equal(tp_consumer_poll(c, on_frame, &l, 1), 1);
    l.p = NULL;
    while (tp_consumer_poll(c, on_frame, &l, 64) > 0)
    {
    }
    tp_consumer_counters(c, &k);
    assert_true(k.drops_late >= 1);
    await_consumer_report(m, c, p, v.consumer_id, &k, 28, &v);
    assert_int_equal(v.drops_gap, k.drops_gap);
    assert_int_equal(v.drops_late, k.drops_late);
    /* The producer reports its newest sequence; a rate follows once frames flow between two reports. */
    tp_qos_producer_view_t pv = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        offer(p);
        tp_producer_do_work(p);
        tp_qos_monitor_poll(m, 64);
        usleep(1000);
    } while (tp_qos_monitor_producers(m, &pv, 1) == 0 || pv.seq_rate_hz <= 0);
    assert_int_equal(pv.stream_id, STREAM);
    assert_int_equal(pv.epoch, tp_producer_epoch(p));
    assert_true(pv.current_seq >= 28);
    assert_true(pv.reports >= 2);
    /* The stream's drops add up its consumers' latest reports. */
    uint64_t gap = 0, late = 0;
    tp_qos_monitor_stream_drops(m, STREAM, &gap, &late);
    assert_int_equal(gap, v.drops_gap);
    assert_int_equal(late, v.drops_late);
    /* A consumer that stops reporting turns stale after three periods. */
    tp_consumer_close(c);
    deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    tp_qos_consumer_view_t views[4];
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        tp_qos_monitor_poll(m, 64);
        usleep(5000);
    } while (tp_qos_monitor_consumers(m, views, 4) != 1 || !views[0].is_stale);
    tp_qos_monitor_stream_drops(m, STREAM, &gap, &late);
    assert_int_equal(gap + late, 0); /* stale reports no longer count */
    assert_int_equal(tp_qos_monitor_producers(m, &pv, 1), 1);
    assert_false(pv.is_stale);
    tp_producer_close(p);
    tp_qos_monitor_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reports_match_the_counters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
