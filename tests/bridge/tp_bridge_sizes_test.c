/*
 * Frame sizes across a bridge, from 1 byte to 64 MiB: each pool boundary of the receiving host (4 KiB, 1 MiB,
 * 64 MiB) and one byte past it, every byte checked, with shape and trace id kept, over loopback UDP with 64 KiB
 * datagrams (a 64 MiB frame is 1,025 chunks). Two embedded drivers stand for the two hosts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/tp_bridge.h"
#include "client/tp_client_fixture.h"
#include "core/tp_clock.h"
#include "tp_bridge_fixture.h"
#include "tp_test_util.h"

#define SOURCE 10
#define DEST 20
#define BIG (64u << 20)

static client_fixture_t A;
static client_fixture_t B;

static void host(client_fixture_t *f, const char *name, uint32_t stream_id)
{
    client_fixture_prepare(f, name);
    const uint16_t ids[] = { 1, 2, 3 };
    const uint32_t strides[] = { 4096, 1u << 20, BIG };
    tp_assert_ok(tp_driver_context_add_profile(f->dctx, "sizes", 2, ids, strides, 3));
    tp_assert_ok(tp_driver_context_add_stream(f->dctx, "s", stream_id, "sizes"));
    client_fixture_start(f);
}

static int setup(void **state)
{
    (void)state;
    host(&A, "bridge-sizes-a", SOURCE);
    host(&B, "bridge-sizes-b", DEST);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_fixture_close(&A);
    client_fixture_close(&B);
    return 0;
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 12));
}

typedef struct got
{
    int frames;
    int bad;
    uint32_t length;
    uint16_t pool_id;
} got_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    got_t *g = clientd;
    bool is_bad = f->trace_id != 0x7000 + f->seq || f->tensor.ndims != 2 ||
        f->tensor.dims[0] * f->tensor.dims[1] != (int32_t)f->payload_length;
    for (uint32_t i = 0; i < f->payload_length && !is_bad; i++)
    {
        is_bad = f->payload[i] != pattern(f->seq, i);
    }
    if (tp_frame_is_intact(f))
    {
        g->bad += is_bad;
        g->frames++;
        g->length = f->payload_length;
        g->pool_id = f->pool_id;
    }
}

/* covers: B-5.2-2, B-6-10 */
static void test_one_byte_to_64_mib(void **state)
{
    (void)state;
    int port = 39000 + (int)(getpid() % 9000);
    char endpoint[160];
    snprintf(endpoint, sizeof(endpoint), "aeron:udp?endpoint=127.0.0.1:%d|mtu=65504|term-length=64m", port);
    static tp_bridge_config_t send;
    static tp_bridge_config_t receive;
    const char *options = "mtu_bytes = 65504\nmax_payload_bytes = 67108864\nassembly_timeout_ms = 5000\n";
    const char *mapping = "[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n";
    bridge_fixture_config(&send, endpoint, "send", options, mapping);
    bridge_fixture_config(&receive, endpoint, "receive", options, mapping);
    tp_client_t *clients[4];
    for (int i = 0; i < 4; i++)
    {
        tp_assert_ok(tp_client_connect(&clients[i], i % 2 == 0 ? A.cctx : B.cctx));
    }
    tp_bus_t *bus_a;
    tp_bus_t *bus_b;
    tp_assert_ok(tp_bus_init(&bus_a, A.bus));
    tp_assert_ok(tp_bus_init(&bus_b, B.bus));
    tp_bridge_t *receiver;
    tp_bridge_t *sender;
    tp_assert_ok(tp_bridge_open(&receiver, clients[1], bus_b, &receive));
    tp_assert_ok(tp_bridge_open(&sender, clients[0], bus_a, &send));
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_assert_ok(tp_producer_attach(&source, clients[2], SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&dest, clients[3], DEST));
    const uint32_t sizes[] = { 1, 4096, 4097, 1u << 20, (1u << 20) + 1, BIG };
    const uint16_t pools[] = { 1, 1, 2, 2, 3, 3 };
    uint8_t *payload = malloc(BIG);
    assert_non_null(payload);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
    {
        got_t got = { 0 };
        int64_t deadline = tp_clock_monotonic_ns() + 60 * TP_NS_PER_S;
        int64_t next_offer = 0;
        while (got.frames == 0)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            int64_t now = tp_clock_monotonic_ns();
            /* Offer until one arrives (the first ones go before the receiver has the announce). */
            if (now >= next_offer && tp_consumer_is_attached(dest))
            {
                uint64_t seq = tp_producer_next_seq(source);
                for (uint32_t i = 0; i < sizes[k]; i++)
                {
                    payload[i] = pattern(seq, i);
                }
                tp_tensor_desc_t t;
                memset(&t, 0, sizeof(t));
                t.dtype = TP_DTYPE_UINT8;
                t.major_order = TP_MAJOR_ORDER_ROW;
                t.ndims = 2;
                t.dims[0] = sizes[k] % 2 == 0 ? 2 : 1;
                t.dims[1] = (int32_t)(sizes[k] / (uint32_t)t.dims[0]);
                tp_assert_ok(tp_producer_offer_frame(source, payload, sizes[k], &t, 0, 0x7000 + seq) < 0 ? -1 : 0);
                next_offer = now + 300 * TP_NS_PER_MS;
            }
            tp_producer_do_work(source);
            for (int i = 0; i < 64; i++)
            {
                tp_bridge_do_work(sender, tp_clock_monotonic_ns());
                tp_bridge_do_work(receiver, tp_clock_monotonic_ns());
            }
            tp_consumer_poll(dest, on_frame, &got, 4);
        }
        print_message("%u bytes: pool %u\n", got.length, got.pool_id);
        assert_int_equal(got.bad, 0);
        assert_int_equal(got.length, sizes[k]);
        assert_int_equal(got.pool_id, pools[k]);
    }
    free(payload);
    tp_consumer_close(dest);
    tp_producer_close(source);
    tp_bridge_close(sender);
    tp_bridge_close(receiver);
    tp_bus_close(bus_a);
    tp_bus_close(bus_b);
    for (int i = 0; i < 4; i++)
    {
        tp_client_close(clients[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_byte_to_64_mib, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
