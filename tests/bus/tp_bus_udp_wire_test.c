/*
 * The Aeron UDP protocol at the byte level: frame layouts as Aeron defines them, what our publication and
 * subscription put on the wire (checked by a plain socket playing the other side), hostile datagrams in both
 * directions, and the protocol's timers driven by a fake clock.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/tp_bus_udp.h"
#include "bus/tp_udp_frame.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

static tp_bus_t *bus;
static char dir[512];
static int port;
static int64_t fake_now;

static int64_t fake_clock(void *clientd)
{
    (void)clientd;
    return fake_now;
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "busudpwire");
    tp_assert_ok(tp_bus_init(&bus, dir));
    fake_now = 1000 * TP_NS_PER_S;
    tp_bus_set_clock(bus, fake_clock, NULL);
    port = 26000 + (int)(getpid() % 15000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

/* ---- a plain socket as the peer ---- */

static int raw_open(int p)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
    inet_pton(AF_INET, "127.0.0.1", &at.sin_addr);
    if (p != 0)
    {
        assert_int_equal(bind(fd, (struct sockaddr *)&at, sizeof(at)), 0);
    }
    return fd;
}

/* The next datagram within timeout_ms, or -1. */
static ssize_t raw_recv(int fd, uint8_t *buf, size_t capacity, int timeout_ms, struct sockaddr_in *from)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, timeout_ms) <= 0)
    {
        return -1;
    }
    socklen_t length = sizeof(*from);
    return recvfrom(fd, buf, capacity, 0, (struct sockaddr *)from, &length);
}

/* The next datagram of a given type (others are skipped), or -1. */
static ssize_t raw_recv_type(int fd, uint8_t *buf, size_t capacity, int16_t type, struct sockaddr_in *from)
{
    for (int i = 0; i < 50; i++)
    {
        ssize_t n = raw_recv(fd, buf, capacity, 20, from);
        if (n >= 8 && tp_udp_frame_type(buf) == type)
        {
            return n;
        }
    }
    return -1;
}

/* The next datagram that is not a heartbeat, or -1. */
static ssize_t raw_recv_data(int fd, uint8_t *buf, size_t capacity, struct sockaddr_in *from)
{
    for (int i = 0; i < 50; i++)
    {
        ssize_t n = raw_recv(fd, buf, capacity, 20, from);
        if (n < 0 || !(n == 32 && tp_udp_frame_length(buf) == 0))
        {
            return n;
        }
    }
    return -1;
}

static void raw_send(int fd, const void *d, size_t n, const struct sockaddr_in *to)
{
    assert_int_equal(sendto(fd, d, n, 0, (const struct sockaddr *)to, sizeof(*to)), (ssize_t)n);
}

static void raw_send_port(int fd, const void *d, size_t n, int p)
{
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    raw_send(fd, d, n, &to);
}

static bool nothing_more(int fd)
{
    uint8_t buf[2048];
    struct sockaddr_in from;
    return raw_recv(fd, buf, sizeof(buf), 20, &from) < 0;
}

/* ---- layouts ---- */

