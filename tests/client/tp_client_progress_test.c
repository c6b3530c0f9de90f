/*
 * Frame progress (wire spec 10.2.2) with an embedded driver: a producer filling a large frame in steps reports
 * STARTED, throttled PROGRESS and COMPLETE to a consumer that follows progress, which sees the written prefix
 * (whole rows when progress counts rows, nothing when the layout makes a prefix meaningless); nothing is sent
 * when no consumer follows; the producer refuses reports past the length or backwards; injected reports that
 * break a rule are dropped, and progress never stands in for the FrameDescriptor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_wire.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)
#define FRAME_BYTES 200000u

static client_fixture_t F;
static tp_client_t *pclient;
static tp_client_t *cclient;

/* The driver and both clients run on a clock the test advances: the progress throttle is exact, not a race
 * between a sleep and a floor. */
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

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-progress");
    client_fixture_add_stream(&F, "cam", STREAM, "big", 8, 262144);
    tp_store_release_i64(&fake_now_ns, tp_clock_monotonic_ns());
    tp_assert_ok(tp_driver_context_set_clock(F.dctx, fake_clock, NULL));
    tp_assert_ok(tp_client_context_set_clock(F.cctx, fake_clock, NULL));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.qos_period_ms", "20"));
    tp_assert_ok(tp_client_connect(&pclient, F.cctx));
    tp_assert_ok(tp_client_connect(&cclient, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(cclient));
    tp_assert_ok(tp_client_close(pclient));
    client_fixture_close(&F);
    return 0;
}

typedef struct watch
{
    int reports;
    uint8_t states[16];
    uint64_t bytes[16];
    uint64_t prefix_bytes[16];
    int bad_prefix;
    int frames;
} watch_t;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 13 + 5);
}

static void on_progress(void *clientd, const tp_progress_t *p)
{
    watch_t *w = clientd;
    if (w->reports < 16)
    {
        w->states[w->reports] = p->state;
        w->bytes[w->reports] = p->bytes_filled;
        w->prefix_bytes[w->reports] = p->prefix_bytes;
    }
    w->reports++;
    for (uint64_t i = 0; p->prefix != NULL && i < p->prefix_bytes; i += 997)
    {
        w->bad_prefix += p->prefix[i] != pattern((size_t)i);
    }
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)f;
    ((watch_t *)clientd)->frames++;
}

static void poll_for(tp_producer_t *p, tp_consumer_t *c, watch_t *w, int ms)
{
    int64_t end = tp_clock_monotonic_ns() + ms * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < end)
    {
        tp_producer_do_work(p);
        tp_consumer_poll(c, on_frame, w, 16);
        usleep(200);
    }
}

static void test_progress_of_a_large_frame(void **state)
{
    (void)state;
    /* covers: W-10.2.2-1, W-10.2.2-2, W-10.2.2-4, W-10.2.2-6, W-10.2.2-7, W-10.2.2-12, W-10.2.2-10 */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_t *plain = NULL;
    tp_assert_ok(tp_consumer_attach(&plain, cclient, STREAM, TIMEOUT_NS));
    watch_t wp = { 0 };
    tp_consumer_set_progress_handler(plain, on_progress, &wp); /* not opted in: never called */
    poll_for(p, plain, &wp, 60);
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, FRAME_BYTES);
    tp_claim_t claim;
    /* Nobody follows progress yet: nothing is sent. covers: W-10.2.2-15s */
    tp_assert_ok(tp_producer_try_claim_by_size(p, FRAME_BYTES, &claim));
    tp_assert_ok(tp_producer_describe(p, &claim, FRAME_BYTES, &t, 0));
    assert_int_equal(tp_producer_progress(p, &claim, 1000), 0);
    tp_assert_ok(tp_producer_abort(p, &claim));

    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.supports_progress = true;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    watch_t w = { 0 };
    tp_consumer_set_progress_handler(c, on_progress, &w);
    poll_for(p, c, &w, 80); /* its hello reaches the producer */

    tp_assert_ok(tp_producer_try_claim_by_size(p, FRAME_BYTES, &claim));
    tp_assert_ok(tp_producer_describe(p, &claim, FRAME_BYTES, &t, 0));
    int sent = 0;
    for (uint32_t filled = 20000; filled <= FRAME_BYTES; filled += 20000)
    {
        for (uint32_t i = filled - 20000; i < filled; i++)
        {
            claim.buffer[i] = pattern(i);
        }
        fake_advance(300 * TP_NS_PER_US); /* longer than the 250 us floor */
        int rc = tp_producer_progress(p, &claim, filled);
        assert_true(rc >= 0);
        sent += rc;
        poll_for(p, c, &w, 2);
    }
    /* Producer-side rules: not past the length, not backwards. */
    tp_assert_fails_with(tp_producer_progress(p, &claim, FRAME_BYTES + 1), "the frame has 200000");
    tp_assert_fails_with(tp_producer_progress(p, &claim, 1000), "were reported already");
    /* STARTED at 20000, then PROGRESS only 64 KiB or more further on: 100000 and 180000. */
    assert_int_equal(sent, 3);
    poll_for(p, c, &w, 10);
    assert_int_equal(w.reports, 3);
    assert_int_equal(w.frames, 0); /* progress is not a frame */
    assert_true(tp_producer_commit(p, &claim, FRAME_BYTES, &t, 0, 0) >= 0);
    poll_for(p, c, &w, 20);
    assert_int_equal(w.reports, 4);
    const uint8_t states[4] = { TP_PROGRESS_STARTED, TP_PROGRESS_PROGRESS, TP_PROGRESS_PROGRESS, TP_PROGRESS_COMPLETE };
    const uint64_t bytes[4] = { 20000, 100000, 180000, FRAME_BYTES };
    for (int i = 0; i < 4; i++)
    {
        assert_int_equal(w.states[i], states[i]);
        assert_int_equal(w.bytes[i], bytes[i]);
        assert_int_equal(w.prefix_bytes[i], bytes[i]); /* contiguous: the whole prefix */
    }
    assert_int_equal(w.bad_prefix, 0);
    assert_int_equal(w.frames, 1); /* the FrameDescriptor, after COMPLETE */
    assert_int_equal(wp.reports, 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.progress, 4);
    assert_int_equal(k.progress_dropped, 0);
    tp_consumer_close(c);
    tp_consumer_close(plain);
    tp_producer_close(p);
}

