/*
 * Per-consumer descriptor streams and rate-limited consumers (wire spec 5, 10.1.2, 10.1.3, 11; driver spec 11),
 * with an embedded driver:
 *  - granted: the consumer reads its descriptors on a stream of its own, the producer thins it to the
 *    consumer's max_rate_hz while the shared stream keeps every frame, and the stream closes when the consumer
 *    leaves or goes quiet (and opens again when it speaks again);
 *  - declined (no range configured): the consumer stays on the shared stream and gates itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tp_sbe_wire.h"
#include "tensorpool/tp_driver.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *pclient; /* the producer's */
static tp_client_t *cclient; /* the consumers' */

static int start(bool with_range)
{
    client_fixture_prepare(&F, "client-perconsumer");
    if (with_range)
    {
        tp_assert_ok(tp_driver_context_set(F.dctx, "driver.descriptor_stream_id_range", "31000-31009"));
        tp_assert_ok(tp_driver_context_set(F.dctx, "driver.control_stream_id_range", "32000-32009"));
    }
    client_fixture_add_stream(&F, "cam", STREAM, "small", 64, 4096);
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.qos_period_ms", "20")); /* hellos every 20 ms */
    tp_assert_ok(tp_client_connect(&pclient, F.cctx));
    tp_assert_ok(tp_client_connect(&cclient, F.cctx));
    return 0;
}

static int setup_with_range(void **state)
{
    (void)state;
    return start(true);
}

static int setup_without_range(void **state)
{
    (void)state;
    return start(false);
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(cclient));
    tp_assert_ok(tp_client_close(pclient));
    client_fixture_close(&F);
    return 0;
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)f;
    (*(int *)clientd)++;
}

static void offer(tp_producer_t *p, int count)
{
    uint8_t frame[32] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    for (int i = 0; i < count; i++)
    {
        assert_true(tp_producer_offer_frame(p, frame, sizeof(frame), &t, 0, 0) >= 0);
    }
}

/* Run both sides until cond() holds (bounded). */
#define RUN_UNTIL(cond, p, c1, n1, c2, n2)                                                                            \
    do                                                                                                                \
    {                                                                                                                 \
        int64_t deadline_ = tp_clock_monotonic_ns() + TIMEOUT_NS;                                                     \
        while (!(cond))                                                                                               \
        {                                                                                                             \
            assert_true(tp_clock_monotonic_ns() < deadline_);                                                         \
            tp_producer_do_work(p);                                                                                   \
            if ((c1) != NULL)                                                                                         \
            {                                                                                                         \
                tp_consumer_poll((c1), on_frame, (n1), 64);                                                           \
            }                                                                                                         \
            if ((c2) != NULL)                                                                                         \
            {                                                                                                         \
                tp_consumer_poll((c2), on_frame, (n2), 64);                                                           \
            }                                                                                                         \
            usleep(200);                                                                                              \
        }                                                                                                             \
    } while (0)

