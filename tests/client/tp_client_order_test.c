/*
 * Start order and announces, with an embedded driver:
 *  - a consumer opened before any driver exists attaches by itself once one runs, and before a producer exists
 *    it follows the producer's epoch without losing the first frame; a blocking attach without a driver times
 *    out with a clear error;
 *  - several consumers, one attaching mid-stream;
 *  - the ShmPoolAnnounce rules (wire spec 10.1.1, 15.1), with announces injected on the control stream: stale,
 *    stamped before the subscription joined (MONOTONIC; REALTIME_SYNCED is exempt), lower epoch, a layout that
 *    differs from the mapping, and a superblock that changed underneath.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "shm/tp_shm_layout.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tp_sbe_wire.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static void start_driver(void)
{
    client_fixture_start(&F);
}

/* Driver context ready but not started; client connected (its announce window: 3 x 10 s). */
static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-order");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 16, 4096);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.announce_period_ms", "10000"));
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

static const tp_tensor_desc_t *bytes_tensor(uint32_t length)
{
    static tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)length;
    return &t;
}

typedef struct seen
{
    uint64_t frames;
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t bad;
} seen_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    if (s->frames == 0)
    {
        s->first_seq = f->seq;
    }
    s->frames++;
    s->last_seq = f->seq;
    s->bad += f->payload_length != 64 || f->payload[0] != (uint8_t)f->seq;
}

static int64_t offer(tp_producer_t *p, uint64_t tag)
{
    uint8_t buf[64];
    memset(buf, (int)(uint8_t)tag, sizeof(buf));
    return tp_producer_offer_frame(p, buf, sizeof(buf), bytes_tensor(sizeof(buf)), 0, 0);
}

/* Poll until the consumer has seen `frames` frames (bounded). */
static void poll_until_frames(tp_consumer_t *c, seen_t *s, uint64_t frames)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (s->frames < frames)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, s, 64);
    }
}

static void test_consumer_before_driver_and_producer(void **state)
{
    (void)state;
    /* Nobody answers yet: a blocking attach gives up with the reason at its timeout; a non-blocking one keeps
     * trying. covers: D-4.2-5s */
    tp_producer_t *p = NULL;
    tp_assert_fails_with(tp_producer_attach(&p, client, STREAM, 200 * TP_NS_PER_MS), "no answer from the driver");
    assert_null(p);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_async(&c, client, STREAM));
    seen_t s = { 0 };
    for (int i = 0; i < 20; i++)
    {
        assert_int_equal(tp_consumer_poll(c, on_frame, &s, 64), 0);
        usleep(1000);
    }
    assert_false(tp_consumer_is_attached(c));
    assert_int_equal(tp_consumer_lease_id(c), 0);
    /* The driver starts: the consumer's pending request is answered (it is resent until then). */
    start_driver();
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
        usleep(1000);
    }
    uint64_t first_epoch = tp_consumer_epoch(c);
    assert_string_equal(tp_consumer_last_error(c), "");
    /* Then the producer: a new epoch. Its first frame is not lost to the remap.
     * covers: W-10.1.1-3, W-15.2-3, D-6-5 */
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    assert_true(tp_producer_epoch(p) > first_epoch);
    for (uint64_t i = 0; i < 5; i++)
    {
        assert_int_equal(offer(p, i), (int64_t)i);
    }
    poll_until_frames(c, &s, 5);
    assert_int_equal(s.first_seq, 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(tp_consumer_epoch(c), tp_producer_epoch(p));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.remaps, 1);
    assert_int_equal(k.drops_gap, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
}

static void test_async_producer_and_refusal(void **state)
{
    (void)state;
    start_driver();
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach_async(&p, client, STREAM));
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!tp_producer_is_attached(p))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        assert_true(offer(p, 0) < 0); /* not attached yet: offers fail, nothing is written */
        tp_producer_do_work(p);
    }
    /* A second producer is refused; the async one keeps the reason and retries in the background. */
    tp_producer_t *second = NULL;
    tp_assert_ok(tp_producer_attach_async(&second, client, STREAM));
    while (strstr(tp_producer_last_error(second), "already has a producer") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(second);
        tp_producer_do_work(p);
    }
    assert_false(tp_producer_is_attached(second));
    /* When the first leaves, the second gets the stream by itself. */
    tp_producer_close(p);
    while (!tp_producer_is_attached(second))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(second);
        usleep(1000);
    }
    assert_int_equal(offer(second, 0) >= 0, 1);
    tp_producer_close(second);
}