/* ---- injected reports ---- */

static tp_bus_t *inject_bus;
static tp_bus_publication_t *inject_pub;

static void inject(uint64_t epoch, uint64_t seq, uint64_t bytes, uint8_t state_)
{
    uint8_t buf[128];
    tp_wire_frame_progress_enc_t e;
    tp_wire_frame_progress_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_progress_set_stream_id(&e, STREAM);
    tp_wire_frame_progress_set_epoch(&e, epoch);
    tp_wire_frame_progress_set_seq(&e, seq);
    tp_wire_frame_progress_set_payload_bytes_filled(&e, bytes);
    tp_wire_frame_progress_set_state(&e, state_);
    int64_t n = tp_wire_frame_progress_enc_finish(&e);
    assert_true(n > 0 && tp_bus_offer(inject_pub, buf, (size_t)n) > 0);
}

static void test_rules_and_prefixes(void **state)
{
    (void)state;
    /* covers: W-10.2.2-3, W-10.2.2-5, W-10.2.2-8, W-10.2.2-9, W-10.2.2-11, W-8.2-8, R-6.1-4, B-9-12 (progress for a
     * seq the slot does not hold is dropped; COMPLETE is not a frame, on any stream: a rate limiter's or a bridge's
     * destination is read by this same consumer) */
    tp_assert_ok(tp_bus_init(&inject_bus, F.bus));
    tp_assert_ok(tp_bus_publication_open(&inject_pub, inject_bus, "aeron:ipc?term-length=4m", 1000, false));
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.supports_progress = true;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    watch_t w = { 0 };
    tp_consumer_set_progress_handler(c, on_progress, &w);
    uint64_t epoch = tp_producer_epoch(p);
    /* A 100-row x 1000-byte image whose progress counts rows: prefixes are whole rows. */
    tp_tensor_desc_t rows;
    memset(&rows, 0, sizeof(rows));
    rows.dtype = TP_DTYPE_UINT8;
    rows.major_order = TP_MAJOR_ORDER_ROW;
    rows.ndims = 2;
    rows.dims[0] = 100;
    rows.dims[1] = 1000;
    rows.progress_unit = TP_PROGRESS_UNIT_ROWS;
    rows.progress_stride_bytes = 1000;
    tp_claim_t claim;
    tp_assert_ok(tp_producer_try_claim_by_size(p, 100000, &claim));
    for (uint32_t i = 0; i < 100000; i++)
    {
        claim.buffer[i] = pattern(i);
    }
    tp_assert_ok(tp_producer_describe(p, &claim, 100000, &rows, 0));
    uint64_t seq = claim.seq;
    inject(epoch, seq, 2500, 1);       /* whole rows only: 2000 */
    inject(epoch, seq, 100001, 2);     /* past the length: dropped, and the frame's progress with it */
    inject(epoch, seq, 90000, 2);      /* ignored: the frame's progress was dropped */
    inject(epoch, seq + 3, 10, 1);     /* the slot does not hold that frame: dropped */
    inject(epoch + 9, seq, 5000, 2);   /* another epoch: not ours, not counted */
    poll_for(p, c, &w, 30);
    assert_int_equal(w.reports, 1);
    assert_int_equal(w.prefix_bytes[0], 2000);
    assert_int_equal(w.bad_prefix, 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.progress_dropped, 3);
    /* COMPLETE is not a frame: nothing is delivered until the descriptor. */
    inject(epoch, seq + 3, 0, 1); /* reset the tracked frame */
    inject(epoch, seq, 50000, 2);
    inject(epoch, seq, 40000, 2); /* backwards: dropped */
    poll_for(p, c, &w, 30);
    tp_consumer_counters(c, &k);
    assert_int_equal(k.progress_dropped, 5);
    assert_int_equal(w.frames, 0);
    assert_true(tp_producer_commit(p, &claim, 100000, &rows, 0, 0) >= 0);
    poll_for(p, c, &w, 30);
    assert_int_equal(w.frames, 1);
    /* A padded layout (rows 1024 bytes apart for 1000 bytes of data) without a progress unit: no safe prefix. */
    tp_tensor_desc_t padded = rows;
    padded.progress_unit = TP_PROGRESS_UNIT_NONE;
    padded.progress_stride_bytes = 0;
    padded.strides[0] = 1024;
    padded.strides[1] = 1;
    tp_assert_ok(tp_producer_try_claim_by_size(p, 102400, &claim));
    tp_assert_ok(tp_producer_describe(p, &claim, 102400, &padded, 0));
    int before = w.reports;
    inject(epoch, claim.seq, 4096, 1);
    poll_for(p, c, &w, 30);
    assert_int_equal(w.reports, before + 1);
    assert_int_equal(w.prefix_bytes[before], 0);
    tp_assert_ok(tp_producer_abort(p, &claim));
    tp_consumer_close(c);
    tp_producer_close(p);
    tp_bus_publication_close(inject_pub);
    tp_bus_close(inject_bus);
}

