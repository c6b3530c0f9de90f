/*
 * The rate limiter: its timer on a caller's clock, and a mapping between two streams of one embedded driver
 * (source producer -> rate limiter -> destination consumer), with frame times given by the test, so every count
 * below is exact.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "ratelimit/tp_rate_policy.h"
#include "ratelimit/tp_ratelimit_forward.h"
#include "ratelimit/tp_ratelimiter.h"
#include "tp_sbe_wire.h"
#include "client/tp_client_fixture.h"
#include "tp_test_util.h"

#define SOURCE 10
#define DEST 20
#define SMALL_DEST 21
#define MS TP_NS_PER_MS

/* covers: R-4-1, R-4-8, R-4-9 */
static void test_rate_policy(void **state)
{
    (void)state;
    tp_rate_policy_t p;
    tp_rate_policy_init(&p, 0);
    for (int i = 0; i < 5; i++)
    {
        assert_true(tp_rate_policy_is_open(&p, 0)); /* 0 Hz: unlimited */
        tp_rate_policy_take(&p, 0);
    }
    tp_rate_policy_init(&p, 100);
    assert_true(tp_rate_policy_is_open(&p, 5 * MS)); /* the first frame passes at once */
    tp_rate_policy_take(&p, 5 * MS);
    assert_false(tp_rate_policy_is_open(&p, 6 * MS));
    assert_false(tp_rate_policy_is_open(&p, 15 * MS - 1));
    assert_true(tp_rate_policy_is_open(&p, 15 * MS));
    tp_rate_policy_take(&p, 16 * MS); /* late by 1 ms: the next slot keeps the 10 ms grid */
    assert_false(tp_rate_policy_is_open(&p, 25 * MS - 1));
    assert_true(tp_rate_policy_is_open(&p, 25 * MS));
    tp_rate_policy_reset(&p, 100); /* restart or a new source epoch: at once again */
    assert_true(tp_rate_policy_is_open(&p, 25 * MS + 1));
    /* Over a long run at 1 kHz, exactly the cap; below the cap, every frame. */
    tp_rate_policy_init(&p, 30);
    int passed = 0;
    for (int64_t t = 0; t < 10000 * MS; t += MS)
    {
        if (tp_rate_policy_is_open(&p, t))
        {
            tp_rate_policy_take(&p, t);
            passed++;
        }
    }
    assert_in_range(passed, 300, 301);
    tp_rate_policy_init(&p, 100);
    passed = 0;
    for (int64_t t = 0; t < 1000 * MS; t += 20 * MS)
    {
        if (tp_rate_policy_is_open(&p, t))
        {
            tp_rate_policy_take(&p, t);
            passed++;
        }
    }
    assert_int_equal(passed, 50);
}

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "ratelimiter");
    client_fixture_add_stream(&F, "cam", SOURCE, "src", 16, 4096);
    client_fixture_add_stream(&F, "cam-10hz", DEST, "dst", 16, 4096);
    client_fixture_add_stream(&F, "cam-small", SMALL_DEST, "dst-small", 16, 1024);
    client_fixture_start(&F);
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

static void make_payload(uint8_t *buf, uint32_t length, uint64_t seq)
{
    for (uint32_t i = 0; i + 4 < length; i++)
    {
        buf[i] = (uint8_t)(seq * 29 + i * 7);
    }
    uint32_t crc = tp_crc32c(0, buf, length - 4);
    memcpy(buf + length - 4, &crc, 4);
}

typedef struct dest_seen
{
    int frames;
    int bad;
    uint64_t seqs[64];
    tp_frame_t last;
} dest_seen_t;

static void on_dest_frame(void *clientd, const tp_frame_t *f)
{
    dest_seen_t *s = clientd;
    uint8_t expect[4096];
    make_payload(expect, f->payload_length, f->seq);
    /* bit-exact, and everything the slot header carries came from the source frame of the same seq */
    bool is_bad = memcmp(expect, f->payload, f->payload_length) != 0 || f->meta_version != 7 ||
        f->trace_id != 0xABC000 + f->seq || f->timestamp_ns != 1000000 + f->seq ||
        f->tensor.dims[0] != (int32_t)f->payload_length;
    if (!tp_frame_is_intact(f))
    {
        return; /* overwritten while we read it in place: the consumer counts it late, not delivered */
    }
    s->bad += is_bad;
    if (s->frames < 64)
    {
        s->seqs[s->frames] = f->seq;
    }
    s->frames++;
    s->last = *f;
}

