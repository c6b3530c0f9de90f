/*
 * Bridges in topologies, three "hosts" (embedded drivers with their own bus and SHM base) in one process:
 *   chain:     A -> B -> C, the second bridge reading on B the stream the first one rebuilt there;
 *   fan-out:   A multicasts to B and C, which rebuild frames independently; C is slow and falls behind;
 *   limiter:   A -> B, a rate limiter on B (behind the receiving bridge) whose output the next bridge sends to C.
 * Frames keep the source's seq, timestamp, meta_version, tensor and trace id through every hop; nothing torn or
 * wrong is delivered anywhere. The test runs in a network namespace of its own (root needed), whose loopback
 * carries multicast; without one, the fan-out test is skipped with the reason.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bridge/tp_bridge.h"
#include "client/tp_client_fixture.h"
#include "core/tp_clock.h"
#include "ratelimit/tp_ratelimiter.h"
#include "tp_bridge_fixture.h"
#include "tp_test_util.h"

#define SOURCE 10
#define MIDDLE 20
#define LIMITED 21
#define BACK 11
#define FAR 30
#define CAP_HZ 20
#define WAIT_NS (60 * TP_NS_PER_S) /* generous: CI machines are shared and slow at times */

static client_fixture_t A;
static client_fixture_t B;
static client_fixture_t C;
static int port;
static bool has_multicast;
static char no_multicast_why[256];

/* B and C get pools 5 (4 KiB) and 6 (128 KiB), A one pool of 256 KiB; every host has all three streams. */
static void host(client_fixture_t *f, const char *name, bool is_source)
{
    client_fixture_prepare(f, name);
    const uint16_t ids[] = { 5, 6 };
    const uint32_t strides[] = { SMALL_STRIDE, LARGE_STRIDE };
    if (is_source)
    {
        client_fixture_add_stream(f, "cam", SOURCE, "src", 32, SRC_STRIDE);
        tp_assert_ok(tp_driver_context_add_profile(f->dctx, "dst", 32, ids, strides, 2));
        tp_assert_ok(tp_driver_context_add_stream(f->dctx, "back", BACK, "dst"));
    }
    else
    {
        tp_assert_ok(tp_driver_context_add_profile(f->dctx, "dst", 32, ids, strides, 2));
        tp_assert_ok(tp_driver_context_add_stream(f->dctx, "middle", MIDDLE, "dst"));
        tp_assert_ok(tp_driver_context_add_stream(f->dctx, "far", FAR, "dst"));
        /* a stream produced on this host (or by the limiter), as large as A's */
        const uint16_t big_ids[] = { 1 };
        const uint32_t big_strides[] = { SRC_STRIDE };
        tp_assert_ok(tp_driver_context_add_profile(f->dctx, "src", 32, big_ids, big_strides, 1));
        tp_assert_ok(tp_driver_context_add_stream(f->dctx, "limited", LIMITED, "src"));
    }
    client_fixture_start(f);
}