/* Every frame's bytes as Aeron lays them out: little-endian fields at fixed offsets, version 0. */
static void test_frame_layouts(void **state)
{
    (void)state;
    uint8_t b[64];
    memset(b, 0xEE, sizeof(b));
    tp_udp_sm_t sm = { .flags = TP_UDP_SM_FLAG_SEND_SETUP, .session_id = 0x01020304, .stream_id = 0x11121314,
        .consumption_term_id = 0x21222324, .consumption_term_offset = 0x31323334, .receiver_window = 0x41424344,
        .receiver_id = 0x5152535455565758 };
    tp_udp_sm_put(b, &sm);
    const uint8_t sm_bytes[TP_UDP_SM_LENGTH] = { 36, 0, 0, 0, 0, 0x80, 3, 0, 4, 3, 2, 1, 0x14, 0x13, 0x12, 0x11, 0x24,
        0x23, 0x22, 0x21, 0x34, 0x33, 0x32, 0x31, 0x44, 0x43, 0x42, 0x41, 0x58, 0x57, 0x56, 0x55, 0x54, 0x53, 0x52,
        0x51 };
    assert_memory_equal(b, sm_bytes, sizeof(sm_bytes));
    tp_udp_nak_t nak = { .session_id = 1, .stream_id = 2, .term_id = 3, .term_offset = 64, .length = 96 };
    tp_udp_nak_put(b, &nak);
    const uint8_t nak_bytes[TP_UDP_NAK_LENGTH] = { 28, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 64, 0,
        0, 0, 96, 0, 0, 0 };
    assert_memory_equal(b, nak_bytes, sizeof(nak_bytes));
    tp_udp_setup_t s = { .term_offset = 32, .session_id = -1, .stream_id = 7, .initial_term_id = 9,
        .active_term_id = 10, .term_length = 65536, .mtu = 1408, .ttl = 4 };
    tp_udp_setup_put(b, &s);
    const uint8_t setup_bytes[TP_UDP_SETUP_LENGTH] = { 40, 0, 0, 0, 0, 0, 5, 0, 32, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        7, 0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 0, 0, 1, 0, 0x80, 5, 0, 0, 4, 0, 0, 0 };
    assert_memory_equal(b, setup_bytes, sizeof(setup_bytes));
    tp_udp_data_header_t d = { .frame_length = 132, .flags = TP_UDP_FLAGS_UNFRAGMENTED, .type = TP_UDP_TYPE_DATA,
        .term_offset = 4096, .session_id = 5, .stream_id = 6, .term_id = -2, .reserved_value = 0x0102030405060708 };
    tp_udp_data_header_put(b, &d);
    const uint8_t data_bytes[TP_UDP_DATA_HEADER_LENGTH] = { 132, 0, 0, 0, 0, 0xC0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0, 6,
        0, 0, 0, 0xFE, 0xFF, 0xFF, 0xFF, 8, 7, 6, 5, 4, 3, 2, 1 };
    assert_memory_equal(b, data_bytes, sizeof(data_bytes));
    tp_udp_rttm_t r = { .flags = TP_UDP_RTTM_FLAG_REPLY, .session_id = 1, .stream_id = 2, .echo_timestamp = 3,
        .reception_delta = 4, .receiver_id = 5 };
    tp_udp_rttm_put(b, &r);
    assert_int_equal(tp_udp_frame_length(b), 40);
    assert_int_equal(b[5], 0x80);
    assert_int_equal(b[6], 6);
    assert_int_equal(tp_udp_get_i64(b, 32), 5);
    /* Positions: term ids wrap as 32-bit integers. */
    assert_int_equal(tp_udp_position(INT32_MIN, 32, 16, INT32_MAX), (1 << 16) + 32);
    assert_int_equal(tp_udp_term_id((3 << 16) + 5, 16, INT32_MAX), INT32_MIN + 2);
    assert_int_equal(tp_udp_max_message_length(64 << 10), 8 << 10);
    assert_int_equal(tp_udp_max_message_length(1u << 30), 16u << 20);
}