static tp_tensor_desc_t tensor_of(uint32_t length)
{
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)length;
    return t;
}

static void publish(tp_producer_t *p, uint64_t seq, uint32_t length)
{
    uint8_t buf[4096];
    make_payload(buf, length, seq);
    tp_tensor_desc_t t = tensor_of(length);
    assert_int_equal(tp_producer_offer_frame_at(p, buf, length, &t, 7, 0xABC000 + seq, 1000000 + seq), (int64_t)seq);
}

/* Everything attached: the source producer, the limiter (both ends) and a destination consumer. */
static void bring_up(tp_producer_t **source, tp_ratelimiter_t *r, uint32_t dest_stream, uint32_t hz,
    tp_consumer_t **dest, dest_seen_t *seen)
{
    tp_assert_ok(tp_producer_attach(source, client, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_ratelimiter_open(r, client, SOURCE, dest_stream, hz));
    for (int i = 0; i < 5000 && !tp_ratelimiter_is_ready(r); i++)
    {
        tp_ratelimiter_do_work(r, 0);
        usleep(1000);
    }
    assert_true(tp_ratelimiter_is_ready(r));
    tp_assert_ok(tp_consumer_attach(dest, client, dest_stream, 5 * TP_NS_PER_S));
    tp_consumer_poll(*dest, on_dest_frame, seen, 64);
}

static void drain_dest(tp_consumer_t *dest, dest_seen_t *seen, int want)
{
    for (int i = 0; i < 2000 && seen->frames < want; i++)
    {
        if (tp_consumer_poll(dest, on_dest_frame, seen, 64) == 0)
        {
            usleep(500);
        }
    }
}

/* A 1 kHz source capped at 100 Hz: one frame in ten goes out, re-materialized in the destination's own pools
 * under the source's seq, bit-exact, with meta_version, timestamp and trace id kept; nothing ever appears on the
 * source stream from the limiter.
 * covers: R-2.1-1, R-3-1, R-3-2, R-3-3, R-4-1, R-4-4, R-4-5, R-4-8, R-5-2, R-5-3, R-5-4 */
static void test_republishes_at_the_cap(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, DEST, 100, &dest, &seen);
    for (uint64_t i = 0; i < 100; i++)
    {
        publish(source, i, 100 + (uint32_t)(i * 37 % 3000));
        tp_ratelimiter_do_work(&r, (int64_t)i * MS); /* frame i at i ms */
        /* Read as they come: destination slots are seq mod 16, so seq 80 takes seq 0's slot. */
        drain_dest(dest, &seen, (int)r.counters.published);
    }
    assert_int_equal(r.counters.frames_seen, 100);
    assert_int_equal(r.counters.published, 10);
    assert_int_equal(seen.frames, 10);
    assert_int_equal(seen.bad, 0);
    for (int i = 0; i < 10; i++)
    {
        assert_int_equal(seen.seqs[i], (uint64_t)i * 10);
    }
    assert_int_equal(seen.last.stream_id, DEST);
    assert_int_not_equal(seen.last.epoch, 0);
    /* The source stream has one producer still: the limiter only consumes it. */
    assert_int_equal(tp_producer_next_seq(source), 100);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* While the slot is closed the newest frame is held; when it opens, that one goes, not the first one held.
 * covers: R-4-2s */
static void test_latest_frame_wins(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, DEST, 100, &dest, &seen);
    uint64_t base = 0;
    for (uint64_t i = 0; i < 10; i++)
    {
        publish(source, base + i, 200);
        tp_ratelimiter_do_work(&r, (int64_t)i * MS);
    }
    /* 0 went at once; 1..9 were held in turn, each replacing the one before. */
    assert_int_equal(r.counters.published, 1);
    assert_int_equal(r.counters.superseded, 8);
    tp_ratelimiter_do_work(&r, 10 * MS); /* the slot opens with no new frame: the held one, 9, goes */
    drain_dest(dest, &seen, 2);
    assert_int_equal(seen.frames, 2);
    assert_int_equal(seen.seqs[0], 0);
    assert_int_equal(seen.seqs[1], 9);
    assert_int_equal(seen.bad, 0);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* The output rate is the cap when the source is faster, and the source's own rate when it is not (equal to or below
 * the cap), over a 2 s run on the test's clock; nothing is allocated once frames flow.
 * covers: R-4-1 */
