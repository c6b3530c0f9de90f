/*
 * One bad value never stops a consumer: a forged descriptor naming a frame far ahead, a seq_commit scribbled into a
 * slot, a burst of descriptors naming epochs the driver never announced, and a tensor header describing more bytes
 * than the frame holds. Each is refused or refuted by what the ring itself shows, counted, and the frames that
 * follow arrive as usual. Our rules beyond the spec's text, from the hardening campaign.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "shm/tp_header_ring.h"
#include "shm/tp_shm_guard.h"
#include "shm/tp_shm_layout.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tp_client_fixture.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define STREAM 10
#define NSLOTS 8
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;
static tp_producer_t *producer;
static tp_consumer_t *consumer;
static tp_bus_t *forger_bus;
static tp_bus_publication_t *forger; /* another writer of the descriptor stream */

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "hostile");
    client_fixture_add_stream(&F, "cam", STREAM, "small", NSLOTS, 4096);
    tp_assert_ok(tp_driver_context_set(F.dctx, "policies.announce_period_ms", "100"));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    tp_assert_ok(tp_producer_attach(&producer, client, STREAM, TIMEOUT_NS));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.max_outstanding_seq_gap = 16;
    tp_assert_ok(tp_consumer_open(&consumer, client, STREAM, &o, TIMEOUT_NS));
    tp_assert_ok(tp_bus_init(&forger_bus, F.bus));
    tp_assert_ok(tp_bus_publication_open(&forger, forger_bus, "aeron:ipc?term-length=4m", 1100, false));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_bus_publication_close(forger);
    tp_bus_close(forger_bus);
    tp_consumer_close(consumer);
    tp_producer_close(producer);
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

static const tp_tensor_desc_t *bytes_tensor(uint32_t length)
{
    static tp_tensor_desc_t t;
    tp_tensor_bytes(&t, length);
    return &t;
}

static void offer(uint64_t count)
{
    uint8_t buf[64];
    for (uint64_t i = 0; i < count; i++)
    {
        memset(buf, (int)i, sizeof(buf));
        assert_true(tp_producer_offer_frame(producer, buf, sizeof(buf), bytes_tensor(sizeof(buf)), 0, 0) >= 0);
    }
}

typedef struct seen
{
    uint64_t frames;
    uint64_t last_seq;
} seen_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    s->frames++;
    s->last_seq = f->seq;
}

/* Poll until the consumer has accounted for every frame up to `seq` (delivered or dropped). */
static void poll_until_seq(seen_t *s, uint64_t seq)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (s->frames == 0 || s->last_seq < seq)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(consumer, on_frame, s, 64);
    }
}

static void forge_descriptor(uint64_t epoch, uint64_t seq)
{
    uint8_t buf[128];
    tp_wire_frame_descriptor_enc_t e;
    tp_wire_frame_descriptor_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_descriptor_set_stream_id(&e, STREAM);
    tp_wire_frame_descriptor_set_epoch(&e, epoch);
    tp_wire_frame_descriptor_set_seq(&e, seq);
    tp_wire_frame_descriptor_set_timestamp_ns(&e, UINT64_MAX);
    tp_wire_frame_descriptor_set_meta_version(&e, UINT32_MAX);
    int64_t n = tp_wire_frame_descriptor_enc_finish(&e);
    assert_true(n > 0 && tp_bus_offer(forger, buf, (size_t)n) > 0);
}

