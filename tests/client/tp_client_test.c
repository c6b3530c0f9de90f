/*
 * The read path through an embedded driver: frames offered on the copy and claim paths arrive intact with every
 * field, pools are chosen by size, a lapped consumer counts gaps and resyncs when far behind, descriptors of other
 * streams and epochs are ignored, nothing is read while unmapped, a slot overwritten during the callback is a late
 * drop (and the frame says so), copy-out validates, pull style works, and the steady state allocates nothing.
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

static void test_frames_arrive_intact(void **state)
{
    (void)state;
    /* covers: W-8.3-1, W-8.2-7, W-10.2.1-1 (the consumer accepts a frame only when the descriptor's seq is the
     * slot's seq_commit >> 1), W-10.2.1-2 (seq 0, 1, 2, ...), W-10.2.1-9 (the pool comes from the slot),
     * W-15.5-3 (a slot whose payload_slot is not its header index is dropped as invalid: none here) */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    assert_int_equal(tp_consumer_epoch(c), tp_producer_epoch(p));
    static uint8_t buf[65536];
    seen_t s = { 0 };
    for (uint64_t i = 0; i < 1000; i++)
    {
        uint32_t length = i % 2 == 0 ? 1000 : 20000; /* pool 1, pool 2 */
        make_payload(buf, length, i);
        int64_t seq = tp_producer_offer_frame(p, buf, length, tensor_of(length), 7, i + 1);
        assert_int_equal(seq, (int64_t)i);
        assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
        assert_int_equal(s.last_seq, i);
        assert_int_equal(s.last_pool, i % 2 == 0 ? 1 : 2);
        assert_int_equal(s.last_meta, 7);
        assert_int_equal(s.last_trace, i + 1);
        assert_int_equal(s.copy_rc, 0);
        assert_true(s.was_intact);
        assert_memory_equal(s.copy, buf, length);
    }
    assert_int_equal(s.frames, 1000);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.epoch, tp_producer_epoch(p));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 1000);
    assert_int_equal(k.drops_gap + k.drops_late + k.drops_invalid, 0);
    /* Timestamps: the slot carries the capture time the producer gives (else its commit time), the descriptor
     * the publish time, taken after the commit. covers: W-10.2.1-3, W-10.2.1-6 */
    int64_t before = tp_clock_monotonic_ns();
    uint64_t capture = (uint64_t)before + 1000;
    make_payload(buf, 100, 1000);
    assert_int_equal(tp_producer_offer_frame_at(p, buf, 100, tensor_of(100), 0, 0, capture), 1000);
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    assert_int_equal(s.last.timestamp_ns, capture);
    assert_true(s.last.publish_timestamp_ns >= (uint64_t)before);
    /* Slot timestamps never go back: an older capture time is refused on either path, nothing is published and
     * the sequence is not used up. covers: W-15.7-2 */
    tp_assert_fails_with(tp_producer_offer_frame_at(p, buf, 100, tensor_of(100), 0, 0, capture - 1), "older");
    tp_claim_t claim;
    tp_assert_ok(tp_producer_try_claim_by_size(p, 100, &claim));
    memcpy(claim.buffer, buf, 100);
    claim.timestamp_ns = capture - 5;
    assert_int_equal(tp_producer_commit(p, &claim, 100, tensor_of(100), 0, 0), -1);
    assert_int_equal(tp_producer_next_seq(p), 1001);
    make_payload(buf, 100, 1001);
    assert_int_equal(tp_producer_offer_frame(p, buf, 100, tensor_of(100), 0, 0), 1001);
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    /* Without a capture time the slot still gets one, the commit time on CLOCK_MONOTONIC (a realtime stamp would
     * be decades past this clock). covers: W-10.2.1-4s, W-15.7-1s */
    assert_true(s.last.timestamp_ns >= capture); /* the commit time, or the last capture time if that is later */
    assert_true(s.last.timestamp_ns <= (uint64_t)tp_clock_monotonic_ns());
    assert_true(s.last.publish_timestamp_ns >= (uint64_t)before);
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 1002);
    assert_int_equal(k.drops_gap + k.drops_late + k.drops_invalid, 0);
    /* The payload fits no pool: refused at once, nothing published. covers: W-9-3 */
    tp_assert_fails_with(tp_producer_offer_frame(p, buf, 70000, tensor_of(70000), 0, 0), "fits no pool");
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_lapped_consumer_counts_gaps(void **state)
{
    (void)state;
    /* covers: W-15.4-2s (gaps here; seq_commit instability as drops_late in test_overwritten_during_callback_is_late) */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    uint8_t buf[256];
    for (uint64_t i = 0; i < 20; i++) /* 20 frames into 8 slots before the consumer looks */
    {
        make_payload(buf, sizeof(buf), i);
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    }
    seen_t s = { 0 };
    while (tp_consumer_poll(c, on_frame, &s, 64) > 0)
    {
    }
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    /* The 12 overwritten frames are counted, never delivered; the last 8 arrive intact.
     * The producer never waited for us, and the drops are counts, not errors: poll returned normally throughout.
     * covers: W-8.3-10, W-15.18-3, W-10.2.1-10 (slot = seq & 7 for this 8-slot ring), W-15.4-1, W-15.21-6 */
    assert_int_equal(k.frames, 8);
    assert_int_equal(k.drops_gap, 12);
    assert_int_equal(k.frames + k.drops_gap + k.drops_late, 20);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.last_seq, 19);
    tp_consumer_close(c);
    tp_producer_close(p);
}