static void test_rates_around_the_cap(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, DEST, 100, &dest, &seen);
    const int64_t periods_ms[3] = { 1, 10, 20 };   /* 1 kHz, 100 Hz, 50 Hz */
    const uint64_t expected[3] = { 200, 200, 100 }; /* per 2 s at a 100 Hz cap */
    uint64_t seq = 0;
    int64_t t = 0;
    /* The allocation count is process-wide: the embedded driver's thread (its own housekeeping) pauses meanwhile. */
    tp_assert_ok(tp_driver_stop(F.driver));
    for (int k = 0; k < 3; k++)
    {
        t += TP_NS_PER_S; /* a pause: the next frame opens a fresh slot */
        uint64_t before = r.counters.published;
        uint64_t allocations = tp_alloc_count();
        for (int64_t at = 0; at < 2000; at += periods_ms[k], seq++)
        {
            publish(source, seq, 256);
            tp_ratelimiter_do_work(&r, t + at * MS);
            tp_consumer_poll(dest, on_dest_frame, &seen, 64);
        }
        t += 2000 * MS;
        assert_int_equal(r.counters.published - before, expected[k]);
        assert_int_equal(tp_alloc_count(), allocations);
    }
    tp_assert_ok(tp_driver_start(F.driver));
    assert_int_equal(seen.bad, 0);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* A restarted limiter publishes under a new destination epoch, greater than before; and two limiters in a chain
 * (1 kHz -> 100 Hz -> 10 Hz) keep the source's seq and bytes end to end.
 * covers: R-7-2 */
static void test_restart_and_chain(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, DEST, 0, &dest, &seen);
    publish(source, 0, 300);
    tp_ratelimiter_do_work(&r, 0);
    drain_dest(dest, &seen, 1);
    uint64_t first_epoch = seen.last.epoch;
    tp_ratelimiter_close(&r);
    tp_assert_ok(tp_ratelimiter_open(&r, client, SOURCE, DEST, 100));
    tp_ratelimiter_t second;
    tp_assert_ok(tp_ratelimiter_open(&second, client, DEST, SMALL_DEST, 10));
    for (int i = 0; i < 5000 && !(tp_ratelimiter_is_ready(&r) && tp_ratelimiter_is_ready(&second)); i++)
    {
        tp_ratelimiter_do_work(&r, 0);
        tp_ratelimiter_do_work(&second, 0);
        usleep(1000);
    }
    assert_true(tp_ratelimiter_is_ready(&r) && tp_ratelimiter_is_ready(&second));
    tp_consumer_t *end;
    dest_seen_t tail = { 0 };
    tp_assert_ok(tp_consumer_attach(&end, client, SMALL_DEST, 5 * TP_NS_PER_S));
    for (uint64_t i = 1; i <= 1000; i++)
    {
        publish(source, i, 500);
        tp_ratelimiter_do_work(&r, (int64_t)i * MS);
        tp_consumer_poll(dest, on_dest_frame, &seen, 64);
        tp_ratelimiter_do_work(&second, (int64_t)i * MS);
        tp_consumer_poll(end, on_dest_frame, &tail, 64);
    }
    drain_dest(end, &tail, 10);
    assert_true(seen.last.epoch > first_epoch);
    assert_int_equal(r.counters.published, 100);
    assert_int_equal(second.counters.published, 10);
    assert_int_equal(tail.frames, 10);
    assert_int_equal(tail.bad, 0);
    for (int i = 0; i < 10; i++)
    {
        assert_int_equal(tail.seqs[i] % 10, 1); /* source seqs 1, 101, 201, ...: every 100th */
    }
    tp_consumer_close(end);
    tp_ratelimiter_close(&second);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

