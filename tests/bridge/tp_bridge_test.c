/*
 * Two "hosts" in one process: driver A (its own bus and SHM base) has the source streams, driver B the destination
 * streams. A bridge instance on A sends, one on B receives, over aeron:udp on loopback (straight, or through a
 * lossy relay). B's consumers cannot tell a bridged stream from a local one: bytes, seq, timestamp, meta_version,
 * tensor and trace id arrive as A's producer published them, in B's own pools; metadata, TraceLinkSet and
 * FrameProgress follow with their stream id rewritten; nothing torn or corrupt is ever delivered.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bridge/tp_bridge.h"
#include "cli/tp_udp_relay.h"
#include "client/tp_client_fixture.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_metadata.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_tracelink.h"
#include "wire/tp_tensor.h"
#include "tp_sbe_wire.h"
#include "tp_bridge_fixture.h"
#include "tp_malloc_count.h"
#include "tp_test_util.h"

#define SOURCE 10
#define SOURCE2 11
#define DEST 20
#define DEST2 21
#define DEST_CONTROL 1077
#define SENT_FRAMES 5000
#define WAIT_NS (60 * TP_NS_PER_S) /* generous: CI machines are shared and slow at times */

static client_fixture_t A;
static client_fixture_t B;
static int port;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&A, "bridge-a");
    client_fixture_add_stream(&A, "cam", SOURCE, "src", 32, SRC_STRIDE);
    tp_assert_ok(tp_driver_context_add_stream(A.dctx, "cam2", SOURCE2, "src"));
    client_fixture_prepare(&B, "bridge-b");
    /* B's pools are not A's: ids 5 and 6, and nothing above 128 KiB fits. */
    const uint16_t ids[] = { 5, 6 };
    const uint32_t strides[] = { SMALL_STRIDE, LARGE_STRIDE };
    tp_assert_ok(tp_driver_context_add_profile(B.dctx, "dst", 32, ids, strides, 2));
    tp_assert_ok(tp_driver_context_add_stream(B.dctx, "cam-remote", DEST, "dst"));
    tp_assert_ok(tp_driver_context_add_stream(B.dctx, "cam2-remote", DEST2, "dst"));
    tp_assert_ok(tp_driver_context_set(B.dctx, "policies.allow_dynamic_streams", "true"));
    tp_assert_ok(tp_driver_context_set(B.dctx, "driver.stream_id_range", "50000-50009"));
    client_fixture_start(&A);
    client_fixture_start(&B);
    port = 37000 + (int)(getpid() % 9000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_fixture_close(&A);
    client_fixture_close(&B);
    return 0;
}

static const char *one_mapping = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n"
                                 "source_control_stream_id = 1000\ndest_control_stream_id = 1077\n";

typedef struct ends
{
    tp_client_t *a_client; /* the sending bridge's */
    tp_client_t *b_client; /* the receiving bridge's */
    tp_client_t *app_a;    /* the source producer's */
    tp_client_t *app_b;    /* the destination consumer's */
    tp_bus_t *a_bus;
    tp_bus_t *b_bus;
    tp_bridge_t *sender;
    tp_bridge_t *receiver;
    tp_bridge_config_t send;    /* kept for reopening an end */
    tp_bridge_config_t receive;
} ends_t;

static void ends_open(ends_t *e, const tp_bridge_config_t *send, const tp_bridge_config_t *receive)
{
    tp_assert_ok(tp_client_connect(&e->a_client, A.cctx));
    tp_assert_ok(tp_client_connect(&e->b_client, B.cctx));
    tp_assert_ok(tp_client_connect(&e->app_a, A.cctx));
    tp_assert_ok(tp_client_connect(&e->app_b, B.cctx));
    tp_assert_ok(tp_bus_init(&e->a_bus, A.bus));
    tp_assert_ok(tp_bus_init(&e->b_bus, B.bus));
    tp_assert_ok(tp_bridge_open(&e->receiver, e->b_client, e->b_bus, receive));
    tp_assert_ok(tp_bridge_open(&e->sender, e->a_client, e->a_bus, send));
}

static void ends_close(ends_t *e)
{
    tp_bridge_close(e->sender);
    tp_bridge_close(e->receiver);
    tp_bus_close(e->a_bus);
    tp_bus_close(e->b_bus);
    tp_client_close(e->a_client);
    tp_client_close(e->b_client);
    tp_client_close(e->app_a);
    tp_client_close(e->app_b);
}