static int setup(void **state)
{
    (void)state;
    host(&A, "bridge-topo-a", true);
    host(&B, "bridge-topo-b", false);
    host(&C, "bridge-topo-c", false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_fixture_close(&A);
    client_fixture_close(&B);
    client_fixture_close(&C);
    return 0;
}

typedef struct end
{
    tp_client_t *client;
    tp_bus_t *bus;
    tp_bridge_t *bridge;
} end_t;

static void end_open(end_t *e, const client_fixture_t *f, const tp_bridge_config_t *config)
{
    tp_assert_ok(tp_client_connect(&e->client, f->cctx));
    tp_assert_ok(tp_bus_init(&e->bus, f->bus));
    tp_assert_ok(tp_bridge_open(&e->bridge, e->client, e->bus, config));
}

static void end_close(end_t *e)
{
    tp_bridge_close(e->bridge);
    tp_bus_close(e->bus);
    tp_client_close(e->client);
}

/* A -> B -> C: what C reads came through two bridges, and only frames B could hold went on.
 * covers: B-2.1-1, B-2.2-1 */
static void test_chain_of_two_bridges(void **state)
{
    (void)state;
    char first[128];
    char second[128];
    snprintf(first, sizeof(first), "aeron:udp?endpoint=127.0.0.1:%d", port);
    snprintf(second, sizeof(second), "aeron:udp?endpoint=127.0.0.1:%d", port + 10);
    static tp_bridge_config_t a_send;
    static tp_bridge_config_t b_receive;
    static tp_bridge_config_t b_send;
    static tp_bridge_config_t c_receive;
    const char *hop1 = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n";
    const char *hop2 = "[[mappings]]\nsource_stream_id = 20\ndest_stream_id = 30\n";
    bridge_fixture_config(&a_send, first, "send", "", hop1);
    bridge_fixture_config(&b_receive, first, "receive", "", hop1);
    bridge_fixture_config(&b_send, second, "send", "", hop2);
    bridge_fixture_config(&c_receive, second, "receive", "", hop2);
    end_t ends[4] = { 0 };
    end_open(&ends[1], &B, &b_receive);
    end_open(&ends[3], &C, &c_receive);
    end_open(&ends[0], &A, &a_send);
    end_open(&ends[2], &B, &b_send);
    tp_client_t *app_a;
    tp_client_t *app_c;
    tp_assert_ok(tp_client_connect(&app_a, A.cctx));
    tp_assert_ok(tp_client_connect(&app_c, C.cctx));
    tp_producer_t *source;
    tp_consumer_t *far;
    tp_assert_ok(tp_producer_attach(&source, app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&far, app_c, FAR));
    seen_t seen = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    while (seen.frames < 100)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_is_attached(far))
        {
            bridge_fixture_offer(source);
        }
        tp_producer_do_work(source);
        for (int i = 0; i < 4; i++)
        {
            for (int k = 0; k < 4; k++)
            {
                tp_bridge_do_work(ends[k].bridge, tp_clock_monotonic_ns());
            }
        }
        tp_consumer_poll(far, bridge_fixture_on_frame, &seen, 64);
        usleep(500);
    }
    assert_int_equal(seen.bad, 0);
    assert_int_equal(seen.wrong_pool, 0);
    tp_consumer_close(far);
    tp_producer_close(source);
    tp_client_close(app_a);
    tp_client_close(app_c);
    for (int k = 0; k < 4; k++)
    {
        end_close(&ends[k]);
    }
}

/* One multicast sender, two receiving hosts: B keeps up, C works only every 20th cycle. Both rebuild frames on their
 * own; C falls behind and misses frames, but neither ever delivers a wrong one, and B is not held back by C.
 * covers: B-3-2 */
static void test_multicast_fan_out(void **state)
{
    (void)state;
    if (!has_multicast)
    {
        print_message("skipped: %s\n", no_multicast_why);
        skip();
    }
    char group[160];
    snprintf(group, sizeof(group), "aeron:udp?endpoint=239.255.20.1:%d|interface=127.0.0.1", port + 20);
    static tp_bridge_config_t send;
    static tp_bridge_config_t receive;
    const char *mapping = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n";
    bridge_fixture_config(&send, group, "send", "", mapping);
    bridge_fixture_config(&receive, group, "receive", "", mapping);
    end_t sender = { 0 };
    end_t fast = { 0 };
    end_t slow = { 0 };
    end_open(&fast, &B, &receive);
    end_open(&slow, &C, &receive);
    end_open(&sender, &A, &send);
    tp_client_t *app_a;
    tp_client_t *app_b;
    tp_client_t *app_c;
    tp_assert_ok(tp_client_connect(&app_a, A.cctx));
    tp_assert_ok(tp_client_connect(&app_b, B.cctx));
    tp_assert_ok(tp_client_connect(&app_c, C.cctx));
    tp_producer_t *source;
    tp_consumer_t *on_b;
    tp_consumer_t *on_c;
    tp_assert_ok(tp_producer_attach(&source, app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&on_b, app_b, MIDDLE));
    tp_assert_ok(tp_consumer_attach_async(&on_c, app_c, MIDDLE));
    seen_t seen_b = { 0 };
    seen_t seen_c = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    for (uint64_t cycle = 0; seen_b.frames < 300 || seen_c.frames < 10; cycle++)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            tp_strbuf_t j;
            tp_strbuf_init(&j);
            tp_bridge_status_json(sender.bridge, &j);
            tp_bridge_status_json(fast.bridge, &j);
            tp_bridge_status_json(slow.bridge, &j);
            fprintf(stderr, "%s", tp_strbuf_cstr(&j));
            fail_msg("fast %d slow %d", seen_b.frames, seen_c.frames);
        }
        if (tp_consumer_is_attached(on_b) && tp_consumer_is_attached(on_c))
        {
            bridge_fixture_offer(source);
        }
        tp_producer_do_work(source);
        int64_t now = tp_clock_monotonic_ns();
        for (int i = 0; i < 4; i++)
        {
            tp_bridge_do_work(sender.bridge, now);
            tp_bridge_do_work(fast.bridge, now);
        }
        if (cycle % 20 == 0)
        {
            tp_bridge_do_work(slow.bridge, now);
            tp_consumer_poll(on_c, bridge_fixture_on_frame, &seen_c, 64);
        }
        tp_consumer_poll(on_b, bridge_fixture_on_frame, &seen_b, 64);
        usleep(500);
    }
    print_message("fast host read %d frames, slow host %d\n", seen_b.frames, seen_c.frames);
    assert_int_equal(seen_b.bad + seen_c.bad, 0);
    assert_int_equal(seen_b.wrong_pool + seen_c.wrong_pool, 0);
    assert_true(seen_b.frames > seen_c.frames);
    tp_consumer_close(on_b);
    tp_consumer_close(on_c);
    tp_producer_close(source);
    tp_client_close(app_a);
    tp_client_close(app_b);
    tp_client_close(app_c);
    end_close(&sender);
    end_close(&fast);
    end_close(&slow);
}