static void test_granted_stream_rate_capped_and_closed(void **state)
{
    (void)state;
    /* covers: W-5-1, W-5-2, W-5-3, W-5-5, W-5-6, W-10.1.2-1, W-10.1.2-4, W-11-3 */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.mode = TP_CONSUMER_RATE_LIMITED;
    o.max_rate_hz = 1;
    o.per_consumer_descriptors = true;
    tp_consumer_t *limited = NULL;
    tp_consumer_t *full = NULL;
    tp_assert_ok(tp_consumer_open(&limited, cclient, STREAM, &o, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&full, cclient, STREAM, TIMEOUT_NS));
    int n_limited = 0, n_full = 0;
    RUN_UNTIL(tp_consumer_descriptor_stream_id(limited) != 0 && tp_producer_consumer_streams(p) == 1, p, limited,
        &n_limited, full, &n_full);
    uint32_t own = tp_consumer_descriptor_stream_id(limited);
    assert_true(own >= 31000 && own <= 31009);
    assert_int_equal(tp_consumer_descriptor_stream_id(full), 0);
    /* A burst of 50 frames (far less than a second): the shared stream carries all of them, the rate-limited
     * consumer's own stream one (1 Hz). */
    offer(p, 50);
    RUN_UNTIL(n_full == 50 && n_limited == 1, p, limited, &n_limited, full, &n_full);
    tp_consumer_counters_t k;
    tp_consumer_counters(full, &k);
    assert_int_equal(k.frames, 50);
    assert_int_equal(k.drops_gap, 0);
    /* A second later the next frame goes through; what was thinned is not counted as lost. */
    usleep(1100 * 1000);
    offer(p, 1);
    RUN_UNTIL(n_limited == 2 && n_full == 51, p, limited, &n_limited, full, &n_full);
    tp_consumer_counters(limited, &k);
    assert_int_equal(k.frames, 2);
    assert_int_equal(k.drops_gap, 0);
    assert_int_equal(k.rate_limited, 49);
    /* The consumer leaves: its stream closes. */
    tp_consumer_close(limited);
    RUN_UNTIL(tp_producer_consumer_streams(p) == 0, p, NULL, NULL, full, &n_full);
    tp_consumer_close(full);
    tp_producer_close(p);
}