static void test_several_consumers_one_mid_stream(void **state)
{
    (void)state;
    start_driver();
    tp_producer_t *p = NULL;
    tp_consumer_t *early = NULL;
    tp_consumer_t *late = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&early, client, STREAM, TIMEOUT_NS));
    seen_t a = { 0 };
    seen_t b = { 0 };
    for (uint64_t i = 0; i < 10; i++)
    {
        offer(p, i);
        poll_until_frames(early, &a, i + 1);
    }
    /* The late consumer starts with the frames published after it subscribed; what came before is not a gap. */
    tp_assert_ok(tp_consumer_attach(&late, client, STREAM, TIMEOUT_NS));
    for (uint64_t i = 10; i < 30; i++)
    {
        offer(p, i);
        poll_until_frames(early, &a, i + 1);
        poll_until_frames(late, &b, i - 9);
    }
    assert_int_equal(a.frames, 30);
    assert_int_equal(b.frames, 20);
    assert_int_equal(b.first_seq, 10);
    assert_int_equal(b.last_seq, 29);
    assert_int_equal(a.bad + b.bad, 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(late, &k);
    assert_int_equal(k.drops_gap, 0);
    assert_int_equal(k.remaps, 0);
    tp_consumer_close(late);
    tp_consumer_close(early);
    tp_producer_close(p);
}

/* ---- announces injected on the control stream ---- */

static tp_bus_t *inject_bus;
static tp_bus_publication_t *inject_pub;

static void inject_announce(uint64_t epoch, uint64_t stamp_ns, uint8_t clock_domain, uint32_t header_nslots)
{
    uint8_t buf[1024];
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_shm_pool_announce_set_stream_id(&e, STREAM);
    tp_wire_shm_pool_announce_set_producer_id(&e, 0);
    tp_wire_shm_pool_announce_set_epoch(&e, epoch);
    tp_wire_shm_pool_announce_set_announce_timestamp_ns(&e, stamp_ns);
    tp_wire_shm_pool_announce_set_announce_clock_domain(&e, clock_domain);
    tp_wire_shm_pool_announce_set_layout_version(&e, TP_LAYOUT_VERSION);
    tp_wire_shm_pool_announce_set_header_nslots(&e, header_nslots);
    tp_wire_shm_pool_announce_set_header_slot_bytes(&e, TP_HEADER_SLOT_BYTES);
    tp_wire_shm_pool_announce_payload_pools_enc_t pools;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &pools, 1);
    tp_wire_shm_pool_announce_payload_pools_enc_next(&pools);
    tp_wire_shm_pool_announce_payload_pools_set_pool_id(&pools, 1);
    tp_wire_shm_pool_announce_payload_pools_set_pool_nslots(&pools, header_nslots);
    tp_wire_shm_pool_announce_payload_pools_set_stride_bytes(&pools, 4096);
    tp_wire_shm_pool_announce_payload_pools_put_region_uri(&pools, "shm:file?path=/nowhere/1.pool", 29);
    tp_wire_shm_pool_announce_put_header_region_uri(&e, "shm:file?path=/nowhere/header.ring", 34);
    int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
    assert_true(n > 0);
    assert_true(tp_bus_offer(inject_pub, buf, (size_t)n) > 0);
}

/* Poll (announces are read by the consumer's ticks) until the client ignored n announces in all. */
static void poll_until_ignored(tp_consumer_t *c, uint64_t n)
{
    seen_t s = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (client->announces_ignored < n)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
    }
    assert_int_equal(client->announces_ignored, n);
}

/* Poll until the consumer mapped a new attachment n times in all, and is attached. */
static void poll_until_remaps(tp_consumer_t *c, uint64_t n)
{
    seen_t s = { 0 };
    tp_consumer_counters_t k = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (k.remaps < n || !tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, &s, 64);
        tp_consumer_counters(c, &k);
    }
    assert_int_equal(k.remaps, n);
}