/* Both ends of one_mapping on loopback port + port_offset, A's source producer and B's consumer of the
 * destination. */
static void ends_start(ends_t *e, int port_offset, tp_producer_t **source, tp_consumer_t **dest)
{
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "aeron:udp?endpoint=127.0.0.1:%d", port + port_offset);
    bridge_fixture_config(&e->send, endpoint, "send", "", one_mapping);
    bridge_fixture_config(&e->receive, endpoint, "receive", "", one_mapping);
    ends_open(e, &e->send, &e->receive);
    tp_assert_ok(tp_producer_attach(source, e->app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(dest, e->app_b, DEST));
}

/* One duty cycle of both bridges; the work done. */
static int ends_work(ends_t *e)
{
    int work = 0;
    for (int i = 0; i < 4; i++)
    {
        work += tp_bridge_do_work(e->sender, tp_clock_monotonic_ns());
        work += tp_bridge_do_work(e->receiver, tp_clock_monotonic_ns());
    }
    return work;
}

/* Messages of stream `id` on a raw subscription: how many, and of which template. */
typedef struct raw_count
{
    uint32_t stream_id;
    uint16_t schema_id;
    uint16_t template_id;
    uint64_t epoch; /* FrameProgress: the epoch they must carry (0: any) */
    int count;
    int wrong_epoch;
} raw_count_t;

static void on_raw(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    raw_count_t *c = clientd;
    tp_sbe_header_t h;
    uint32_t id;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != c->schema_id || h.template_id != c->template_id ||
        length < TP_SBE_HEADER_LENGTH + 12)
    {
        return;
    }
    memcpy(&id, buffer + TP_SBE_HEADER_LENGTH, sizeof(id));
    if (id == c->stream_id)
    {
        uint64_t epoch;
        memcpy(&epoch, buffer + TP_SBE_HEADER_LENGTH + 4, sizeof(epoch));
        c->count++;
        c->wrong_epoch += c->epoch != 0 && epoch != c->epoch;
    }
}

static void publish_tracelink(tp_bus_publication_t *pub, uint64_t seq)
{
    uint8_t buf[256];
    tp_tracelink_trace_link_set_enc_t e;
    tp_tracelink_trace_link_set_enc_begin(&e, buf, sizeof(buf));
    tp_tracelink_trace_link_set_set_stream_id(&e, SOURCE);
    tp_tracelink_trace_link_set_set_epoch(&e, 1);
    tp_tracelink_trace_link_set_set_seq(&e, seq);
    tp_tracelink_trace_link_set_set_trace_id(&e, 0x5000 + seq);
    tp_tracelink_trace_link_set_parents_enc_t g;
    tp_tracelink_trace_link_set_parents_begin(&e, &g, 2);
    tp_tracelink_trace_link_set_parents_enc_next(&g);
    tp_tracelink_trace_link_set_parents_set_trace_id(&g, 77);
    tp_tracelink_trace_link_set_parents_enc_next(&g);
    tp_tracelink_trace_link_set_parents_set_trace_id(&g, 78);
    tp_tracelink_trace_link_set_parents_end(&g);
    int64_t n = tp_tracelink_trace_link_set_enc_finish(&e);
    assert_true(n > 0);
    tp_bus_offer(pub, buf, (size_t)n);
}

/* Frames of 1 B to 200 KiB cross; the ones no pool of B can hold are dropped and counted; the rest arrive whole
 * in B's pools, with everything the source gave them. Metadata, TraceLinkSet and FrameProgress are republished on
 * B under the destination's stream id (progress keeping the source epoch); the source's announces never are.
 * covers: B-2.1-1, B-2.2-1, B-4-2, B-5.2-12s, B-5.2-23s, B-6-10, B-6-11, B-6-12, B-6-13, B-6-14, B-7-1, B-7-2, B-7-3,
 * B-7.1-1, B-7.1-2, B-7.1-3, B-7.1-4, B-7.1-5, B-7.1-8, B-7.1-9, B-7.2-1, B-7.2-2, B-7.2-3, B-7.2-4, B-9-2, B-9-3,
 * B-9-4, B-9-5, B-9-6, B-9-12 */