/* Descriptors that do not belong to the mapped epoch and stream are dropped before the slot is looked at, and
 * they do not move the consumer's sequence tracking: the next real frame arrives as if they had never been sent. */
/* A consumer that fell further behind than max_outstanding_seq_gap jumps to the newest frame it knows of instead of
 * working through a backlog of overwritten slots; with the gap unset (0) it checks every slot. */
static void test_far_behind_consumer_resyncs(void **state)
{
    (void)state;
    /* covers: W-15.4-3s, W-15.4-4s */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    assert_int_equal(o.max_outstanding_seq_gap, 256);
    o.max_outstanding_seq_gap = 16;
    tp_consumer_t *jumper = NULL;
    tp_assert_ok(tp_consumer_open(&jumper, client, STREAM, &o, TIMEOUT_NS));
    o.max_outstanding_seq_gap = 0;
    tp_consumer_t *checker = NULL;
    tp_assert_ok(tp_consumer_open(&checker, client, STREAM, &o, TIMEOUT_NS));
    uint8_t buf[256];
    for (uint64_t i = 0; i < 100; i++) /* 100 frames into 8 slots before anyone looks */
    {
        make_payload(buf, sizeof(buf), i);
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    }
    seen_t sj = { 0 }, sc = { 0 };
    tp_consumer_counters_t kj, kc;
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    do /* until each has accounted for all 100 */
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(jumper, on_frame, &sj, 64);
        tp_consumer_poll(checker, on_frame, &sc, 64);
        tp_consumer_counters(jumper, &kj);
        tp_consumer_counters(checker, &kc);
    } while (kj.frames + kj.drops_gap < 100 || kc.frames + kc.drops_gap < 100);
    /* Descriptor 0 finds its slot holding seq 96, 96 behind: one resync, 1..95 dropped unread, 96..99 delivered. */
    assert_int_equal(kj.resyncs, 1);
    assert_int_equal(kj.frames, 4);
    assert_int_equal(kj.drops_gap, 96);
    assert_int_equal(sj.last_seq, 99);
    /* Without a gap limit: every overwritten slot checked, the 8 the ring still holds delivered. */
    assert_int_equal(kc.resyncs, 0);
    assert_int_equal(kc.frames, 8);
    assert_int_equal(kc.drops_gap, 92);
    assert_int_equal(sj.bad + sc.bad, 0);
    tp_consumer_close(checker);
    tp_consumer_close(jumper);
    tp_producer_close(p);
}

/* Frames are only ever read from mapped regions: the handler checks that the consumer is attached. */
static tp_consumer_t *watched;