static void test_quiet_consumer_loses_its_stream(void **state)
{
    (void)state;
    /* covers: W-5-4, W-10.1.3-7 */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.per_consumer_descriptors = true;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    int n = 0;
    RUN_UNTIL(tp_producer_consumer_streams(p) == 1, p, c, &n, NULL, NULL);
    /* The consumer stops polling: no hellos for four periods (80 ms) and the producer closes the stream. */
    RUN_UNTIL(tp_producer_consumer_streams(p) == 0, p, NULL, NULL, NULL, NULL);
    /* It speaks again: the driver answers with the same stream (its lease still holds it) and frames flow. */
    RUN_UNTIL(tp_producer_consumer_streams(p) == 1, p, c, &n, NULL, NULL);
    offer(p, 3);
    RUN_UNTIL(n == 3, p, c, &n, NULL, NULL);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_declined_consumer_gates_itself(void **state)
{
    (void)state;
    /* covers: W-10.1.3-3, W-10.1.3-6, W-11-2 */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.mode = TP_CONSUMER_RATE_LIMITED;
    o.max_rate_hz = 1;
    o.per_consumer_descriptors = true;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    int n = 0;
    /* The driver has no range: it declines; the consumer stays on the shared stream. Let a few hellos go by. */
    int64_t until = tp_clock_monotonic_ns() + 100 * TP_NS_PER_MS;
    RUN_UNTIL(tp_clock_monotonic_ns() > until, p, c, &n, NULL, NULL);
    assert_int_equal(tp_consumer_descriptor_stream_id(c), 0);
    assert_int_equal(tp_producer_consumer_streams(p), 0);
    offer(p, 50);
    tp_consumer_counters_t k = { 0 };
    RUN_UNTIL((tp_consumer_counters(c, &k), k.frames + k.rate_limited == 50), p, c, &n, NULL, NULL);
    assert_int_equal(k.frames, 1);
    assert_int_equal(k.rate_limited, 49);
    assert_int_equal(k.drops_gap, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void record_times(void *clientd, const tp_frame_t *f)
{
    uint64_t *publish = clientd;
    publish[0]++;
    publish[1] |= f->publish_timestamp_ns; /* stays 0 if every descriptor's timestamp is null */
}

static void test_gate_on_capture_time_without_publish_time(void **state)
{
    (void)state;
    /* A producer that leaves FrameDescriptor.timestamp_ns null; a consumer gating itself at 10 Hz on the shared
     * stream. Ten frames offered at once but captured 50 ms apart: gated on the slot's capture time, every other
     * one passes (the local clock would let one through, and so would the publish time).
     * covers: W-11-4s, W-10.2.1-5s */
    tp_producer_options_t po;
    tp_producer_options_init(&po);
    po.omit_publish_time = true;
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_open(&p, pclient, STREAM, &po, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.mode = TP_CONSUMER_RATE_LIMITED;
    o.max_rate_hz = 10;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    uint8_t frame[32] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    uint64_t capture = (uint64_t)tp_clock_monotonic_ns();
    for (int i = 0; i < 10; i++)
    {
        assert_true(tp_producer_offer_frame_at(p, frame, sizeof(frame), &t, 0, 0,
                        capture + (uint64_t)i * 50 * TP_NS_PER_MS) >= 0);
    }
    uint64_t seen[2] = { 0, 0 };
    tp_consumer_counters_t k = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while ((tp_consumer_counters(c, &k), k.frames + k.rate_limited < 10))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        tp_consumer_poll(c, record_times, seen, 64);
    }
    assert_int_equal(k.frames, 5);
    assert_int_equal(k.rate_limited, 5);
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 0); /* no descriptor carried a publish time */
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void count_progress(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_WIRE_SCHEMA_ID &&
        h.template_id == TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID)
    {
        (*(int *)clientd)++;
    }
}

static void on_progress(void *clientd, const tp_progress_t *p)
{
    (void)p;
    (*(int *)clientd)++;
}

static void test_progress_on_a_control_stream_of_its_own(void **state)
{
    (void)state;
    /* covers: W-5-8, W-5-9, W-5-10, W-10.1.2-7 */
    tp_bus_t *bus = NULL;
    tp_bus_subscription_t *shared = NULL;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    tp_assert_ok(tp_bus_subscription_open(&shared, bus, "aeron:ipc?term-length=4m", 1000, NULL, NULL, NULL));
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.per_consumer_control = true;
    o.supports_progress = true;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    int reports = 0, frames = 0;
    tp_consumer_set_progress_handler(c, on_progress, &reports);
    RUN_UNTIL(tp_consumer_control_stream_id(c) != 0, p, c, &frames, NULL, NULL);
    uint32_t own = tp_consumer_control_stream_id(c);
    assert_true(own >= 32000 && own <= 32009);
    assert_int_equal(tp_consumer_descriptor_stream_id(c), 0); /* it asked for a control stream only */
    /* Let the producer take in the grant and the hello before the frame starts. */
    int64_t until = tp_clock_monotonic_ns() + 60 * TP_NS_PER_MS;
    RUN_UNTIL(tp_clock_monotonic_ns() > until, p, c, &frames, NULL, NULL);
    int shared_progress = 0;
    while (tp_bus_poll(shared, count_progress, &shared_progress, 64) > 0)
    {
    }
    shared_progress = 0;
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, 4000);
    tp_claim_t claim;
    tp_assert_ok(tp_producer_try_claim_by_size(p, 4000, &claim));
    tp_assert_ok(tp_producer_describe(p, &claim, 4000, &t, 0));
    assert_int_equal(tp_producer_progress(p, &claim, 1000), 1); /* STARTED */
    assert_true(tp_producer_commit(p, &claim, 4000, &t, 0, 0) >= 0); /* COMPLETE, then the descriptor */
    RUN_UNTIL(reports == 2 && frames == 1, p, c, &frames, NULL, NULL);
    /* Its progress went to its own control stream; none to the shared one, which still carries the rest. */
    while (tp_bus_poll(shared, count_progress, &shared_progress, 64) > 0)
    {
    }
    assert_int_equal(shared_progress, 0);
    assert_true(tp_consumer_is_attached(c)); /* keepalives and hellos still go over the shared control stream */
    tp_consumer_close(c);
    tp_producer_close(p);
    tp_bus_subscription_close(shared);
    tp_bus_close(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_granted_stream_rate_capped_and_closed, setup_with_range, teardown),
        cmocka_unit_test_setup_teardown(test_quiet_consumer_loses_its_stream, setup_with_range, teardown),
        cmocka_unit_test_setup_teardown(test_progress_on_a_control_stream_of_its_own, setup_with_range, teardown),
        cmocka_unit_test_setup_teardown(test_declined_consumer_gates_itself, setup_without_range, teardown),
        cmocka_unit_test_setup_teardown(test_gate_on_capture_time_without_publish_time, setup_without_range,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