static void test_bridged_stream_looks_local(void **state)
{
    (void)state;
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "aeron:udp?endpoint=127.0.0.1:%d", port);
    static tp_bridge_config_t send;
    static tp_bridge_config_t receive;
    const char *options = "forward_tracelink = true\nforward_progress = true\n";
    bridge_fixture_config(&send, endpoint, "send", options, one_mapping);
    bridge_fixture_config(&receive, endpoint, "receive", options, one_mapping);
    ends_t e = { 0 };
    ends_open(&e, &send, &receive);
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_metadata_cache_t *meta;
    tp_assert_ok(tp_producer_attach(&source, e.app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_metadata_publisher_t *source_meta = tp_producer_metadata(source);
    tp_assert_ok(tp_metadata_set_source(source_meta, "left-camera", "a camera on host A"));
    tp_assert_ok(tp_metadata_set_text(source_meta, "lens", "8mm"));
    tp_assert_ok(tp_consumer_attach_async(&dest, e.app_b, DEST));
    tp_assert_ok(tp_metadata_cache_open(&meta, e.app_b, NULL, NULL));
    tp_bus_publication_t *a_meta_pub;
    tp_bus_subscription_t *b_meta_sub;
    tp_bus_subscription_t *b_progress_sub;
    tp_bus_subscription_t *b_control_sub;
    tp_assert_ok(tp_bus_publication_open(&a_meta_pub, e.a_bus, TP_BUS_DEFAULT_CHANNEL, 1300, false));
    tp_assert_ok(tp_bus_subscription_open(&b_meta_sub, e.b_bus, TP_BUS_DEFAULT_CHANNEL, 1300, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&b_progress_sub, e.b_bus, TP_BUS_DEFAULT_CHANNEL, DEST_CONTROL, NULL, NULL,
        NULL));
    tp_assert_ok(tp_bus_subscription_open(&b_control_sub, e.b_bus, TP_BUS_DEFAULT_CHANNEL, 1000, NULL, NULL, NULL));
    raw_count_t tracelinks = { .stream_id = DEST, .schema_id = TP_TRACELINK_SCHEMA_ID,
        .template_id = TP_TRACELINK_TRACE_LINK_SET_TEMPLATE_ID };
    raw_count_t progress = { .stream_id = DEST, .schema_id = TP_WIRE_SCHEMA_ID,
        .template_id = TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID, .epoch = tp_producer_epoch(source) };
    raw_count_t source_announces = { .stream_id = SOURCE, .schema_id = TP_WIRE_SCHEMA_ID,
        .template_id = TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID };
    seen_t seen = { 0 };
    uint64_t seq = 0;
    tp_metadata_view_t view = { 0 };
    bool has_meta = false;
    int64_t next_offer_ns = 0;
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    while (seen.frames < 300 || !has_meta || tracelinks.count == 0 || progress.count == 0)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            tp_strbuf_t j;
            tp_strbuf_init(&j);
            tp_bridge_status_json(e.sender, &j);
            tp_bridge_status_json(e.receiver, &j);
            fprintf(stderr, "%s", tp_strbuf_cstr(&j));
            fail_msg("frames %d meta %d tracelinks %d progress %d (sent %llu)", seen.frames, has_meta,
                tracelinks.count, progress.count, (unsigned long long)seq);
        }
        int64_t now = tp_clock_monotonic_ns();
        if (seq < SENT_FRAMES && now >= next_offer_ns && tp_consumer_is_attached(dest) && bridge_fixture_offer(source))
        {
            if (seq % 50 == 0)
            {
                publish_tracelink(a_meta_pub, seq);
            }
            seq++;
            next_offer_ns = now + TP_NS_PER_MS / 2; /* 2 kHz */
        }
        tp_producer_do_work(source);
        int work = ends_work(&e);
        tp_consumer_poll(dest, bridge_fixture_on_frame, &seen, 64);
        tp_metadata_cache_poll(meta, 64);
        tp_bus_poll(b_meta_sub, on_raw, &tracelinks, 64);
        tp_bus_poll(b_progress_sub, on_raw, &progress, 64);
        tp_bus_poll(b_control_sub, on_raw, &source_announces, 64);
        has_meta = tp_metadata_cache_get(meta, DEST, &view) && view.name != NULL;
        if (work == 0)
        {
            usleep(seq < SENT_FRAMES ? 200 : 2000);
        }
    }
    const tp_bridge_receiver_t *r = tp_bridge_receiver_at(e.receiver, 0);
    tp_bridge_receiver_counters_t rc;
    tp_bridge_receiver_counters(r, &rc);
    tp_bridge_counters_t sc;
    tp_bridge_counters_t bc;
    tp_bridge_counters(e.sender, &sc);
    tp_bridge_counters(e.receiver, &bc);
    print_message("sent %llu; B read %d; rebuilt %llu, no local pool %llu; metadata %llu/%llu, progress %llu/%llu\n",
        (unsigned long long)seq, seen.frames, (unsigned long long)rc.frames_rebuilt,
        (unsigned long long)rc.frames_no_local_pool, (unsigned long long)sc.metadata_forwarded,
        (unsigned long long)bc.metadata_republished, (unsigned long long)sc.progress_forwarded,
        (unsigned long long)bc.progress_republished);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(seen.wrong_pool, 0);
    assert_true(rc.frames_no_local_pool > 0); /* 128 KiB - 200 KiB: no pool of B */
    assert_int_equal(rc.drops[TP_BRIDGE_DROP_CRC] + rc.drops[TP_BRIDGE_DROP_CONFLICT], 0);
    assert_string_equal(view.name, "left-camera");
    assert_int_equal(view.meta_version, tp_metadata_version(source_meta));
    assert_int_equal(view.stream_id, DEST);
    const tp_metadata_attribute_t *lens = tp_metadata_find(&view, "lens");
    assert_non_null(lens);
    assert_memory_equal(lens->value, "8mm", 3);
    assert_int_equal(progress.wrong_epoch, 0);
    assert_int_equal(source_announces.count, 0); /* B's control stream never carries A's announces */
    assert_true(sc.announces_forwarded >= 1);
    tp_bus_publication_close(a_meta_pub);
    tp_bus_subscription_close(b_meta_sub);
    tp_bus_subscription_close(b_progress_sub);
    tp_bus_subscription_close(b_control_sub);
    tp_metadata_cache_close(meta);
    tp_consumer_close(dest);
    tp_producer_close(source);
    ends_close(&e);
}