/* A writable mapping of the stream's header ring, as any process in the regions' group could make. */
static uint8_t *map_ring_writable(size_t *length)
{
    char epoch_dir[1024], path[1100];
    tp_assert_ok(tp_shm_layout_epoch_dir(epoch_dir, sizeof(epoch_dir), F.shm, "default", STREAM,
        tp_consumer_epoch(consumer)));
    tp_assert_ok(tp_shm_layout_header_path(path, sizeof(path), epoch_dir));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    *length = TP_SUPERBLOCK_BYTES + (size_t)NSLOTS * TP_HEADER_SLOT_BYTES;
    void *base = mmap(NULL, *length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(base != MAP_FAILED);
    return base;
}

static void test_forged_far_descriptor_is_refuted(void **state)
{
    (void)state;
    /* A descriptor naming seq 2^62 would have made every later frame look like a stale duplicate. Its slot holds an
     * older frame: the producer never wrote it. */
    seen_t s = { 0 };
    offer(3);
    poll_until_seq(&s, 2);
    forge_descriptor(tp_consumer_epoch(consumer), 1ull << 62);
    offer(3);
    poll_until_seq(&s, 5);
    tp_consumer_counters_t k;
    tp_consumer_counters(consumer, &k);
    assert_int_equal(s.frames, 6);
    assert_int_equal(k.seq_refuted, 1);
    assert_int_equal(k.drops_gap, 0);
    /* The same as the very first descriptor a fresh consumer sees. */
    tp_consumer_t *fresh = NULL;
    tp_assert_ok(tp_consumer_attach(&fresh, client, STREAM, TIMEOUT_NS));
    forge_descriptor(tp_consumer_epoch(fresh), 1ull << 62);
    offer(2);
    seen_t t = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (t.frames < 2)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(fresh, on_frame, &t, 64);
    }
    assert_int_equal(t.last_seq, 7);
    tp_consumer_counters(fresh, &k);
    assert_int_equal(k.seq_refuted, 1);
    tp_consumer_close(fresh);
}

static void test_scribbled_seq_commit_does_not_stall(void **state)
{
    (void)state;
    /* Frame 3's slot is overwritten with a seq 2^40 ahead before the consumer reads it: 2^40 past the gap limit, it
     * made the consumer resync to 2^40 + 3 and skip everything below. The next frame's slot still holds its own
     * frame, which no genuine resync target that far ahead allows. */
    seen_t s = { 0 };
    offer(3);
    poll_until_seq(&s, 2);
    size_t length = 0;
    uint8_t *ring = map_ring_writable(&length);
    offer(1);
    uint64_t poison = (1ull << 40) + 3;
    tp_store_release_u64((uint64_t *)(void *)tp_header_slot_at(ring, 3), poison << 1 | 1);
    offer(6);
    poll_until_seq(&s, 9);
    tp_consumer_counters_t k;
    tp_consumer_counters(consumer, &k);
    assert_int_equal(s.frames, 3 + 6);
    assert_int_equal(k.drops_gap, 1); /* frame 3 itself is gone */
    assert_int_equal(k.seq_refuted, 1);
    /* A value that cannot even be in that slot (another index) is a scribble, not a reason to resync. */
    offer(1); /* seq 10, slot 2 */
    tp_store_release_u64((uint64_t *)(void *)tp_header_slot_at(ring, 2), ((1ull << 40) + 5) << 1 | 1);
    offer(1);
    poll_until_seq(&s, 11);
    tp_consumer_counters(consumer, &k);
    assert_int_equal(k.drops_invalid, 1);
    assert_int_equal(k.resyncs, 1);
    munmap(ring, length);
}

static void test_unannounced_epochs_do_not_remap(void **state)
{
    (void)state;
    /* 1,000 descriptors naming epochs the driver never announced: each used to make the consumer detach and attach
     * again. The driver's announce is the only source of a new epoch. */
    seen_t s = { 0 };
    offer(1);
    poll_until_seq(&s, 0);
    uint64_t epoch = tp_consumer_epoch(consumer);
    for (uint64_t i = 0; i < 1000; i++)
    {
        forge_descriptor(epoch + 1 + i % 7, i);
    }
    offer(2);
    poll_until_seq(&s, 2);
    tp_consumer_counters_t k;
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    do /* the forger's image is drained on its own schedule */
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(consumer, on_frame, &s, 64);
        tp_consumer_counters(consumer, &k);
    } while (k.descriptors_ignored < 1000);
    assert_int_equal(k.remaps, 0);
    assert_int_equal(k.descriptors_ignored, 1000);
    assert_int_equal(tp_consumer_epoch(consumer), epoch);
    assert_int_equal(s.frames, 3);
}