/* One instance per host, each sending one stream and receiving the other, over one multicast group: A's 10 arrives
 * on B as 20 while B's 21 arrives on A as 11; each host's own chunks come back to it on the group and are ignored.
 * covers: B-2.3-1, B-2.3-3 */
static void test_both_directions(void **state)
{
    (void)state;
    if (!has_multicast)
    {
        print_message("skipped: %s\n", no_multicast_why);
        skip();
    }
    char group[160];
    snprintf(group, sizeof(group), "aeron:udp?endpoint=239.255.20.3:%d|interface=127.0.0.1", port + 50);
    const char *a_maps = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\ndirection = \"send\"\n"
                         "[[mappings]]\nsource_stream_id = 21\ndest_stream_id = 11\ndirection = \"receive\"\n";
    const char *b_maps = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\ndirection = \"receive\"\n"
                         "[[mappings]]\nsource_stream_id = 21\ndest_stream_id = 11\ndirection = \"send\"\n";
    static tp_bridge_config_t a_config;
    static tp_bridge_config_t b_config;
    bridge_fixture_config(&a_config, group, "a", "", a_maps);
    bridge_fixture_config(&b_config, group, "b", "", b_maps);
    end_t a = { 0 };
    end_t b = { 0 };
    end_open(&a, &A, &a_config);
    end_open(&b, &B, &b_config);
    tp_client_t *app_a;
    tp_client_t *app_b;
    tp_assert_ok(tp_client_connect(&app_a, A.cctx));
    tp_assert_ok(tp_client_connect(&app_b, B.cctx));
    tp_producer_t *on_a;
    tp_producer_t *on_b;
    tp_consumer_t *from_a;
    tp_consumer_t *from_b;
    tp_assert_ok(tp_producer_attach(&on_a, app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_producer_attach(&on_b, app_b, LIMITED, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&from_a, app_b, MIDDLE));
    tp_assert_ok(tp_consumer_attach_async(&from_b, app_a, BACK));
    seen_t seen_b = { 0 };
    seen_t seen_a = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    while (seen_a.frames < 50 || seen_b.frames < 50)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_is_attached(from_a) && tp_consumer_is_attached(from_b))
        {
            bridge_fixture_offer(on_a);
            bridge_fixture_offer(on_b);
        }
        tp_producer_do_work(on_a);
        tp_producer_do_work(on_b);
        int64_t now = tp_clock_monotonic_ns();
        for (int i = 0; i < 4; i++)
        {
            tp_bridge_do_work(a.bridge, now);
            tp_bridge_do_work(b.bridge, now);
        }
        tp_consumer_poll(from_a, bridge_fixture_on_frame, &seen_b, 64);
        tp_consumer_poll(from_b, bridge_fixture_on_frame, &seen_a, 64);
        usleep(500);
    }
    assert_int_equal(seen_a.bad + seen_b.bad, 0);
    assert_int_equal(seen_a.wrong_pool + seen_b.wrong_pool, 0);
    tp_consumer_close(from_a);
    tp_consumer_close(from_b);
    tp_producer_close(on_a);
    tp_producer_close(on_b);
    tp_client_close(app_a);
    tp_client_close(app_b);
    end_close(&a);
    end_close(&b);
}