/* Stream frames through the bridge until `want` arrived at B (or the source sent `limit`); returns frames sent. */
static uint64_t stream(ends_t *e, tp_producer_t *source, tp_consumer_t *dest, seen_t *seen, int want,
    uint64_t limit)
{
    uint64_t first = 0;
    uint64_t seq = first;
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    int target = seen->frames + want;
    while (seen->frames < target)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            tp_strbuf_t j;
            tp_strbuf_init(&j);
            tp_bridge_status_json(e->sender, &j);
            tp_bridge_status_json(e->receiver, &j);
            fprintf(stderr, "%s", tp_strbuf_cstr(&j));
            fail_msg("%d of %d frames", seen->frames, target);
        }
        if (seq < first + limit && tp_consumer_is_attached(dest) && bridge_fixture_offer(source))
        {
            seq++;
        }
        tp_producer_do_work(source);
        int work = ends_work(e);
        tp_consumer_poll(dest, bridge_fixture_on_frame, seen, 64);
        if (work == 0)
        {
            usleep(200); /* idle, as an agent would */
        }
    }
    return seq - first;
}

/* Through a relay that drops 1%, reorders 5%, duplicates 1% and flips a payload byte of 0.5% of the datagrams:
 * the transport repairs loss and order, the CRC catches the flips (dropped and counted), and every frame that
 * arrives is whole.
 * covers: B-3-1, B-5.3-1 */
static void test_through_a_lossy_link(void **state)
{
    (void)state;
    tp_udp_relay_t *relay;
    tp_udp_relay_options_t rates = { .drop = 0.01, .duplicate = 0.01, .reorder = 0.05, .flip = 0.005, .seed = 11 };
    assert_int_equal(tp_udp_relay_start(&relay, port + 2, port + 3, &rates), 0);
    char to_relay[128];
    char at_receiver[128];
    snprintf(to_relay, sizeof(to_relay), "aeron:udp?endpoint=127.0.0.1:%d", port + 2);
    snprintf(at_receiver, sizeof(at_receiver), "aeron:udp?endpoint=127.0.0.1:%d", port + 3);
    static tp_bridge_config_t send;
    static tp_bridge_config_t receive;
    /* Repairs through the relay thread take a while on a loaded (or sanitized) build: a long assembly timeout, so
     * that slowness is not counted as loss. */
    const char *patient = "assembly_timeout_ms = 3000\n";
    bridge_fixture_config(&send, to_relay, "send", patient, one_mapping);
    bridge_fixture_config(&receive, at_receiver, "receive", patient, one_mapping);
    ends_t e = { 0 };
    ends_open(&e, &send, &receive);
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_assert_ok(tp_producer_attach(&source, e.app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&dest, e.app_b, DEST));
    seen_t seen = { 0 };
    stream(&e, source, dest, &seen, 100, 100000);
    tp_bridge_receiver_counters_t rc;
    tp_bridge_receiver_counters(tp_bridge_receiver_at(e.receiver, 0), &rc);
    print_message("B read %d whole frames; CRC drops %llu\n", seen.frames,
        (unsigned long long)rc.drops[TP_BRIDGE_DROP_CRC]);
    assert_int_equal(seen.bad, 0);
    assert_true(rc.drops[TP_BRIDGE_DROP_CRC] > 0); /* the flips were seen, and none went through */
    tp_consumer_close(dest);
    tp_producer_close(source);
    ends_close(&e);
    tp_udp_relay_stop(relay);
}