/* A datagram is classified only when every length in it lies inside it. */
static void test_classify_rejects_malformed(void **state)
{
    (void)state;
    uint8_t d[256];
    memset(d, 0, sizeof(d));
    assert_int_equal(tp_udp_frame_classify(d, 7), -1);
    /* a heartbeat: one data header of frame length 0 */
    tp_udp_data_header_t h = { .frame_length = 0, .flags = TP_UDP_FLAGS_UNFRAGMENTED, .type = TP_UDP_TYPE_DATA };
    tp_udp_data_header_put(d, &h);
    assert_int_equal(tp_udp_frame_classify(d, 32), TP_UDP_TYPE_DATA);
    assert_int_equal(tp_udp_frame_classify(d, 64), -1); /* frame length 0 with more behind it */
    h.frame_length = 100;
    tp_udp_data_header_put(d, &h);
    assert_int_equal(tp_udp_frame_classify(d, 128), TP_UDP_TYPE_DATA);
    assert_int_equal(tp_udp_frame_classify(d, 96), -1);  /* the frame runs past the datagram */
    assert_int_equal(tp_udp_frame_classify(d, 100), -1); /* not a whole number of aligned frames */
    h.frame_length = 20;
    tp_udp_data_header_put(d, &h);
    assert_int_equal(tp_udp_frame_classify(d, 32), -1); /* shorter than its own header */
    h.frame_length = 64;
    tp_udp_data_header_put(d, &h);
    tp_udp_data_header_t pad = { .frame_length = 4096, .type = TP_UDP_TYPE_PAD };
    tp_udp_data_header_put(d + 64, &pad);
    assert_int_equal(tp_udp_frame_classify(d, 96), TP_UDP_TYPE_DATA); /* data, then a padding header */
    tp_udp_data_header_put(d + 96, &h);
    assert_int_equal(tp_udp_frame_classify(d, 160), -1); /* padding must end the datagram */
    d[4] = 1;
    assert_int_equal(tp_udp_frame_classify(d, 96), -1); /* version 1 */
    tp_udp_sm_t sm = { .session_id = 1 };
    tp_udp_sm_put(d, &sm);
    assert_int_equal(tp_udp_frame_classify(d, 36), TP_UDP_TYPE_SM);
    assert_int_equal(tp_udp_frame_classify(d, 35), -1);
    tp_udp_put_i32(d, 0, 100);
    assert_int_equal(tp_udp_frame_classify(d, 36), -1); /* claims more than the datagram holds */
    tp_udp_frame_header_put(d, 8, 0, 0x0B);
    assert_int_equal(tp_udp_frame_classify(d, 8), 0x0B); /* a frame we do not speak: not malformed */
    tp_udp_frame_header_put(d, 8, 0, -1);
    assert_int_equal(tp_udp_frame_classify(d, 8), -1);
}

/* ---- our publication on the wire ---- */

typedef struct wire_pub
{
    int fd;
    tp_bus_publication_t *pub;
    struct sockaddr_in pub_addr;
    tp_udp_setup_t setup;
} wire_pub_t;

static void send_sm(wire_pub_t *w, int32_t term_id, int32_t term_offset, int32_t window, uint8_t flags)
{
    tp_udp_sm_t sm = { .flags = flags, .session_id = w->setup.session_id, .stream_id = w->setup.stream_id,
        .consumption_term_id = term_id, .consumption_term_offset = term_offset, .receiver_window = window,
        .receiver_id = 99 };
    uint8_t b[TP_UDP_SM_LENGTH];
    tp_udp_sm_put(b, &sm);
    raw_send(w->fd, b, sizeof(b), &w->pub_addr);
}

static void send_nak(wire_pub_t *w, int32_t term_id, int32_t term_offset, int32_t length)
{
    tp_udp_nak_t nak = { .session_id = w->setup.session_id, .stream_id = w->setup.stream_id, .term_id = term_id,
        .term_offset = term_offset, .length = length };
    uint8_t b[TP_UDP_NAK_LENGTH];
    tp_udp_nak_put(b, &nak);
    raw_send(w->fd, b, sizeof(b), &w->pub_addr);
}

static void wire_pub_open(wire_pub_t *w, int p, const char *options)
{
    char ch[160];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d%s", p, options);
    w->fd = raw_open(p);
    tp_assert_ok(tp_bus_publication_open(&w->pub, bus, ch, 42, false));
    uint8_t b[256];
    ssize_t n = raw_recv_type(w->fd, b, sizeof(b), TP_UDP_TYPE_SETUP, &w->pub_addr);
    assert_int_equal(n, TP_UDP_SETUP_LENGTH);
    tp_udp_setup_get(&w->setup, b);
}

static void wire_pub_close(wire_pub_t *w)
{
    tp_bus_publication_close(w->pub);
    close(w->fd);
}

/* SETUP until a status message, then DATA frames exactly as Aeron's: header fields, 32-byte alignment,
 * fragments flagged BEGIN / middle / END, one datagram per mtu. */
