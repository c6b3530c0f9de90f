/*
 * A bridge mapping end to end on one host: a producer of stream 10 -> bridge sender -> aeron:udp on loopback ->
 * bridge receiver (the producer of stream 20) -> a consumer of stream 20, everything on one embedded driver. The
 * consumer cannot tell the bridged frames from local ones: bytes, seq, timestamp, meta_version and trace id arrive
 * as the source published them, through a lossy link as well.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bridge/tp_bridge_mapping.h"
#include "cli/tp_udp_relay.h"
#include "client/tp_client_fixture.h"
#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "tp_test_util.h"

#define SOURCE 10
#define DEST 20
#define STRIDE (256u << 10)

static client_fixture_t F;
static int port;

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "bridge");
    client_fixture_add_stream(&F, "cam", SOURCE, "src", 32, STRIDE);
    client_fixture_add_stream(&F, "cam-remote", DEST, "dst", 32, STRIDE);
    client_fixture_start(&F);
    port = 36000 + (int)(getpid() % 10000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_fixture_close(&F);
    return 0;
}

static uint32_t size_of(uint64_t seq)
{
    return 1 + (uint32_t)((seq * 7919) % (200 * 1024));
}

static void make_payload(uint8_t *buf, uint32_t length, uint64_t seq)
{
    for (uint32_t i = 0; i < length; i++)
    {
        buf[i] = (uint8_t)(seq * 31 + i * 3);
    }
}

typedef struct seen
{
    int frames;
    int bad;
    uint64_t last_seq;
} seen_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    seen_t *s = clientd;
    static uint8_t expect[STRIDE];
    make_payload(expect, f->payload_length, f->seq);
    bool is_bad = f->payload_length != size_of(f->seq) || memcmp(expect, f->payload, f->payload_length) != 0 ||
        f->trace_id != 0x5000 + f->seq || f->timestamp_ns != 1000 + f->seq || f->meta_version != 4 ||
        f->tensor.dims[0] != (int32_t)f->payload_length || (s->frames > 0 && f->seq <= s->last_seq);
    if (!tp_frame_is_intact(f))
    {
        return;
    }
    s->bad += is_bad;
    s->last_seq = f->seq;
    s->frames++;
}

static void run(const char *sender_endpoint, const char *receiver_endpoint, int want)
{
    tp_client_t *sender_client;
    tp_client_t *receiver_client;
    tp_client_t *client;
    tp_assert_ok(tp_client_connect(&sender_client, F.cctx));
    tp_assert_ok(tp_client_connect(&receiver_client, F.cctx));
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    tp_bus_t *bus;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    tp_bridge_channels_t to_receiver = { .payload_channel = sender_endpoint, .payload_stream_id = 1,
        .control_channel = sender_endpoint, .control_stream_id = 2 };
    tp_bridge_channels_t at_receiver = { .payload_channel = receiver_endpoint, .payload_stream_id = 1,
        .control_channel = receiver_endpoint, .control_stream_id = 2 };
    tp_bridge_assembler_limits_t limits = { .chunk_bytes = 1280, .max_payload_bytes = STRIDE, .is_integrity = true,
        .timeout_ns = 500 * TP_NS_PER_MS, .in_flight = 4 };
    tp_bridge_receiver_t *receiver;
    tp_bridge_sender_t *sender;
    tp_assert_ok(tp_bridge_receiver_open(&receiver, receiver_client, bus, SOURCE, DEST, &at_receiver, &limits));
    tp_assert_ok(tp_bridge_sender_open(&sender, sender_client, bus, SOURCE, "aeron:ipc", 1000, &to_receiver, 1280,
        STRIDE, true));
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_assert_ok(tp_producer_attach(&source, client, SOURCE, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_consumer_attach_async(&dest, client, DEST));
    static uint8_t payload[STRIDE];
    seen_t seen = { 0 };
    uint64_t seq = 0;
    int64_t deadline = tp_clock_monotonic_ns() + 30 * TP_NS_PER_S;
    while (seen.frames < want)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (seq < 100000)
        {
            uint32_t length = size_of(seq);
            make_payload(payload, length, seq);
            tp_tensor_desc_t t;
            memset(&t, 0, sizeof(t));
            t.dtype = TP_DTYPE_UINT8;
            t.major_order = TP_MAJOR_ORDER_ROW;
            t.ndims = 1;
            t.dims[0] = (int32_t)length;
            if (tp_producer_offer_frame_at(source, payload, length, &t, 4, 0x5000 + seq, 1000 + seq) >= 0)
            {
                seq++;
            }
        }
        tp_producer_do_work(source);
        for (int i = 0; i < 4; i++)
        {
            tp_bridge_sender_do_work(sender);
            tp_bridge_receiver_do_work(receiver, tp_clock_monotonic_ns());
            tp_consumer_poll(dest, on_frame, &seen, 64);
        }
        usleep(2000);
    }
    tp_bridge_sender_counters_t sc;
    tp_bridge_receiver_counters_t rc;
    uint64_t drops[TP_BRIDGE_DROP_KINDS];
    tp_bridge_sender_counters(sender, &sc);
    tp_bridge_receiver_counters(receiver, &rc, drops);
    print_message("source %llu frames; sender %llu sent (%llu chunks), %llu announces; receiver %llu rebuilt; "
                  "destination read %d\n",
        (unsigned long long)seq, (unsigned long long)sc.frames_sent, (unsigned long long)sc.chunks_sent,
        (unsigned long long)sc.announces_forwarded, (unsigned long long)rc.frames_rebuilt, seen.frames);
    assert_int_equal(seen.bad, 0);
    assert_true(sc.announces_forwarded >= 1);
    assert_int_equal(drops[TP_BRIDGE_DROP_CRC] + drops[TP_BRIDGE_DROP_CONFLICT], 0);
    tp_consumer_close(dest);
    tp_producer_close(source);
    tp_bridge_sender_close(sender);
    tp_bridge_receiver_close(receiver);
    tp_bus_close(bus);
    tp_client_close(client);
    tp_client_close(receiver_client);
    tp_client_close(sender_client);
}

/* Straight over loopback UDP.
 * covers: B-4-2, B-5.2-12s */
static void test_bridged_frames_look_local(void **state)
{
    (void)state;
    char ch[128];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d", port);
    run(ch, ch, 50);
}

/* Through a relay that drops 1%, reorders 5% and duplicates 1% of datagrams: the transport repairs it, and every
 * frame that arrives is whole. */
static void test_through_a_lossy_link(void **state)
{
    (void)state;
    tp_udp_relay_t *relay;
    tp_udp_relay_options_t rates = { .drop = 0.01, .duplicate = 0.01, .reorder = 0.05, .seed = 11 };
    assert_int_equal(tp_udp_relay_start(&relay, port + 2, port + 3, &rates), 0);
    char to_relay[128];
    char at_receiver[128];
    snprintf(to_relay, sizeof(to_relay), "aeron:udp?endpoint=127.0.0.1:%d", port + 2);
    snprintf(at_receiver, sizeof(at_receiver), "aeron:udp?endpoint=127.0.0.1:%d", port + 3);
    run(to_relay, at_receiver, 50);
    tp_udp_relay_stop(relay);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bridged_frames_look_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_through_a_lossy_link, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