/* The source producer restarts (a new epoch, seq from 0): the receiver drops what was in flight, takes a new local
 * epoch, and B's consumer follows with seqs that never go back within an epoch. A receiving bridge that restarts
 * gets a new local epoch too.
 * covers: B-8-1, B-8-2, B-8-5, W-15.2-2s */
static void test_source_and_receiver_restart(void **state)
{
    (void)state;
    static ends_t e;
    memset(&e, 0, sizeof(e));
    tp_producer_t *source;
    tp_consumer_t *dest;
    ends_start(&e, 4, &source, &dest);
    seen_t seen = { 0 };
    stream(&e, source, dest, &seen, 30, 100000);
    uint64_t first_epoch = seen.last_epoch;
    assert_true(first_epoch >= 1); /* whatever B's driver granted first (driver authority: see docs) */
    tp_producer_close(source);
    tp_assert_ok(tp_producer_attach(&source, e.app_a, SOURCE, 5 * TP_NS_PER_S));
    assert_int_equal(tp_producer_next_seq(source), 0); /* a new epoch numbers from 0 (W-15.2-2s) */
    stream(&e, source, dest, &seen, 30, 100000);
    assert_true(seen.last_epoch > first_epoch); /* a new source epoch: a new local one, above the previous */
    tp_bridge_receiver_counters_t rc;
    tp_bridge_receiver_counters(tp_bridge_receiver_at(e.receiver, 0), &rc);
    assert_true(rc.dest_reattaches >= 1);
    assert_true(rc.announces >= 2);
    /* the receiving bridge restarts */
    uint64_t before = seen.last_epoch;
    tp_bridge_close(e.receiver);
    tp_assert_ok(tp_bridge_open(&e.receiver, e.b_client, e.b_bus, &e.receive));
    stream(&e, source, dest, &seen, 30, 100000);
    assert_true(seen.last_epoch > before); /* the receiver restarted: above again */
    assert_int_equal(seen.bad, 0);
    assert_true(seen.epochs >= 3);
    tp_consumer_close(dest);
    tp_producer_close(source);
    ends_close(&e);
}

/* A destination that has a producer already fails the receiving mapping; dest_stream_id = 0 takes an id of the
 * range that B's driver grants, and the stream works like any other; two mappings share the channels.
 * covers: B-4-3, B-4-4, B-4-6 */