static void test_publication_frames(void **state)
{
    (void)state;
    wire_pub_t w;
    wire_pub_open(&w, port, "|term-length=64k|linger=0");
    assert_int_equal(w.setup.session_id, tp_bus_publication_session_id(w.pub));
    assert_int_equal(w.setup.stream_id, 42);
    assert_int_equal(w.setup.term_length, 65536);
    assert_int_equal(w.setup.mtu, 1408);
    assert_int_equal(w.setup.term_offset, 0);
    assert_int_equal(w.setup.active_term_id, w.setup.initial_term_id);
    /* SETUP repeats every 100 ms until a receiver answers */
    tp_bus_publication_do_work(w.pub);
    assert_true(nothing_more(w.fd));
    fake_now += TP_UDP_SETUP_INTERVAL_NS;
    tp_bus_publication_do_work(w.pub);
    uint8_t b[4096];
    struct sockaddr_in from;
    assert_int_equal(raw_recv_type(w.fd, b, sizeof(b), TP_UDP_TYPE_SETUP, &from), TP_UDP_SETUP_LENGTH);
    uint8_t msg[3000];
    for (size_t i = 0; i < sizeof(msg); i++)
    {
        msg[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(tp_bus_offer(w.pub, msg, 100), TP_BUS_NOT_CONNECTED);
    send_sm(&w, w.setup.initial_term_id, 0, 65536, 0);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    assert_true(tp_bus_publication_is_connected(w.pub));
    assert_int_equal(tp_bus_offer(w.pub, msg, 100), 160);
    tp_bus_publication_do_work(w.pub); /* (the clock stands still: a second offer would be a burst, held for this) */
    ssize_t n = raw_recv_data(w.fd, b, sizeof(b), &from);
    assert_int_equal(n, 160);
    tp_udp_data_header_t h;
    tp_udp_data_header_get(&h, b);
    assert_int_equal(h.frame_length, 132);
    assert_int_equal(b[4], 0);
    assert_int_equal(h.flags, TP_UDP_FLAGS_UNFRAGMENTED);
    assert_int_equal(h.type, TP_UDP_TYPE_DATA);
    assert_int_equal(h.term_offset, 0);
    assert_int_equal(h.session_id, w.setup.session_id);
    assert_int_equal(h.stream_id, 42);
    assert_int_equal(h.term_id, w.setup.initial_term_id);
    assert_int_equal(h.reserved_value, 0);
    assert_memory_equal(b + 32, msg, 100);
    uint8_t first[160];
    memcpy(first, b, sizeof(first));
    /* 3000 bytes: fragments of mtu - 32 = 1376 bytes, 1376 + 1376 + 248 */
    assert_int_equal(tp_bus_offer(w.pub, msg, 3000), 160 + 1408 + 1408 + 288);
    tp_bus_publication_do_work(w.pub);
    const uint8_t flags[3] = { TP_UDP_FLAG_BEGIN, 0, TP_UDP_FLAG_END };
    const int32_t lengths[3] = { 1408, 1408, 280 };
    for (int i = 0; i < 3; i++)
    {
        n = raw_recv_data(w.fd, b, sizeof(b), &from);
        assert_int_equal(n, tp_udp_align((uint32_t)lengths[i]));
        tp_udp_data_header_get(&h, b);
        assert_int_equal(h.flags, flags[i]);
        assert_int_equal(h.frame_length, lengths[i]);
        assert_int_equal(h.term_offset, 160 + 1408 * i);
        assert_memory_equal(b + 32, msg + 1376 * i, (size_t)lengths[i] - 32);
    }
    /* A NAK is answered with the same bytes, once per linger period. */
    send_nak(&w, w.setup.initial_term_id, 0, 160);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    n = raw_recv_data(w.fd, b, sizeof(b), &from);
    assert_int_equal(n, 160);
    assert_memory_equal(b, first, 160);
    send_nak(&w, w.setup.initial_term_id, 0, 160);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    assert_true(nothing_more(w.fd));
    fake_now += TP_UDP_RETRANSMIT_LINGER_NS;
    send_nak(&w, w.setup.initial_term_id, 0, 160);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 160);
    /* Idle for 100 ms: a heartbeat at the sender's position. */
    send_sm(&w, w.setup.initial_term_id, 3264, 65536, 0);
    fake_now += TP_UDP_HEARTBEAT_INTERVAL_NS;
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    n = raw_recv(w.fd, b, sizeof(b), 100, &from);
    assert_int_equal(n, 32);
    tp_udp_data_header_get(&h, b);
    assert_int_equal(h.frame_length, 0);
    assert_int_equal(h.term_offset, 3264);
    assert_int_equal(h.flags & TP_UDP_FLAG_EOS, 0);
    /* 5 s without a status message: no longer connected. */
    fake_now += TP_UDP_CONNECTION_TIMEOUT_NS + 1;
    assert_false(tp_bus_publication_is_connected(w.pub));
    assert_int_equal(tp_bus_offer(w.pub, msg, 100), TP_BUS_NOT_CONNECTED);
    /* Closing sends end of stream. */
    send_sm(&w, w.setup.initial_term_id, 3264, 65536, 0);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    tp_bus_publication_close(w.pub);
    bool saw_eos = false;
    while ((n = raw_recv(w.fd, b, sizeof(b), 50, &from)) > 0)
    {
        saw_eos |= n == 32 && tp_udp_frame_length(b) == 0 && (b[5] & TP_UDP_FLAG_EOS) != 0;
    }
    assert_true(saw_eos);
    close(w.fd);
}

/* Status messages and NAKs that lie are dropped and counted; the window never exceeds half a term. */
static void test_publication_hostile_control(void **state)
{
    (void)state;
    wire_pub_t w;
    wire_pub_open(&w, port + 1, "|term-length=64k|linger=0");
    send_sm(&w, w.setup.initial_term_id, 0, INT32_MAX, 0); /* an absurd window */
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    assert_true(tp_bus_publication_is_connected(w.pub));
    uint8_t msg[1000];
    memset(msg, 1, sizeof(msg));
    int offered = 0;
    while (tp_bus_offer(w.pub, msg, sizeof(msg)) > 0)
    {
        offered++;
    }
    tp_bus_publication_do_work(w.pub);
    uint8_t b[4096];
    struct sockaddr_in from;
    uint64_t bytes = 0;
    ssize_t n;
    while ((n = raw_recv_data(w.fd, b, sizeof(b), &from)) > 0)
    {
        bytes += (uint64_t)n;
    }
    assert_true(bytes <= 32 * 1024); /* clamped to half a term */
    assert_true(bytes >= 32 * 1024 - 1056);
    assert_true(offered >= 30);
    tp_udp_pub_counters_t before;
    tp_bus_udp_publication_counters(w.pub, &before);
    send_sm(&w, w.setup.initial_term_id + 5, 0, 4096, 0);   /* consumed what was never sent */
    send_sm(&w, w.setup.initial_term_id, 99999, 4096, 0);   /* an offset past the term */
    send_sm(&w, w.setup.initial_term_id, 0, -5, 0);         /* a negative window */
    send_nak(&w, w.setup.initial_term_id, 60000, 1000);     /* a range never sent */
    send_nak(&w, w.setup.initial_term_id, 0, -1);           /* a negative length */
    send_nak(&w, w.setup.initial_term_id, 33, 64);          /* not a frame boundary */
    send_nak(&w, w.setup.initial_term_id - 3, 0, 64);       /* long gone */
    send_nak(&w, w.setup.initial_term_id - 1, 65536 - 64, 64); /* before the stream began: no position */
    raw_send(w.fd, "\x10\0\0\0\0\0\3\0", 8, &w.pub_addr);   /* a truncated SM */
    usleep(2000);
    tp_bus_publication_do_work(w.pub);
    tp_udp_pub_counters_t after;
    tp_bus_udp_publication_counters(w.pub, &after);
    assert_int_equal(after.control_malformed - before.control_malformed, 9);
    assert_int_equal(after.retransmits_sent, before.retransmits_sent);
    assert_true(nothing_more(w.fd));
    /* and it still works: a receiver that took everything opens the window again */
    send_sm(&w, w.setup.initial_term_id, (int32_t)bytes, 8192, 0);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    assert_true(raw_recv_data(w.fd, b, sizeof(b), &from) > 0);
    wire_pub_close(&w);
}

/* A coalescing publication sends offers in a burst in mtu-sized datagrams (22 frames of 64 bytes fill 1408) once
 * the burst fills TP_UDP_BURST_DATAGRAMS of them; the remainder goes at do_work. A lone offer goes at once. Without
 * coalescing every offer goes at once. */
static void test_small_messages_coalesce(void **state)
{
    (void)state;
    wire_pub_t w;
    wire_pub_open(&w, port + 4, "|term-length=64k|linger=0");
    tp_assert_ok(tp_bus_publication_set_coalescing(w.pub, true));
    send_sm(&w, w.setup.initial_term_id, 0, 65536, 0);
    usleep(1000);
    tp_bus_publication_do_work(w.pub);
    uint8_t msg[32] = { 0 };
    uint8_t b[2048];
    struct sockaddr_in from;
    /* the clock stands still: after the first, every offer is part of a burst */
    assert_true(tp_bus_offer(w.pub, msg, sizeof(msg)) > 0);
    assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 64);
    for (int i = 0; i < 22 * TP_UDP_BURST_DATAGRAMS + 24; i++)
    {
        assert_true(tp_bus_offer(w.pub, msg, sizeof(msg)) > 0);
    }
    /* sent once the burst filled TP_UDP_BURST_DATAGRAMS datagrams of 22 frames */
    for (int i = 0; i < TP_UDP_BURST_DATAGRAMS; i++)
    {
        assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 22 * 64);
    }
    assert_true(nothing_more(w.fd));
    tp_bus_publication_do_work(w.pub);
    assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 22 * 64);
    assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 2 * 64);
    fake_now += TP_UDP_COALESCE_NS;
    assert_true(tp_bus_offer(w.pub, msg, sizeof(msg)) > 0);
    assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 64);
    tp_assert_ok(tp_bus_publication_set_coalescing(w.pub, false));
    for (int i = 0; i < 3; i++)
    {
        assert_true(tp_bus_offer(w.pub, msg, sizeof(msg)) > 0);
        assert_int_equal(raw_recv_data(w.fd, b, sizeof(b), &from), 64);
    }
    wire_pub_close(&w);
}