typedef struct torture
{
    tp_ratelimiter_t *limiter;
    atomic_int stop;
} torture_t;

static void *limiter_thread(void *arg)
{
    torture_t *t = arg;
    while (!atomic_load(&t->stop))
    {
        tp_ratelimiter_do_work(t->limiter, tp_clock_monotonic_ns());
    }
    return NULL;
}

/* The source overwrites its 16-slot ring as fast as it can while the limiter (on its own thread, uncapped) copies:
 * what reaches the destination has gaps, and every frame of it is whole: bytes, seq and trace id agree.
 * covers: R-5-1 */
static void test_torture_never_corrupt(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    /* One client per thread: the limiter's thread has its own. */
    tp_client_t *limiter_client;
    tp_assert_ok(tp_client_connect(&limiter_client, F.cctx));
    tp_assert_ok(tp_producer_attach(&source, client, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_ratelimiter_open(&r, limiter_client, SOURCE, DEST, 0));
    for (int i = 0; i < 5000 && !tp_ratelimiter_is_ready(&r); i++)
    {
        tp_ratelimiter_do_work(&r, 0);
        usleep(1000);
    }
    assert_true(tp_ratelimiter_is_ready(&r));
    tp_assert_ok(tp_consumer_attach(&dest, client, DEST, 5 * TP_NS_PER_S));
    torture_t t = { .limiter = &r };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, limiter_thread, &t), 0);
    int64_t end = tp_clock_monotonic_ns() + TP_NS_PER_S;
    uint64_t seq = 0;
    while (tp_clock_monotonic_ns() < end)
    {
        publish(source, seq, 256 + (uint32_t)(seq * 61 % 3500));
        seq++;
        tp_consumer_poll(dest, on_dest_frame, &seen, 64);
    }
    atomic_store(&t.stop, 1);
    pthread_join(thread, NULL);
    drain_dest(dest, &seen, (int)r.counters.published);
    print_message("source %" PRIu64 ", limiter saw %" PRIu64 ", published %" PRIu64 ", lapped %" PRIu64
                  ", destination read %d\n",
        seq, r.counters.frames_seen, r.counters.published, r.counters.dropped_lapped, seen.frames);
    assert_int_equal(seen.bad, 0);
    assert_true(seen.frames > 0);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
    tp_client_close(limiter_client);
}

/* A frame no destination pool can hold is dropped and counted; the next one that fits goes.
 * covers: R-5-5 */
static void test_drops_what_fits_no_pool(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, SMALL_DEST, 0, &dest, &seen);
    publish(source, 0, 2000); /* the destination's only pool has 1024-byte slots */
    tp_ratelimiter_do_work(&r, 0);
    publish(source, 1, 1000);
    tp_ratelimiter_do_work(&r, 1);
    drain_dest(dest, &seen, 1);
    assert_int_equal(r.counters.dropped_no_pool, 1);
    assert_int_equal(seen.frames, 1);
    assert_int_equal(seen.seqs[0], 1);
    assert_int_equal(seen.bad, 0);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* The source restarts (a new epoch, numbered from 0 again): the held frame is dropped, the timer restarts, and
 * the destination moves to a new epoch of its own so that its seq never goes back under one epoch; until its new
 * lease is there, frames are dropped and counted, never waited for.
 * covers: R-4-9, R-7-1, R-7-2, R-5-6 */