static void test_destinations(void **state)
{
    (void)state;
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "aeron:udp?endpoint=127.0.0.1:%d", port + 5);
    tp_client_t *client;
    tp_assert_ok(tp_client_connect(&client, B.cctx));
    tp_producer_t *squatter;
    tp_assert_ok(tp_producer_attach(&squatter, client, DEST, 5 * TP_NS_PER_S));
    static tp_bridge_config_t receive;
    bridge_fixture_config(&receive, endpoint, "receive", "", one_mapping);
    tp_bus_t *bus;
    tp_assert_ok(tp_bus_init(&bus, B.bus));
    tp_bridge_t *bridge = NULL;
    assert_int_equal(tp_bridge_open(&bridge, client, bus, &receive), -1);
    tp_test_assert_contains(tp_errmsg(), "mapping 10 -> 20 (receive)");
    assert_null(bridge);
    tp_producer_close(squatter);
    tp_bus_close(bus);
    tp_client_close(client);

    static tp_bridge_config_t send;
    const char *two = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 0\n"
                      "[[mappings]]\nsource_stream_id = 11\ndest_stream_id = 21\n";
    bridge_fixture_config(&send, endpoint, "send", "dest_stream_id_range = \"50003-50009\"", two);
    bridge_fixture_config(&receive, endpoint, "receive", "dest_stream_id_range = \"50003-50009\"", two);
    ends_t e = { 0 };
    ends_open(&e, &send, &receive);
    uint32_t allocated = tp_bridge_config_of(e.receiver)->mappings[0].dest_stream_id;
    assert_int_equal(allocated, 50003);
    assert_int_equal(tp_bridge_receiver_count(e.receiver), 2);
    tp_producer_t *source;
    tp_producer_t *source2;
    tp_consumer_t *dest;
    tp_consumer_t *dest2;
    tp_assert_ok(tp_producer_attach(&source, e.app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_producer_attach(&source2, e.app_a, SOURCE2, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&dest, e.app_b, allocated));
    tp_assert_ok(tp_consumer_attach_async(&dest2, e.app_b, DEST2));
    seen_t seen = { 0 };
    seen_t seen2 = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    uint64_t seq = 0;
    while (seen.frames < 20 || seen2.frames < 20)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_is_attached(dest) && tp_consumer_is_attached(dest2) && bridge_fixture_offer(source) &&
            bridge_fixture_offer(source2))
        {
            seq++;
        }
        tp_producer_do_work(source);
        tp_producer_do_work(source2);
        ends_work(&e);
        tp_consumer_poll(dest, bridge_fixture_on_frame, &seen, 64);
        tp_consumer_poll(dest2, bridge_fixture_on_frame, &seen2, 64);
        usleep(500);
    }
    assert_int_equal(seen.bad + seen2.bad, 0);
    tp_consumer_close(dest);
    tp_consumer_close(dest2);
    tp_producer_close(source);
    tp_producer_close(source2);
    ends_close(&e);
}

/* Once frames flow, the whole path (producer, sending bridge, UDP both ways, receiving bridge, local commit,
 * consumer) allocates nothing. The drivers pause meanwhile: the allocation count is the process's. */
static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    static ends_t e;
    memset(&e, 0, sizeof(e));
    tp_producer_t *source;
    tp_consumer_t *dest;
    ends_start(&e, 7, &source, &dest);
    seen_t seen = { 0 };
    stream(&e, source, dest, &seen, 50, 100000);
    tp_assert_ok(tp_driver_stop(A.driver));
    tp_assert_ok(tp_driver_stop(B.driver));
    uint64_t allocations = tp_alloc_count();
    uint64_t mallocs = tp_malloc_count_thread(); /* this thread's, libc included, where the hook is there */
    stream(&e, source, dest, &seen, 30, 100000);
    uint64_t after = tp_alloc_count();
    uint64_t mallocs_after = tp_malloc_count_thread();
    tp_assert_ok(tp_driver_start(A.driver));
    tp_assert_ok(tp_driver_start(B.driver));
    assert_int_equal(after, allocations);
    if (tp_malloc_count_available())
    {
        assert_int_equal(mallocs_after, mallocs);
    }
    assert_int_equal(seen.bad, 0);
    tp_consumer_close(dest);
    tp_producer_close(source);
    ends_close(&e);
}

static tp_bus_publication_t *raw_pubs[2];

static void pump_raw(void)
{
    for (int i = 0; i < 2; i++)
    {
        if (raw_pubs[i] != NULL)
        {
            tp_bus_publication_do_work(raw_pubs[i]);
        }
    }
}

static void offer_raw(tp_bus_publication_t *pub, const uint8_t *buf, size_t length)
{
    for (int i = 0; i < 1000 && tp_bus_offer(pub, buf, length) <= 0; i++)
    {
        tp_bus_publication_do_work(pub);
        usleep(100);
    }
}

static void progress_message(tp_bus_publication_t *pub, uint32_t stream_id, uint64_t epoch)
{
    uint8_t buf[128];
    tp_wire_frame_progress_enc_t e;
    tp_wire_frame_progress_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_progress_set_stream_id(&e, stream_id);
    tp_wire_frame_progress_set_epoch(&e, epoch);
    tp_wire_frame_progress_set_seq(&e, 3);
    tp_wire_frame_progress_set_payload_bytes_filled(&e, 10);
    tp_wire_frame_progress_set_state(&e, 1);
    offer_raw(pub, buf, (size_t)tp_wire_frame_progress_enc_finish(&e));
}