/* ---- our subscription on the wire ---- */

typedef struct wire_sub
{
    int fd;
    int sub_port;
    tp_bus_subscription_t *sub;
    int available;
    int unavailable;
    int messages;
    uint8_t last[256];
    size_t last_length;
} wire_sub_t;

static void on_sub_msg(void *clientd, const uint8_t *buf, size_t len, const tp_bus_header_t *h)
{
    (void)h;
    wire_sub_t *w = clientd;
    w->messages++;
    w->last_length = len < sizeof(w->last) ? len : sizeof(w->last);
    memcpy(w->last, buf, w->last_length);
}

static void on_sub_available(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)stream_id;
    (void)session_id;
    ((wire_sub_t *)clientd)->available++;
}

static void on_sub_unavailable(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)stream_id;
    (void)session_id;
    ((wire_sub_t *)clientd)->unavailable++;
}

static void sub_poll(wire_sub_t *w)
{
    usleep(1000);
    for (int i = 0; i < 3; i++)
    {
        tp_bus_poll(w->sub, on_sub_msg, w, 64);
    }
}

static size_t data_frame(uint8_t *d, int32_t session, int32_t term_id, int32_t term_offset, uint8_t flags,
    const char *text)
{
    size_t length = strlen(text);
    tp_udp_data_header_t h = { .frame_length = (int32_t)(32 + length), .flags = flags, .type = TP_UDP_TYPE_DATA,
        .term_offset = term_offset, .session_id = session, .stream_id = 42, .term_id = term_id };
    memset(d, 0, tp_udp_align((uint32_t)(32 + length)));
    tp_udp_data_header_put(d, &h);
    memcpy(d + 32, text, length);
    return tp_udp_align((uint32_t)(32 + length));
}