static void test_layout_larger_than_the_frame(void **state)
{
    (void)state;
    /* A 64-byte frame described as 65536 x 65536: the producer refuses it before copying a byte ... */
    uint8_t buf[64] = { 0 };
    tp_tensor_desc_t big = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2,
        .dims = { 65536, 65536 } };
    tp_assert_fails_with(tp_producer_offer_frame(producer, buf, sizeof(buf), &big, 0, 0),
        "span 4294967296 bytes, more than the frame's 64");
    /* ... and a consumer drops a slot whose header was changed to say so. */
    seen_t s = { 0 };
    size_t length = 0;
    uint8_t *ring = map_ring_writable(&length);
    offer(1);
    uint8_t *dims = tp_header_slot_at(ring, 0) + TP_WIRE_SLOT_HEADER_BLOCK_LENGTH + 4 + 8 +
                    TP_WIRE_TENSOR_HEADER_DIMS_OFFSET;
    int32_t huge = 65536;
    memcpy(dims, &huge, sizeof(huge));
    offer(1);
    poll_until_seq(&s, 1);
    tp_consumer_counters_t k;
    tp_consumer_counters(consumer, &k);
    assert_int_equal(s.frames, 1);
    assert_int_equal(k.drops_invalid, 1);
    munmap(ring, length);
}

static uint64_t payload_sum_ok;

static void on_checked_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    uint8_t copy[64];
    if (tp_frame_copy_out(f, copy, sizeof(copy)) >= 0)
    {
        bool is_uniform = f->payload_length == sizeof(copy);
        for (size_t i = 1; i < sizeof(copy) && is_uniform; i++)
        {
            is_uniform = copy[i] == copy[0];
        }
        payload_sum_ok += is_uniform;
        s->frames++;
        s->last_seq = f->epoch; /* here: the epoch the frame came from */
    }
}

static void test_truncated_regions_kill_nobody(void **state)
{
    (void)state;
    /* Any process that can write the regions (group members, with the default 660) can truncate them. That killed
     * the producer and every consumer (SIGBUS). Now whoever notices first (the producer or consumer from its SIGBUS
     * guard or size check, the driver from its size check) ends the epoch, the producer attaches again, the consumer
     * maps the new epoch, and the frames that arrive are whole. */
    tp_shm_guard_install(); /* cmocka installs its own SIGBUS handler around each test function */
    seen_t s = { 0 };
    offer(3);
    poll_until_seq(&s, 2);
    uint64_t epoch = tp_consumer_epoch(consumer);
    char epoch_dir[1024], path[1100];
    tp_assert_ok(tp_shm_layout_epoch_dir(epoch_dir, sizeof(epoch_dir), F.shm, "default", STREAM, epoch));
    tp_assert_ok(tp_shm_layout_pool_path(path, sizeof(path), epoch_dir, 1));
    tp_assert_ok(truncate(path, 0));
    tp_assert_ok(tp_shm_layout_header_path(path, sizeof(path), epoch_dir));
    tp_assert_ok(truncate(path, 0));
    seen_t after = { 0 };
    payload_sum_ok = 0;
    uint8_t buf[64];
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    for (uint64_t i = 0; after.frames < 3; i++)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        memset(buf, (int)i, sizeof(buf));
        (void)tp_producer_offer_frame(producer, buf, sizeof(buf), bytes_tensor(sizeof(buf)), 0, 0);
        tp_producer_do_work(producer);
        tp_consumer_poll(consumer, on_checked_frame, &after, 64);
        usleep(1000);
    }
    assert_int_equal(payload_sum_ok, after.frames);
    assert_true(after.last_seq > epoch);
    tp_consumer_counters_t k;
    tp_consumer_counters(consumer, &k);
    assert_true(k.remaps >= 1);
}

static void test_one_process_holds_many_leases(void **state)
{
    (void)state;
    /* The 65th consumer of one client used to fail ("already holds 64 leases") although the driver takes 1024:
     * each lease opened its own QoS publication, and a stream took 64. 200 consumers of one client now share one. */
    enum { MANY = 200 };
    static tp_consumer_t *many[MANY];
    for (int i = 0; i < MANY; i++)
    {
        tp_assert_ok(tp_consumer_attach(&many[i], client, STREAM, TIMEOUT_NS));
    }
    offer(1);
    for (int i = 0; i < MANY; i++)
    {
        seen_t s = { 0 };
        int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
        while (s.frames < 1)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            tp_consumer_poll(many[i], on_frame, &s, 64);
        }
    }
    for (int i = 0; i < MANY; i++)
    {
        tp_assert_ok(tp_consumer_close(many[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forged_far_descriptor_is_refuted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scribbled_seq_commit_does_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unannounced_epochs_do_not_remap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_larger_than_the_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_regions_kill_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_process_holds_many_leases, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