/* Run the receiving bridge (at fake time now_ns) until cond holds or 5 s of real time passed. */
#define RECEIVE_UNTIL(bridge, now_ns, cond)                                                                            \
    do                                                                                                                 \
    {                                                                                                                  \
        int64_t until_ = tp_clock_monotonic_ns() + 15 * TP_NS_PER_S;                                                  \
        while (!(cond) && tp_clock_monotonic_ns() < until_)                                                            \
        {                                                                                                              \
            tp_bridge_do_work((bridge), (now_ns));                                                                     \
            pump_raw();                                                                                                \
            usleep(200);                                                                                               \
        }                                                                                                              \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            tp_strbuf_t j_;                                                                                            \
            tp_strbuf_init(&j_);                                                                                       \
            tp_bridge_status_json((bridge), &j_);                                                                      \
            fprintf(stderr, "%s", tp_strbuf_cstr(&j_));                                                                \
            tp_strbuf_fini(&j_);                                                                                       \
        }                                                                                                              \
        assert_true(cond);                                                                                             \
    } while (0)

/* What a hostile or confused peer puts on the bridge channels, at a receiver driven by a fake clock: a bridge
 * chunk (schema 902, template 1, as ShmPoolAnnounce is in 900) on the control channel is not an announce; garbage is
 * counted; progress of no mapping, or of another source epoch, is dropped; a partial frame times out at the
 * configured assembly timeout, not before.
 * covers: B-7.2-5, B-9-7, B-9-8s, B-5.3a-2s, B-5.3a-4s, B-9-1s */