static void send_frame(wire_sub_t *w, int32_t session, int32_t term_id, int32_t term_offset, const char *text)
{
    uint8_t d[512];
    size_t n = data_frame(d, session, term_id, term_offset, TP_UDP_FLAGS_UNFRAGMENTED, text);
    raw_send_port(w->fd, d, n, w->sub_port);
}

/* SETUP creates an image and is answered by a status message; data is checked frame by frame; a gap is NAKed;
 * lies are dropped and counted; end of stream retires the image. */
static void test_subscription_on_the_wire(void **state)
{
    (void)state;
    wire_sub_t w = { .sub_port = port + 2 };
    char ch[128];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d", w.sub_port);
    tp_assert_ok(tp_bus_subscription_open(&w.sub, bus, ch, 42, on_sub_available, on_sub_unavailable, &w));
    w.fd = raw_open(0);
    uint8_t b[512];
    struct sockaddr_in from;
    /* data before any SETUP asks for one */
    send_frame(&w, 77, 5, 0, "early");
    sub_poll(&w);
    ssize_t n = raw_recv_type(w.fd, b, sizeof(b), TP_UDP_TYPE_SM, &from);
    assert_int_equal(n, TP_UDP_SM_LENGTH);
    tp_udp_sm_t sm;
    tp_udp_sm_get(&sm, b);
    assert_int_equal(sm.flags, TP_UDP_SM_FLAG_SEND_SETUP);
    assert_int_equal(sm.session_id, 77);
    assert_int_equal(w.messages, 0);
    /* a SETUP that makes no sense is refused */
    tp_udp_setup_t s = { .term_offset = 0, .session_id = 77, .stream_id = 42, .initial_term_id = 5,
        .active_term_id = 5, .term_length = 65536 + 32, .mtu = 1408 };
    tp_udp_setup_put(b, &s);
    raw_send_port(w.fd, b, TP_UDP_SETUP_LENGTH, w.sub_port);
    sub_poll(&w);
    assert_int_equal(w.available, 0);
    s.term_length = 65536;
    s.active_term_id = 4; /* before its initial term */
    tp_udp_setup_put(b, &s);
    raw_send_port(w.fd, b, TP_UDP_SETUP_LENGTH, w.sub_port);
    sub_poll(&w);
    assert_int_equal(w.available, 0);
    s.active_term_id = 5;
    tp_udp_setup_put(b, &s);
    raw_send_port(w.fd, b, TP_UDP_SETUP_LENGTH, w.sub_port);
    sub_poll(&w);
    assert_int_equal(w.available, 1);
    n = raw_recv_type(w.fd, b, sizeof(b), TP_UDP_TYPE_SM, &from);
    assert_int_equal(n, TP_UDP_SM_LENGTH);
    tp_udp_sm_get(&sm, b);
    assert_int_equal(sm.flags, 0);
    assert_int_equal(sm.consumption_term_id, 5);
    assert_int_equal(sm.consumption_term_offset, 0);
    assert_int_equal(sm.receiver_window, 32768); /* the default window, at most half the term */
    tp_bus_counters_t c0;
    tp_bus_subscription_counters(w.sub, &c0);
    /* in order */
    send_frame(&w, 77, 5, 0, "zero");
    sub_poll(&w);
    assert_int_equal(w.messages, 1);
    assert_memory_equal(w.last, "zero", 4);
    /* a gap (each of these frames is 64 bytes aligned): 128 arrives before 64; after the NAK delay a NAK asks for
     * [64, 128) */
    send_frame(&w, 77, 5, 128, "two");
    sub_poll(&w);
    assert_int_equal(w.messages, 1);
    fake_now += TP_UDP_NAK_UNICAST_DELAY_NS;
    sub_poll(&w);
    n = raw_recv_type(w.fd, b, sizeof(b), TP_UDP_TYPE_NAK, &from);
    assert_int_equal(n, TP_UDP_NAK_LENGTH);
    tp_udp_nak_t nak;
    tp_udp_nak_get(&nak, b);
    assert_int_equal(nak.session_id, 77);
    assert_int_equal(nak.term_id, 5);
    assert_int_equal(nak.term_offset, 64);
    assert_int_equal(nak.length, 64);
    send_frame(&w, 77, 5, 64, "one");
    sub_poll(&w);
    assert_int_equal(w.messages, 3);
    assert_memory_equal(w.last, "two", 3);
    /* lies: each dropped and counted, none delivered */
    uint8_t d[512];
    size_t dn = data_frame(d, 77, 5, 192 + 8, TP_UDP_FLAGS_UNFRAGMENTED, "unaligned offset");
    raw_send_port(w.fd, d, dn, w.sub_port);
    dn = data_frame(d, 77, 5, 65536 - 32, TP_UDP_FLAGS_UNFRAGMENTED, "runs past the end of the term");
    raw_send_port(w.fd, d, dn, w.sub_port);
    dn = data_frame(d, 77, 5, 192, TP_UDP_FLAGS_UNFRAGMENTED, "first");
    data_frame(d + dn, 78, 5, 192 + (int32_t)dn, TP_UDP_FLAGS_UNFRAGMENTED, "another session inside");
    raw_send_port(w.fd, d, dn + 64, w.sub_port);
    dn = data_frame(d, 77, 5, 192, TP_UDP_FLAGS_UNFRAGMENTED, "x");
    tp_udp_put_i32(d, 0, 5000);
    raw_send_port(w.fd, d, dn, w.sub_port); /* frame length past the datagram */
    raw_send_port(w.fd, "\x01\x02\x03", 3, w.sub_port);
    sub_poll(&w);
    tp_bus_counters_t c1;
    tp_bus_subscription_counters(w.sub, &c1);
    assert_int_equal(c1.malformed - c0.malformed, 5);
    /* far ahead of the window granted: counted as an overrun, not stored */
    send_frame(&w, 77, 5 + 4, 0, "overrun");
    sub_poll(&w);
    tp_udp_sub_counters_t uc;
    tp_bus_udp_subscription_counters(w.sub, &uc);
    assert_int_equal(uc.overruns, 1);
    assert_int_equal(w.messages, 3);
    /* a duplicate is counted and not delivered again */
    send_frame(&w, 77, 5, 64, "one");
    sub_poll(&w);
    tp_bus_udp_subscription_counters(w.sub, &uc);
    assert_int_equal(uc.duplicates, 1);
    assert_int_equal(w.messages, 3);
    /* the stream goes on and ends: end of stream at 256 retires the image once 256 is consumed */
    send_frame(&w, 77, 5, 192, "three");
    tp_udp_data_header_t hb = { .frame_length = 0, .flags = TP_UDP_FLAGS_UNFRAGMENTED | TP_UDP_FLAG_EOS,
        .type = TP_UDP_TYPE_DATA, .term_offset = 256, .session_id = 77, .stream_id = 42, .term_id = 5 };
    tp_udp_data_header_put(b, &hb);
    raw_send_port(w.fd, b, 32, w.sub_port);
    sub_poll(&w);
    assert_int_equal(w.messages, 4);
    assert_memory_equal(w.last, "three", 5);
    assert_int_equal(w.unavailable, 1);
    tp_bus_subscription_close(w.sub);
    close(w.fd);
}