static void test_source_epoch_change(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    bring_up(&source, &r, DEST, 100, &dest, &seen);
    for (uint64_t i = 0; i < 5; i++)
    {
        publish(source, i, 300);
        tp_ratelimiter_do_work(&r, (int64_t)i * MS);
    }
    assert_true(r.has_pending); /* 4 is held */
    drain_dest(dest, &seen, 1);
    uint64_t first_epoch = seen.last.epoch;
    uint64_t source_epochs = r.counters.source_epochs;
    tp_producer_close(source);
    tp_assert_ok(tp_producer_attach(&source, client, SOURCE, 5 * TP_NS_PER_S));
    /* the new epoch's frames come 1 ms later, well inside the old slot: they pass at once all the same */
    int64_t t = 5 * MS;
    for (uint64_t i = 0; r.counters.published < 3 && i < 2000; i++, t += 20 * MS)
    {
        if (i < 100)
        {
            publish(source, i, 300);
        }
        tp_ratelimiter_do_work(&r, t);
        usleep(500);
    }
    assert_false(r.has_pending && r.pending.epoch == first_epoch);
    assert_true(r.counters.source_epochs > source_epochs);
    assert_int_equal(r.counters.dest_reattaches, 1);
    assert_true(r.counters.dropped_detached >= 1); /* while the new lease came, frames were dropped, not waited on */
    drain_dest(dest, &seen, 3);
    assert_int_equal(seen.bad, 0);
    assert_true(seen.last.epoch > first_epoch); /* the destination's own new epoch */
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* Per-consumer operation: a sole destination consumer in RATE_LIMITED mode sets the cap with its
 * ConsumerHello.max_rate_hz, over the configured one; once a second consumer joins, the configured cap holds again
 * (theirs are never combined).
 * covers: R-4-6, R-4-7, R-8-6 */
static void test_per_consumer_cap(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_assert_ok(tp_producer_attach(&source, client, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_ratelimiter_open(&r, client, SOURCE, DEST, 0)); /* configured: every frame */
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.mode = TP_CONSUMER_RATE_LIMITED;
    o.max_rate_hz = 50;
    tp_consumer_t *gui;
    tp_assert_ok(tp_consumer_open(&gui, client, DEST, &o, 5 * TP_NS_PER_S));
    int64_t t = 0;
    for (int i = 0; i < 5000 && !(tp_ratelimiter_is_ready(&r) && r.policy.max_rate_hz == 50); i++, t += MS)
    {
        tp_ratelimiter_do_work(&r, t);
        tp_consumer_poll(gui, on_dest_frame, &(dest_seen_t){ 0 }, 64);
        usleep(1000);
    }
    assert_int_equal(r.policy.max_rate_hz, 50);
    uint64_t before = r.counters.published;
    t += TP_NS_PER_S; /* a fresh slot */
    for (uint64_t i = 0; i < 100; i++)
    {
        publish(source, i, 100);
        tp_ratelimiter_do_work(&r, t + (int64_t)i * MS);
    }
    assert_int_equal(r.counters.published - before, 5); /* 100 ms at 50 Hz */
    tp_consumer_t *recorder;
    tp_assert_ok(tp_consumer_attach(&recorder, client, DEST, 5 * TP_NS_PER_S));
    t += 200 * MS;
    for (int i = 0; i < 5000 && r.policy.max_rate_hz != 0; i++, t += MS)
    {
        tp_ratelimiter_do_work(&r, t);
        tp_consumer_poll(recorder, on_dest_frame, &(dest_seen_t){ 0 }, 64);
        usleep(1000);
    }
    assert_int_equal(r.policy.max_rate_hz, 0);
    tp_consumer_close(recorder);
    tp_consumer_close(gui);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

/* The source's announce and attributes come out as the destination's, meta_version kept, on the destination's
 * stream id, or on a configured metadata stream id.
 * covers: R-6-1, R-6-2, R-6-3, R-6-4 */
static void test_forwards_metadata(void **state)
{
    (void)state;
    tp_producer_t *source;
    tp_ratelimiter_t r;
    tp_ratelimiter_t r2;
    tp_consumer_t *dest;
    dest_seen_t seen = { 0 };
    tp_metadata_cache_t *cache;
    tp_assert_ok(tp_metadata_cache_open(&cache, client, NULL, NULL));
    bring_up(&source, &r, DEST, 0, &dest, &seen);
    tp_assert_ok(tp_ratelimiter_forward_metadata(&r, cache, 0));
    tp_assert_ok(tp_ratelimiter_open(&r2, client, SOURCE, SMALL_DEST, 0));
    tp_assert_ok(tp_ratelimiter_forward_metadata(&r2, cache, 77));
    tp_metadata_publisher_t *meta = tp_producer_metadata(source);
    tp_assert_ok(tp_metadata_set_source(meta, "cam-front", "front camera"));
    tp_assert_ok(tp_metadata_set_text(meta, "pattern", "counter"));
    uint32_t version = tp_metadata_version(meta);
    tp_metadata_view_t view;
    bool has_dest = false;
    bool has_other = false;
    int64_t t = 0;
    for (int i = 0; i < 2000 && !(has_dest && has_other); i++, t += 20 * MS)
    {
        tp_metadata_cache_poll(cache, 64);
        tp_ratelimiter_do_work(&r, t);
        tp_ratelimiter_do_work(&r2, t);
        tp_metadata_view_t v;
        has_dest = tp_metadata_cache_get(cache, DEST, &v) && v.meta_version == version && v.has_attributes;
        has_other = tp_metadata_cache_get(cache, 77, &v) && v.meta_version == version && v.has_attributes;
        usleep(500);
    }
    assert_true(has_dest);
    assert_true(has_other);
    assert_true(tp_metadata_cache_get(cache, DEST, &view));
    assert_true(view.has_announce);
    assert_string_equal(view.name, "cam-front");
    assert_string_equal(view.summary, "front camera");
    const tp_metadata_attribute_t *a = tp_metadata_find(&view, "pattern");
    assert_non_null(a);
    assert_int_equal(a->length, 7);
    assert_memory_equal(a->value, "counter", 7);
    assert_true(r.counters.metadata_forwarded >= 1);
    tp_metadata_cache_close(cache);
    tp_consumer_close(dest);
    tp_ratelimiter_close(&r2);
    tp_ratelimiter_close(&r);
    tp_producer_close(source);
}

typedef struct forwarded
{
    int count;
    uint32_t stream_id;
    uint64_t seq;
    uint16_t template_id;
} forwarded_t;

static void on_forwarded(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    forwarded_t *f = clientd;
    tp_wire_frame_progress_t p;
    tp_wire_qos_producer_t q;
    f->count++;
    if (tp_wire_frame_progress_decode(&p, buffer, length) == 0)
    {
        f->stream_id = tp_wire_frame_progress_stream_id(&p);
        f->seq = tp_wire_frame_progress_seq(&p);
        f->template_id = TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID;
    }
    else if (tp_wire_qos_producer_decode(&q, buffer, length) == 0)
    {
        f->stream_id = tp_wire_qos_producer_stream_id(&q);
        f->seq = tp_wire_qos_producer_current_seq(&q);
        f->template_id = TP_WIRE_QOS_PRODUCER_TEMPLATE_ID;
    }
}

static void pump_forwarder(tp_ratelimit_forwarder_t *f, tp_bus_subscription_t *out, forwarded_t *got, int want)
{
    for (int i = 0; i < 2000 && got->count < want; i++)
    {
        tp_ratelimit_forwarder_poll(f);
        if (tp_bus_poll(out, on_forwarded, got, 16) == 0)
        {
            usleep(200);
        }
    }
}

/* FrameProgress and QoS of a mapping's source stream go out on the destination stream ids with streamId
 * rewritten and seq kept; other streams' messages and undecodable ones are left alone; zero stream ids refuse to
 * start.
 * covers: R-6.1-1s, R-6.1-2, R-6.1-3, R-6.1-5, R-6.1-6s, R-6.1-7, R-8-3 */
static void test_forwards_progress_and_qos(void **state)
{
    (void)state;
    tp_bus_t *bus;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    tp_ratelimit_forwarder_t progress;
    tp_ratelimit_forwarder_t qos;
    tp_assert_fails_with(tp_ratelimit_forwarder_open(&progress, bus, TP_RATELIMIT_FORWARD_PROGRESS, "aeron:ipc", 0,
                             5001),
        "nonzero");
    tp_assert_ok(tp_ratelimit_forwarder_open(&progress, bus, TP_RATELIMIT_FORWARD_PROGRESS, "aeron:ipc", 5000, 5001));
    tp_assert_ok(tp_ratelimit_forwarder_route(&progress, SOURCE, DEST));
    tp_assert_ok(tp_ratelimit_forwarder_open(&qos, bus, TP_RATELIMIT_FORWARD_QOS, "aeron:ipc", 6000, 6001));
    tp_assert_ok(tp_ratelimit_forwarder_route(&qos, SOURCE, DEST));
    tp_bus_publication_t *in_progress;
    tp_bus_publication_t *in_qos;
    tp_bus_subscription_t *out_progress;
    tp_bus_subscription_t *out_qos;
    tp_assert_ok(tp_bus_subscription_open(&out_progress, bus, "aeron:ipc", 5001, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&out_qos, bus, "aeron:ipc", 6001, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&in_progress, bus, "aeron:ipc", 5000, false));
    tp_assert_ok(tp_bus_publication_open(&in_qos, bus, "aeron:ipc", 6000, false));
    tp_ratelimit_forwarder_poll(&progress); /* the subscriptions see what is published from now on */
    tp_ratelimit_forwarder_poll(&qos);
    uint8_t buf[256];
    tp_wire_frame_progress_enc_t e;
    for (uint32_t stream = SOURCE - 1; stream <= SOURCE; stream++) /* another stream's first: left alone */
    {
        tp_wire_frame_progress_enc_begin(&e, buf, sizeof(buf));
        tp_wire_frame_progress_set_stream_id(&e, stream);
        tp_wire_frame_progress_set_epoch(&e, 3);
        tp_wire_frame_progress_set_seq(&e, 42);
        tp_wire_frame_progress_set_payload_bytes_filled(&e, 100);
        tp_wire_frame_progress_set_state(&e, 2);
        int64_t n = tp_wire_frame_progress_enc_finish(&e);
        assert_true(n > 0 && tp_bus_offer(in_progress, buf, (size_t)n) > 0);
    }
    assert_true(tp_bus_offer(in_progress, buf, 12) > 0); /* a FrameProgress cut short */
    forwarded_t got = { 0 };
    pump_forwarder(&progress, out_progress, &got, 1);
    assert_int_equal(got.count, 1);
    assert_int_equal(got.template_id, TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID);
    assert_int_equal(got.stream_id, DEST);
    assert_int_equal(got.seq, 42);
    assert_int_equal(progress.forwarded, 1);
    assert_int_equal(progress.ignored, 1);
    assert_int_equal(progress.malformed, 1);
    tp_wire_qos_producer_enc_t q;
    tp_wire_qos_producer_enc_begin(&q, buf, sizeof(buf));
    tp_wire_qos_producer_set_stream_id(&q, SOURCE);
    tp_wire_qos_producer_set_producer_id(&q, 9);
    tp_wire_qos_producer_set_epoch(&q, 3);
    tp_wire_qos_producer_set_current_seq(&q, 77);
    tp_wire_qos_producer_set_watermark(&q, 0);
    int64_t n = tp_wire_qos_producer_enc_finish(&q);
    assert_true(n > 0 && tp_bus_offer(in_qos, buf, (size_t)n) > 0);
    forwarded_t got_qos = { 0 };
    pump_forwarder(&qos, out_qos, &got_qos, 1);
    assert_int_equal(got_qos.count, 1);
    assert_int_equal(got_qos.template_id, TP_WIRE_QOS_PRODUCER_TEMPLATE_ID);
    assert_int_equal(got_qos.stream_id, DEST);
    assert_int_equal(got_qos.seq, 77);
    tp_bus_publication_close(in_progress);
    tp_bus_publication_close(in_qos);
    tp_bus_subscription_close(out_progress);
    tp_bus_subscription_close(out_qos);
    tp_ratelimit_forwarder_close(&progress);
    tp_ratelimit_forwarder_close(&qos);
    tp_bus_close(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_policy),
        cmocka_unit_test_setup_teardown(test_republishes_at_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_frame_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drops_what_fits_no_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rates_around_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_and_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torture_never_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_epoch_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forwards_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_consumer_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forwards_progress_and_qos, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