static void test_hostile_control_and_timeout(void **state)
{
    (void)state;
    char endpoint[128];
    snprintf(endpoint, sizeof(endpoint), "aeron:udp?endpoint=127.0.0.1:%d", port + 6);
    static tp_bridge_config_t receive;
    bridge_fixture_config(&receive, endpoint, "receive",
        "forward_progress = true\nforward_qos = true\nassembly_timeout_ms = 120\n", one_mapping);
    tp_client_t *client;
    tp_bus_t *bus;
    tp_bridge_t *b;
    tp_assert_ok(tp_client_connect(&client, B.cctx));
    tp_assert_ok(tp_bus_init(&bus, B.bus));
    tp_assert_ok(tp_bridge_open(&b, client, bus, &receive));
    tp_bus_publication_t *control;
    tp_bus_publication_t *payload;
    tp_assert_ok(tp_bus_publication_open(&control, bus, endpoint, 50101, false));
    tp_assert_ok(tp_bus_publication_open(&payload, bus, endpoint, 50100, false));
    raw_pubs[0] = control;
    raw_pubs[1] = payload;
    tp_bus_subscription_t *local_progress; /* where B's consumers would read forwarded progress */
    tp_assert_ok(tp_bus_subscription_open(&local_progress, bus, TP_BUS_DEFAULT_CHANNEL, DEST_CONTROL, NULL, NULL,
        NULL));
    RECEIVE_UNTIL(b, 0, tp_bus_publication_is_connected(control) && tp_bus_publication_is_connected(payload));
    const tp_bridge_receiver_t *r = tp_bridge_receiver_at(b, 0);
    tp_bridge_receiver_counters_t rc;
    tp_bridge_counters_t bc;
    /* a chunk of stream 10 on the control channel: template 1 of schema 902 */
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = 3000;
    uint8_t tensor[192];
    tp_tensor_header_encode(tensor, &t);
    tp_slot_fields_t fields = { .values_len_bytes = 3000, .pool_id = 1, .timestamp_ns = 5, .meta_version = 1 };
    memset(header, 0, sizeof(header));
    tp_slot_write_header(header, &fields, tensor);
    static uint8_t bytes[3000];
    tp_bridge_frame_t frame = { .stream_id = SOURCE, .epoch = 5, .seq = 3, .header = header, .payload = bytes,
        .payload_length = 3000 };
    uint8_t chunk[4096];
    int64_t n = tp_bridge_chunk_encode(chunk, sizeof(chunk), &frame, 0, 1280, true);
    assert_true(n > 0);
    offer_raw(control, chunk, (size_t)n);
    offer_raw(control, (const uint8_t *)"junk!", 5);
    progress_message(control, 99, 5);
    RECEIVE_UNTIL(b, 0, (tp_bridge_counters(b, &bc), bc.control_unknown == 2 && bc.progress_dropped == 1));
    tp_bridge_receiver_counters(r, &rc);
    assert_int_equal(rc.announces, 0);
    /* the source's announce, epoch 5, then progress of epoch 4 and of epoch 5 */
    uint8_t buf[512];
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_shm_pool_announce_set_stream_id(&e, SOURCE);
    tp_wire_shm_pool_announce_set_epoch(&e, 5);
    tp_wire_shm_pool_announce_payload_pools_enc_t g;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &g, 1);
    tp_wire_shm_pool_announce_payload_pools_enc_next(&g);
    tp_wire_shm_pool_announce_payload_pools_set_pool_id(&g, 1);
    tp_wire_shm_pool_announce_payload_pools_set_stride_bytes(&g, SRC_STRIDE);
    tp_wire_shm_pool_announce_payload_pools_put_region_uri(&g, "shm:file?path=/dev/shm/p", 24);
    tp_wire_shm_pool_announce_payload_pools_end(&g);
    tp_wire_shm_pool_announce_put_header_region_uri(&e, "shm:file?path=/dev/shm/h", 24);
    offer_raw(control, buf, (size_t)tp_wire_shm_pool_announce_enc_finish(&e));
    RECEIVE_UNTIL(b, 0, (tp_bridge_receiver_counters(r, &rc), rc.announces == 1));
    progress_message(control, SOURCE, 4);
    progress_message(control, SOURCE, 5);
    RECEIVE_UNTIL(b, 0, (tp_bridge_counters(b, &bc), bc.progress_republished == 1 && bc.progress_dropped == 2));
    raw_count_t republished = { .stream_id = DEST, .schema_id = TP_WIRE_SCHEMA_ID,
        .template_id = TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID, .epoch = 5 };
    tp_bus_poll(local_progress, on_raw, &republished, 16);
    assert_int_equal(republished.count, 1);
    assert_int_equal(republished.wrong_epoch, 0);
    /* QoS of the source: republished on the mapping's QoS stream (by default its control stream), as the dest's */
    tp_wire_qos_producer_enc_t q;
    tp_wire_qos_producer_enc_begin(&q, buf, sizeof(buf));
    tp_wire_qos_producer_set_stream_id(&q, SOURCE);
    tp_wire_qos_producer_set_producer_id(&q, 9);
    tp_wire_qos_producer_set_epoch(&q, 5);
    tp_wire_qos_producer_set_current_seq(&q, 77);
    offer_raw(control, buf, (size_t)tp_wire_qos_producer_enc_finish(&q));
    RECEIVE_UNTIL(b, 0, (tp_bridge_counters(b, &bc), bc.qos_republished == 1));
    raw_count_t qos = { .stream_id = DEST, .schema_id = TP_WIRE_SCHEMA_ID,
        .template_id = TP_WIRE_QOS_PRODUCER_TEMPLATE_ID };
    tp_bus_poll(local_progress, on_raw, &qos, 16);
    assert_int_equal(qos.count, 1);
    /* chunk 0 of a three-chunk frame at t = 1 s: still in flight at +119 ms, dropped at +121 ms */
    int64_t t0 = TP_NS_PER_S;
    offer_raw(payload, chunk, (size_t)n);
    RECEIVE_UNTIL(b, t0, (tp_bridge_receiver_counters(r, &rc), rc.chunks == 1));
    tp_bridge_do_work(b, t0 + 119 * TP_NS_PER_MS);
    tp_bridge_receiver_counters(r, &rc);
    assert_int_equal(rc.drops[TP_BRIDGE_DROP_TIMEOUT], 0);
    tp_bridge_do_work(b, t0 + 121 * TP_NS_PER_MS);
    tp_bridge_receiver_counters(r, &rc);
    assert_int_equal(rc.drops[TP_BRIDGE_DROP_TIMEOUT], 1);
    assert_int_equal(rc.frames_rebuilt, 0);
    raw_pubs[0] = NULL;
    raw_pubs[1] = NULL;
    tp_bus_subscription_close(local_progress);
    tp_bus_publication_close(control);
    tp_bus_publication_close(payload);
    tp_bridge_close(b);
    tp_bus_close(bus);
    tp_client_close(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bridged_stream_looks_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_through_a_lossy_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_and_receiver_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destinations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_control_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