/* A publication that goes silent is dropped after the image liveness timeout (10 s), by the clock, not by sleep. */
static void test_image_liveness_timeout(void **state)
{
    (void)state;
    wire_sub_t w = { .sub_port = port + 3 };
    char ch[128];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d", w.sub_port);
    tp_assert_ok(tp_bus_subscription_open(&w.sub, bus, ch, 42, on_sub_available, on_sub_unavailable, &w));
    w.fd = raw_open(0);
    uint8_t b[64];
    tp_udp_setup_t s = { .session_id = 5, .stream_id = 42, .initial_term_id = 0, .active_term_id = 0,
        .term_length = 65536, .mtu = 1408 };
    tp_udp_setup_put(b, &s);
    raw_send_port(w.fd, b, TP_UDP_SETUP_LENGTH, w.sub_port);
    sub_poll(&w);
    assert_int_equal(w.available, 1);
    fake_now += TP_UDP_IMAGE_LIVENESS_NS - TP_NS_PER_MS;
    sub_poll(&w);
    assert_int_equal(w.unavailable, 0);
    fake_now += 2 * TP_NS_PER_MS;
    sub_poll(&w);
    assert_int_equal(w.unavailable, 1);
    tp_bus_subscription_close(w.sub);
    close(w.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_layouts),
        cmocka_unit_test(test_classify_rejects_malformed),
        cmocka_unit_test(test_publication_frames),
        cmocka_unit_test(test_publication_hostile_control),
        cmocka_unit_test(test_small_messages_coalesce),
        cmocka_unit_test(test_subscription_on_the_wire),
        cmocka_unit_test(test_image_liveness_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