/* A consumer following progress with the given hints (0: none), its hello seen by the producer. */
static tp_consumer_t *follower(tp_producer_t *p, uint32_t interval_us, uint32_t bytes_delta, watch_t *w)
{
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.supports_progress = true;
    o.progress_interval_us = interval_us;
    o.progress_bytes_delta = bytes_delta;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, STREAM, &o, TIMEOUT_NS));
    tp_consumer_set_progress_handler(c, on_progress, w);
    poll_for(p, c, w, 80);
    return c;
}

static void described_claim(tp_producer_t *p, uint32_t bytes, tp_claim_t *claim)
{
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, bytes);
    tp_assert_ok(tp_producer_try_claim_by_size(p, bytes, claim));
    tp_assert_ok(tp_producer_describe(p, claim, bytes, &t, 0));
}

static void commit_claim(tp_producer_t *p, tp_claim_t *claim, uint32_t bytes)
{
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, bytes);
    assert_true(tp_producer_commit(p, claim, bytes, &t, 0, 0) >= 0);
}

static void test_default_policy_sends_the_latest_state(void **state)
{
    (void)state;
    /* No hints: 250 us and 64 KiB, each boundary exact on the fake clock; a report held back by the interval goes
     * out from do_work, with the latest bytes, the moment the interval has elapsed.
     * covers: W-10.1.2-2s, W-10.2.2-13s */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    watch_t w = { 0 };
    tp_consumer_t *c = follower(p, 0, 0, &w);
    tp_claim_t claim;
    described_claim(p, FRAME_BYTES, &claim);
    assert_int_equal(tp_producer_progress(p, &claim, 1000), 1); /* STARTED, once */
    fake_advance(249 * TP_NS_PER_US);
    assert_int_equal(tp_producer_progress(p, &claim, 1000 + 65536), 0); /* the interval has not elapsed */
    assert_int_equal(tp_producer_progress(p, &claim, 1000 + 70000), 0);
    poll_for(p, c, &w, 10);
    assert_int_equal(w.reports, 1);
    fake_advance(1 * TP_NS_PER_US);
    poll_for(p, c, &w, 10); /* do_work: the latest state, now */
    assert_int_equal(w.reports, 2);
    assert_int_equal(w.states[1], TP_PROGRESS_PROGRESS);
    assert_int_equal(w.bytes[1], 71000);
    fake_advance(TP_NS_PER_MS);
    assert_int_equal(tp_producer_progress(p, &claim, 71000 + 65535), 0); /* one byte short of the delta */
    poll_for(p, c, &w, 10);
    assert_int_equal(w.reports, 2); /* and nothing held back: it is not due */
    assert_int_equal(tp_producer_progress(p, &claim, 71000 + 65536), 1);
    commit_claim(p, &claim, FRAME_BYTES);
    poll_for(p, c, &w, 20);
    assert_int_equal(w.reports, 4);
    assert_int_equal(w.states[0], TP_PROGRESS_STARTED);
    assert_int_equal(w.states[2], TP_PROGRESS_PROGRESS);
    assert_int_equal(w.states[3], TP_PROGRESS_COMPLETE);
    assert_int_equal(w.frames, 1);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_hints_merge_above_the_floors(void **state)
{
    (void)state;
    /* Two followers' hints: the smallest interval (1 ms) and the smallest delta (100000) of the two apply; a third
     * follower asking for less than the floors brings the policy to the floors, not below.
     * covers: W-10.2.2-16s */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    watch_t w1 = { 0 }, w2 = { 0 }, w3 = { 0 };
    tp_consumer_t *c1 = follower(p, 2000, 150000, &w1);
    tp_consumer_t *c2 = follower(p, 1000, 100000, &w2);
    tp_claim_t claim;
    described_claim(p, FRAME_BYTES, &claim);
    assert_int_equal(tp_producer_progress(p, &claim, 0), 1);
    fake_advance(999 * TP_NS_PER_US);
    assert_int_equal(tp_producer_progress(p, &claim, 100000), 0); /* 999 us: not yet */
    fake_advance(1 * TP_NS_PER_US);
    assert_int_equal(tp_producer_progress(p, &claim, 100000), 1); /* 1 ms */
    fake_advance(5 * TP_NS_PER_MS);
    assert_int_equal(tp_producer_progress(p, &claim, 199999), 0); /* the delta is 100000 */
    tp_assert_ok(tp_producer_abort(p, &claim));
    tp_consumer_t *c3 = follower(p, 10, 100, &w3);
    described_claim(p, FRAME_BYTES, &claim);
    assert_int_equal(tp_producer_progress(p, &claim, 0), 1);
    fake_advance(249 * TP_NS_PER_US);
    assert_int_equal(tp_producer_progress(p, &claim, 65536), 0); /* the floor: 250 us */
    fake_advance(1 * TP_NS_PER_US);
    assert_int_equal(tp_producer_progress(p, &claim, 65535), -1); /* backwards from the last report: refused */
    assert_int_equal(tp_producer_progress(p, &claim, 65536), 1);
    fake_advance(TP_NS_PER_MS);
    assert_int_equal(tp_producer_progress(p, &claim, 65536 + 65535), 0); /* the floor: 64 KiB */
    tp_assert_ok(tp_producer_abort(p, &claim));
    tp_consumer_close(c3);
    tp_consumer_close(c2);
    tp_consumer_close(c1);
    tp_producer_close(p);
}

static void test_progress_rate_cap_per_stream(void **state)
{
    (void)state;
    /* Small frames back to back, each reporting progress: the stream's reports pass in a burst of 4, then one per
     * 500 us (2 kHz); the frames in between go without progress (their descriptors still go out).
     * covers: W-10.2.2-14s */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, STREAM, TIMEOUT_NS));
    watch_t w = { 0 };
    tp_consumer_t *c = follower(p, 0, 0, &w);
    int sent = 0;
    for (int i = 0; i < 10; i++)
    {
        tp_claim_t claim;
        described_claim(p, 4096, &claim);
        int rc = tp_producer_progress(p, &claim, 100);
        assert_int_equal(rc, i < 4 ? 1 : 0);
        sent += rc;
        commit_claim(p, &claim, 4096);
        tp_producer_do_work(p); /* a held-back STARTED of a committed frame is not sent late */
        poll_for(p, c, &w, 1);
    }
    fake_advance(499 * TP_NS_PER_US);
    tp_claim_t claim;
    described_claim(p, 4096, &claim);
    assert_int_equal(tp_producer_progress(p, &claim, 100), 0);
    fake_advance(1 * TP_NS_PER_US);
    poll_for(p, c, &w, 10); /* its STARTED goes out from do_work once the cap allows */
    commit_claim(p, &claim, 4096);
    poll_for(p, c, &w, 30);
    assert_int_equal(w.frames, 11);
    /* 4 frames with STARTED and COMPLETE, and the last frame's STARTED (late) and COMPLETE */
    assert_int_equal(w.reports, 2 * 4 + 2);
    assert_int_equal(sent, 4);
    tp_consumer_close(c);
    tp_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_progress_of_a_large_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_and_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_policy_sends_the_latest_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hints_merge_above_the_floors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_rate_cap_per_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