/* A -> B (stream 20), a 20 Hz rate limiter on B (20 -> 21), B -> C (21 -> 30): C reads at most the cap, each frame
 * whole and under its source seq from A.
 * covers: R-2.1-1, R-5-2 */
static void test_ratelimiter_between_bridges(void **state)
{
    (void)state;
    char first[128];
    char second[128];
    snprintf(first, sizeof(first), "aeron:udp?endpoint=127.0.0.1:%d", port + 30);
    snprintf(second, sizeof(second), "aeron:udp?endpoint=127.0.0.1:%d", port + 40);
    static tp_bridge_config_t a_send;
    static tp_bridge_config_t b_receive;
    static tp_bridge_config_t b_send;
    static tp_bridge_config_t c_receive;
    const char *hop1 = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n";
    const char *hop2 = "[[mappings]]\nsource_stream_id = 21\ndest_stream_id = 30\n";
    bridge_fixture_config(&a_send, first, "send", "", hop1);
    bridge_fixture_config(&b_receive, first, "receive", "", hop1);
    bridge_fixture_config(&b_send, second, "send", "", hop2);
    bridge_fixture_config(&c_receive, second, "receive", "", hop2);
    end_t ends[4] = { 0 };
    end_open(&ends[1], &B, &b_receive);
    end_open(&ends[3], &C, &c_receive);
    end_open(&ends[0], &A, &a_send);
    end_open(&ends[2], &B, &b_send);
    tp_client_t *app_a;
    tp_client_t *app_b;
    tp_client_t *app_c;
    tp_assert_ok(tp_client_connect(&app_a, A.cctx));
    tp_assert_ok(tp_client_connect(&app_b, B.cctx));
    tp_assert_ok(tp_client_connect(&app_c, C.cctx));
    static tp_ratelimiter_t limiter;
    tp_assert_ok(tp_ratelimiter_open(&limiter, app_b, MIDDLE, LIMITED, CAP_HZ));
    tp_producer_t *source;
    tp_consumer_t *far;
    tp_assert_ok(tp_producer_attach(&source, app_a, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&far, app_c, FAR));
    seen_t seen = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + WAIT_NS;
    int64_t first_ns = 0;
    int64_t last_ns = 0;
    while (seen.frames < 30)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_is_attached(far))
        {
            bridge_fixture_offer(source); /* as fast as it goes: far above the cap */
        }
        tp_producer_do_work(source);
        int64_t now = tp_clock_monotonic_ns();
        for (int k = 0; k < 4; k++)
        {
            tp_bridge_do_work(ends[k].bridge, now);
        }
        tp_ratelimiter_do_work(&limiter, now);
        int before = seen.frames;
        tp_consumer_poll(far, bridge_fixture_on_frame, &seen, 64);
        if (seen.frames > before)
        {
            first_ns = first_ns == 0 ? now : first_ns;
            last_ns = now;
        }
        usleep(200);
    }
    double span_s = (double)(last_ns - first_ns) / 1e9;
    double rate = (double)(seen.frames - 1) / span_s;
    print_message("C read %d frames in %.2f s: %.1f Hz (cap %d)\n", seen.frames, span_s, rate, CAP_HZ);
    assert_int_equal(seen.bad, 0);
    assert_int_equal(seen.wrong_pool, 0);
    assert_true(rate <= CAP_HZ * 1.1);
    assert_true(limiter.counters.frames_seen > limiter.counters.published); /* it did thin the stream */
    tp_ratelimiter_close(&limiter);
    tp_consumer_close(far);
    tp_producer_close(source);
    tp_client_close(app_a);
    tp_client_close(app_b);
    tp_client_close(app_c);
    for (int k = 0; k < 4; k++)
    {
        end_close(&ends[k]);
    }
}

int main(void)
{
    port = 38000 + (int)(getpid() % 9000);
    has_multicast = tp_test_enter_multicast_netns(no_multicast_why, sizeof(no_multicast_why)) == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_of_two_bridges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multicast_fan_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimiter_between_bridges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_directions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