static void test_announce_rules(void **state)
{
    (void)state;
    /* covers: W-10.1.1-7s (the window is 3 x the announce period: 30 s here) */
    start_driver();
    tp_assert_ok(tp_bus_init(&inject_bus, F.bus));
    tp_assert_ok(tp_bus_publication_open(&inject_pub, inject_bus, "aeron:ipc?term-length=4m", 1000, false));
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    uint64_t epoch = tp_consumer_epoch(c);
    int64_t now = tp_clock_monotonic_ns();
    assert_true(now > 40 * TP_NS_PER_S); /* the stale stamp below must be a valid monotonic time */
    uint64_t ignored = client->announces_ignored;

    /* Stale (older than 3 x 10 s) with a newer epoch: ignored. covers: W-10.1.1-4, W-10.1.1-6, W-15.1-4 */
    inject_announce(epoch + 5, (uint64_t)(now - 31 * TP_NS_PER_S), TP_WIRE_CLOCK_DOMAIN_MONOTONIC, 16);
    poll_until_ignored(c, ignored + 1);

    /* MONOTONIC, fresh, but stamped before our subscription joined: ignored. covers: W-10.1.1-8 */
    inject_announce(epoch + 5, (uint64_t)(client->join_time_ns - 1000), TP_WIRE_CLOCK_DOMAIN_MONOTONIC, 16);
    poll_until_ignored(c, ignored + 2);

    /* A lower epoch, fresh: ignored (follow the highest epoch). covers: W-10.1.1-5 */
    inject_announce(epoch - 1, (uint64_t)tp_clock_monotonic_ns(), TP_WIRE_CLOCK_DOMAIN_MONOTONIC, 16);
    poll_until_ignored(c, ignored + 3);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.remaps, 0);
    assert_int_equal(tp_consumer_epoch(c), epoch);

    /* The mapped epoch, but a header ring of another size than the mapping: unmap and map again.
     * covers: W-15.1-1, W-15.1-2, W-15.14-4 */
    inject_announce(epoch, (uint64_t)tp_clock_monotonic_ns(), TP_WIRE_CLOCK_DOMAIN_MONOTONIC, 32);
    poll_until_remaps(c, 1);

    /* The mapped epoch and layout, but the superblock's pid changed underneath (a restart that kept the epoch):
     * checked on the announce, unmapped and mapped again. covers: W-15.1-3, W-15.14-2 */
    char epoch_dir[1024], header[1100];
    tp_assert_ok(tp_shm_layout_epoch_dir(epoch_dir, sizeof(epoch_dir), F.shm, "default", STREAM, epoch));
    tp_assert_ok(tp_shm_layout_header_path(header, sizeof(header), epoch_dir));
    int fd = open(header, O_RDWR);
    assert_true(fd >= 0);
    uint64_t pid = 0x7fffffffu;
    assert_int_equal(pwrite(fd, &pid, sizeof(pid), TP_WIRE_SHM_REGION_SUPERBLOCK_PID_OFFSET), sizeof(pid));
    close(fd);
    inject_announce(epoch, (uint64_t)tp_clock_monotonic_ns(), TP_WIRE_CLOCK_DOMAIN_MONOTONIC, 16);
    poll_until_remaps(c, 2);
    assert_int_equal(tp_consumer_epoch(c), epoch);
    assert_true(tp_producer_is_attached(p)); /* a producer follows only newer epochs */

    /* The producer leaves: the driver's announce of the next epoch moves the consumer. */
    tp_producer_close(p);
    poll_until_remaps(c, 3);
    uint64_t next = tp_consumer_epoch(c);
    assert_true(next > epoch);

    /* REALTIME_SYNCED: no join-time rule, only the window. A newer epoch stamped (in realtime) before the join
     * is followed: the consumer unmaps and attaches again. covers: W-10.1.1-9, W-15.21-8 */
    int64_t before_join = tp_clock_realtime_ns() - (tp_clock_monotonic_ns() - client->join_time_ns) - 1000;
    inject_announce(next + 5, (uint64_t)before_join, TP_WIRE_CLOCK_DOMAIN_REALTIME_SYNCED, 16);
    poll_until_remaps(c, 4);
    assert_int_equal(client->announces_ignored, ignored + 3);

    /* A new producer: frames flow from its first one. */
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    seen_t s = { 0 };
    offer(p, 0);
    offer(p, 1);
    poll_until_frames(c, &s, 2);
    assert_int_equal(s.first_seq, 0);
    assert_int_equal(s.bad, 0);
    tp_consumer_close(c);
    tp_producer_close(p);
    tp_bus_publication_close(inject_pub);
    tp_bus_close(inject_bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consumer_before_driver_and_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_producer_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_consumers_one_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