static void on_frame_mapped(void *clientd, const tp_frame_t *f)
{
    assert_true(tp_consumer_is_attached(watched));
    on_frame(clientd, f);
}

/* A consumer whose lease is revoked unmaps at once; while its new attach is unanswered nothing is delivered, however
 * intact the producer's frames (their descriptors wait in the bus). Once the driver maps it again, those of the
 * same epoch pass every check and arrive, then new ones. The driver runs in this thread at first, so that it
 * answers exactly when the test lets it. */
static void test_unmapped_consumer_drops_frames(void **state)
{
    (void)state;
    /* covers: W-15.21-12 */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    watched = c;
    uint8_t buf[256];
    seen_t s = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    make_payload(buf, sizeof(buf), 0);
    assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    while (s.frames < 1)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame_mapped, &s, 64);
    }
    tp_assert_ok(tp_driver_stop(F.driver));
    tp_assert_ok(tp_driver_revoke_lease(F.driver, tp_consumer_lease_id(c)));
    while (tp_driver_do_work(F.driver) > 0) /* publishes ShmLeaseRevoked */
    {
    }
    tp_consumer_counters_t k;
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame_mapped, &s, 64);
        tp_consumer_counters(c, &k);
    } while (k.lease_losses < 1);
    uint64_t ignored = k.descriptors_ignored;
    for (uint64_t i = 1; i <= 3; i++) /* the producer's lease stands: these are committed, intact frames */
    {
        make_payload(buf, sizeof(buf), i);
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    }
    for (int i = 0; i < 100; i++) /* the driver is not running: the consumer cannot be mapped */
    {
        tp_consumer_poll(c, on_frame_mapped, &s, 64);
        assert_false(tp_consumer_is_attached(c));
    }
    assert_int_equal(s.frames, 1);
    tp_assert_ok(tp_driver_start(F.driver));
    make_payload(buf, sizeof(buf), 4);
    while (!tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame_mapped, &s, 64);
    }
    assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    while (s.last_seq < 4)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame_mapped, &s, 64);
    }
    /* Frames 1-3 waited and were delivered from the remapped regions, unless the unanswered attach had timed out
     * and the consumer, between attempts, read and dropped their descriptors: accounted for either way. */
    tp_consumer_counters(c, &k);
    assert_int_equal(s.frames + (k.descriptors_ignored - ignored), 5);
    assert_int_equal(s.bad, 0);
    assert_int_equal(k.drops_gap + k.drops_late + k.drops_invalid, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_foreign_descriptors(void **state)
{
    (void)state;
    /* covers: W-15.18-2, W-15.21-10 */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    tp_bus_t *ib = NULL;
    tp_bus_publication_t *pub = NULL;
    tp_assert_ok(tp_bus_init(&ib, F.bus));
    tp_assert_ok(tp_bus_publication_open(&pub, ib, "aeron:ipc?term-length=4m", 1100, false));
    uint8_t buf[256];
    seen_t s = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    for (uint64_t i = 0; i < 3; i++)
    {
        make_payload(buf, sizeof(buf), i);
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    }
    while (s.frames < 3)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
    }
    uint64_t epoch = tp_consumer_epoch(c);
    /* An older epoch and another stream, both naming seq 10 (slot 2, which holds seq 2). Read as ours, they would
     * count 7 gaps, a late drop, and make the real seq 3 look like a duplicate. */
    inject_descriptor(pub, STREAM, epoch - 1, 10);
    inject_descriptor(pub, STREAM + 1, epoch, 10);
    tp_consumer_counters_t k;
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
        tp_consumer_counters(c, &k);
    } while (k.descriptors_ignored < 2);
    make_payload(buf, sizeof(buf), 3);
    assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
    while (s.frames < 4)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
    }
    tp_consumer_counters(c, &k);
    assert_int_equal(s.last_seq, 3);
    assert_int_equal(s.bad, 0);
    assert_int_equal(k.frames, 4);
    assert_int_equal(k.descriptors_ignored, 2);
    assert_int_equal(k.drops_gap, 0);
    assert_int_equal(k.drops_late, 0);
    assert_int_equal(k.drops_invalid, 0);
    tp_bus_publication_close(pub);
    tp_bus_close(ib);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_overwritten_during_callback_is_late(void **state)
{
    (void)state;
    /* covers: W-11-1 (STREAM mode: every descriptor is processed, a frame overwritten meanwhile is dropped late) */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    uint8_t buf[100];
    uint8_t scratch[100];
    /* The handler lets the producer lap the ring, then tries to copy the frame out: the copy is refused, the
     * frame says it changed, and the library counts a late drop, not a frame. covers: W-15.3-2, W-8.3-12 */
    make_payload(buf, sizeof(buf), 0);
    int64_t seq = tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    seen_t s = { .lapper = p, .scratch = scratch };
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 1), 1);
    assert_int_equal(s.last_seq, (uint64_t)seq);
    assert_int_equal(s.copy_rc, -1);
    assert_false(s.was_intact);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 0);
    assert_int_equal(k.drops_late, 1);
    /* A frame copied out intact before the lap is safe: it counts as a frame even though its slot changed. */
    while (tp_consumer_poll(c, on_frame, &(seen_t){ 0 }, 64) > 0)
    {
    }
    tp_consumer_counters(c, &k);
    uint64_t frames_before = k.frames;
    uint64_t late_before = k.drops_late;
    seq = tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    seen_t s2 = { .lapper = p, .scratch = scratch, .copy_first = true };
    assert_int_equal(tp_consumer_poll(c, on_frame, &s2, 1), 1);
    assert_int_equal(s2.copy_rc, 0);
    assert_false(s2.was_intact);
    assert_memory_equal(s2.copy, buf, sizeof(buf));
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, frames_before + 1);
    assert_int_equal(k.drops_late, late_before);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    uint8_t buf[1024];
    make_payload(buf, sizeof(buf), 1);
    seen_t s = { 0 };
    for (int i = 0; i < 100; i++) /* warm up */
    {
        tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
        tp_consumer_poll(c, on_frame, &s, 16);
    }
    /* This thread's allocations: the embedded driver's thread has housekeeping of its own (status file, epoch
     * GC scans) that may fall into the window on a loaded machine. The library's own counter is process-wide and
     * still counts under ASan and TSan (which own malloc): the driver thread pauses for the window. */
    tp_assert_ok(tp_driver_stop(F.driver));
    uint64_t before = tp_malloc_count_thread();
    uint64_t before_tp = tp_alloc_count();
    for (int i = 0; i < 5000; i++)
    {
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
        assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
        tp_producer_do_work(p);
        /* and the pull style, and the claim path */
        tp_frame_t f;
        assert_true(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
        assert_int_equal(tp_consumer_next(c, &f), 1);
        tp_claim_t claim;
        tp_assert_ok(tp_producer_try_claim_by_size(p, sizeof(buf), &claim));
        memcpy(claim.buffer, buf, sizeof(buf));
        assert_true(tp_producer_commit(p, &claim, sizeof(buf), tensor_of(sizeof(buf)), 0, 0) >= 0);
        assert_int_equal(tp_consumer_next(c, &f), 1);
    }
    assert_int_equal(tp_alloc_count(), before_tp);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count_thread(), before);
    }
    tp_assert_ok(tp_driver_start(F.driver));
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_pull_style(void **state)
{
    (void)state;
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    uint8_t buf[200];
    for (uint64_t i = 0; i < 3; i++)
    {
        make_payload(buf, sizeof(buf), i);
        assert_int_equal(tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 7, 0), (int64_t)i);
    }
    tp_frame_t f;
    for (uint64_t i = 0; i < 3; i++)
    {
        assert_int_equal(tp_consumer_next(c, &f), 1);
        assert_int_equal(f.seq, i);
        assert_int_equal(f.payload_length, sizeof(buf));
        assert_int_equal(f.meta_version, 7);
        assert_true(payload_ok(f.payload, f.payload_length));
    }
    assert_int_equal(tp_consumer_next(c, &f), 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 3);
    /* A frame held while the producer laps its slot is settled late at the next call; one copied out first is
     * accepted. */
    make_payload(buf, sizeof(buf), 3);
    tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    assert_int_equal(tp_consumer_next(c, &f), 1);
    for (uint64_t i = 0; i < 8; i++)
    {
        make_payload(buf, sizeof(buf), 100 + i);
        tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    }
    assert_false(tp_frame_is_intact(&f));
    assert_int_equal(tp_consumer_next(c, &f), 1); /* the oldest still in the ring */
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 3);
    assert_int_equal(k.drops_late, 1);
    uint8_t copy[200];
    tp_assert_ok(tp_frame_copy_out(&f, copy, sizeof(copy)));
    for (uint64_t i = 0; i < 8; i++)
    {
        tp_producer_offer_frame(p, buf, sizeof(buf), tensor_of(sizeof(buf)), 0, 0);
    }
    assert_int_equal(tp_consumer_next(c, &f), 1); /* settles the copied frame: accepted */
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 4);
    assert_int_equal(k.drops_late, 1);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_claim_path(void **state)
{
    (void)state;
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    attach_both(&p, &c);
    seen_t s = { 0 };
    uint16_t ids[4];
    uint32_t strides[4];
    assert_int_equal(tp_producer_pools(p, ids, strides, 4), 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(strides[0], 4096);
    assert_int_equal(ids[1], 2);
    assert_int_equal(strides[1], 65536);
    assert_int_equal(tp_producer_next_seq(p), 0);
    /* By size: 20 000 bytes need the 64 KiB pool; the "device" fills the slot in place. */
    tp_claim_t claim;
    tp_assert_ok(tp_producer_try_claim_by_size(p, 20000, &claim));
    assert_int_equal(claim.pool_id, 2);
    assert_int_equal(claim.capacity, 65536);
    assert_int_equal((uintptr_t)claim.buffer % 64, 0); /* the documented alignment, for any element type */
    make_payload(claim.buffer, 20000, claim.seq);
    /* While claimed, the slot reads as being written: a second claim is refused. */
    tp_claim_t other;
    tp_assert_fails_with(tp_producer_try_claim(p, 1, &other), "committed or aborted first");
    assert_int_equal(tp_producer_commit(p, &claim, 20000, tensor_of(20000), 3, 0), 0);
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    assert_int_equal(s.last_pool, 2);
    assert_int_equal(s.last_meta, 3);
    assert_int_equal((uintptr_t)s.last.payload % 64, 0);
    assert_int_equal(s.bad, 0);
    /* By pool id, aborted: nothing is published and the sequence is used again. */
    tp_assert_ok(tp_producer_try_claim(p, 1, &claim));
    assert_int_equal(claim.seq, 1);
    tp_assert_ok(tp_producer_abort(p, &claim));
    assert_int_equal(tp_producer_next_seq(p), 1);
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 0);
    tp_assert_ok(tp_producer_try_claim(p, 1, &claim));
    assert_int_equal(claim.seq, 1);
    make_payload(claim.buffer, 64, 1);
    /* Committing more than the slot holds is refused and releases the claim. */
    tp_assert_fails_with(tp_producer_commit(p, &claim, 5000, tensor_of(5000), 0, 0), "4096-byte slot");
    tp_assert_fails_with(tp_producer_abort(p, &claim), "no such claimed slot");
    tp_assert_fails_with(tp_producer_try_claim(p, 9, &claim), "no pool 9");
    tp_assert_ok(tp_producer_try_claim(p, 1, &claim));
    make_payload(claim.buffer, 64, 1);
    assert_int_equal(tp_producer_commit(p, &claim, 64, tensor_of(64), 0, 0), 1);
    assert_int_equal(tp_consumer_poll(c, on_frame, &s, 16), 1);
    assert_int_equal(s.last_seq, 1);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.frames, 2);
    assert_int_equal(k.drops_gap + k.drops_late + k.drops_invalid, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_arrive_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lapped_consumer_counts_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_descriptors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmapped_consumer_drops_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_far_behind_consumer_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwritten_during_callback_is_late, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_style, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
