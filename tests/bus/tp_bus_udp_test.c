/*
 * The bus over UDP, Aeron's transport protocol, on loopback: the handshake, fragmentation and reassembly, claims,
 * streams sharing an endpoint, flow control, reliability through a lossy relay (and loss counting with
 * reliable=false), end of stream. Wire bytes, hostile datagrams and the timers on a fake clock are in
 * tp_bus_udp_wire_test.c.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/tp_bus_udp.h"
#include "core/tp_alloc.h"
#include "tensorpool/tp_bus.h"
#include "tp_bus_test_util.h"
#include "tp_malloc_count.h"
#include "tp_test_util.h"
#include "cli/tp_udp_relay.h"

static tp_bus_t *bus;
static char dir[512];
static int port;

typedef struct got
{
    uint64_t count;
    uint64_t bad;
    uint64_t next;
    uint64_t out_of_order; /* not the next sequence number */
    uint64_t backwards;    /* an earlier sequence number than one already seen */
    uint64_t bytes;
    int32_t stream;
    int available;
    int unavailable;
} got_t;

static void on_msg(void *clientd, const uint8_t *buf, size_t len, const tp_bus_header_t *h)
{
    got_t *g = clientd;
    test_msg_t m;
    if (!test_msg_check(buf, len, &m) || (g->stream != 0 && h->stream_id != g->stream))
    {
        g->bad++;
        return;
    }
    if (m.seq != g->next)
    {
        g->out_of_order++;
    }
    if (m.seq < g->next)
    {
        g->backwards++;
    }
    g->next = m.seq + 1;
    g->count++;
    g->bytes += len;
}

static void on_available(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)stream_id;
    (void)session_id;
    ((got_t *)clientd)->available++;
}

static void on_unavailable(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)stream_id;
    (void)session_id;
    ((got_t *)clientd)->unavailable++;
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "busudp");
    tp_assert_ok(tp_bus_init(&bus, dir));
    port = 21000 + (int)(getpid() % 20000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

static void channel_for(char *out, size_t n, int p, const char *options)
{
    snprintf(out, n, "aeron:udp?endpoint=127.0.0.1:%d%s", p, options);
}

/* Service both ends until want messages arrived (or give up after ~5 s of no progress). */
static void pump(tp_bus_publication_t *p, tp_bus_subscription_t *s, got_t *g, uint64_t want)
{
    int idle = 0;
    while (g->count < want && idle < 5000)
    {
        if (p != NULL)
        {
            tp_bus_publication_do_work(p);
        }
        if (tp_bus_poll(s, on_msg, g, 64) == 0)
        {
            idle++;
            tp_bus_subscription_park(s, TP_NS_PER_MS);
        }
        else
        {
            idle = 0;
        }
    }
}

static void await_connected(tp_bus_publication_t *p, tp_bus_subscription_t *s, got_t *g)
{
    for (int i = 0; i < 2000 && !tp_bus_publication_is_connected(p); i++)
    {
        tp_bus_publication_do_work(p);
        if (tp_bus_poll(s, on_msg, g, 64) == 0)
        {
            tp_bus_subscription_park(s, TP_NS_PER_MS);
        }
    }
    assert_true(tp_bus_publication_is_connected(p));
}

/* Offer, servicing both ends while back-pressured. */
static void offer(tp_bus_publication_t *p, tp_bus_subscription_t *s, got_t *g, const uint8_t *buf, size_t n)
{
    for (int tries = 0; tries < 100000; tries++)
    {
        int64_t rc = tp_bus_offer(p, buf, n);
        if (rc > 0)
        {
            return;
        }
        assert_true(rc == TP_BUS_BACK_PRESSURED || rc == TP_BUS_NOT_CONNECTED);
        tp_bus_publication_do_work(p);
        if (tp_bus_poll(s, on_msg, g, 256) == 0)
        {
            tp_bus_subscription_park(s, 100 * TP_NS_PER_US);
        }
    }
    fail_msg("offer stayed back-pressured");
}

/* A publication is not connected until a receiver's status message arrives; then messages of every size flow. */
static void test_handshake_and_messages(void **state)
{
    (void)state;
    char ch[160];
    channel_for(ch, sizeof(ch), port, "|term-length=1m");
    got_t g = { .stream = 7 };
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 7, false));
    uint8_t buf[1 << 17];
    /* Nobody listens yet: the offer is refused, not buffered. */
    assert_int_equal(tp_bus_offer(p, buf, test_msg_make(buf, 0, 0, 64)), TP_BUS_NOT_CONNECTED);
    assert_false(tp_bus_publication_is_connected(p));
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 7, on_available, on_unavailable, &g));
    await_connected(p, s, &g);
    assert_int_equal(g.available, 1);
    /* Unfragmented, exactly one frame, one byte more (two fragments), large, and the largest message. */
    assert_int_equal(tp_bus_publication_max_message_length(p), (1u << 20) / 8);
    const uint32_t sizes[] = { 20, 1376, 1377, 4000, 65536, 100000, (1u << 20) / 8 };
    uint64_t seq = 0;
    for (int round = 0; round < 20; round++)
    {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, seq++)
        {
            offer(p, s, &g, buf, test_msg_make(buf, 0, seq, sizes[i]));
        }
    }
    pump(p, s, &g, seq);
    assert_int_equal(g.count, seq);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.out_of_order, 0);
    assert_int_equal(tp_bus_offer(p, buf, (1u << 20) / 8 + 1), TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED);
    /* A claim is one frame: at most mtu - 32 bytes. */
    tp_bus_claim_t claim;
    assert_int_equal(tp_bus_try_claim(p, 1377, &claim), TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED);
    assert_true(tp_bus_try_claim(p, 1376, &claim) > 0);
    test_msg_make(claim.buffer, 0, seq++, 1376);
    assert_true(tp_bus_commit(p, &claim) > 0);
    assert_true(tp_bus_try_claim(p, 100, &claim) > 0);
    assert_true(tp_bus_abort(p, &claim) > 0); /* becomes padding nobody sees */
    assert_true(tp_bus_try_claim(p, 100, &claim) > 0);
    test_msg_make(claim.buffer, 0, seq++, 100);
    assert_true(tp_bus_commit(p, &claim) > 0);
    pump(p, s, &g, seq);
    assert_int_equal(g.count, seq);
    assert_int_equal(g.bad + g.out_of_order, 0);
    /* Closing the publication ends the stream: the image goes once everything was delivered. */
    tp_bus_publication_close(p);
    for (int i = 0; i < 1000 && g.unavailable == 0; i++)
    {
        tp_bus_poll(s, on_msg, &g, 64);
        tp_bus_subscription_park(s, TP_NS_PER_MS);
    }
    assert_int_equal(g.unavailable, 1);
    tp_bus_counters_t c;
    tp_bus_subscription_counters(s, &c);
    assert_int_equal(c.images_active, 0);
    assert_int_equal(c.malformed, 0);
    tp_bus_subscription_close(s);
}

static void test_streams_share_an_endpoint(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port + 1, "");
    tp_bus_subscription_t *a;
    tp_bus_subscription_t *b;
    tp_bus_publication_t *pa;
    tp_bus_publication_t *pb;
    got_t ga = { .stream = 1 };
    got_t gb = { .stream = 2 };
    tp_assert_ok(tp_bus_subscription_open(&a, bus, ch, 1, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&b, bus, ch, 2, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pa, bus, ch, 1, false));
    tp_assert_ok(tp_bus_publication_open(&pb, bus, ch, 2, false));
    /* a's polls read b's SETUP and queue it for b; b's polls answer it. */
    for (int i = 0; i < 2000 && !(tp_bus_publication_is_connected(pa) && tp_bus_publication_is_connected(pb)); i++)
    {
        tp_bus_publication_do_work(pa);
        tp_bus_publication_do_work(pb);
        tp_bus_poll(a, on_msg, &ga, 64);
        tp_bus_poll(b, on_msg, &gb, 64);
        usleep(100);
    }
    uint8_t buf[3000];
    for (uint64_t i = 0; i < 200; i++)
    {
        offer(pa, a, &ga, buf, test_msg_make(buf, 1, i, 80 + (uint32_t)(i * 13 % 2900)));
        offer(pb, b, &gb, buf, test_msg_make(buf, 2, i, 80));
    }
    pump(pa, a, &ga, 200); /* reads stream 2's datagrams too and queues them for b */
    pump(pb, b, &gb, 200);
    assert_int_equal(ga.count, 200);
    assert_int_equal(gb.count, 200);
    assert_int_equal(ga.bad + gb.bad, 0);
    assert_int_equal(ga.out_of_order + gb.out_of_order, 0);
    tp_bus_publication_close(pa);
    tp_bus_publication_close(pb);
    tp_bus_subscription_close(a);
    tp_bus_subscription_close(b);
}

/* Two subscriptions of one stream in one process each see every message, as two Aeron subscriptions would (each
 * rebuilds an image of its own and sends its own status messages). */
static void test_two_subscriptions_of_one_stream(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port + 6, "");
    tp_bus_subscription_t *a;
    tp_bus_subscription_t *b;
    tp_bus_publication_t *p;
    got_t ga = { .stream = 3 };
    got_t gb = { .stream = 3 };
    tp_assert_ok(tp_bus_subscription_open(&a, bus, ch, 3, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&b, bus, ch, 3, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 3, false));
    for (int i = 0; i < 2000 && !tp_bus_publication_is_connected(p); i++)
    {
        tp_bus_publication_do_work(p);
        tp_bus_poll(a, on_msg, &ga, 64);
        tp_bus_poll(b, on_msg, &gb, 64);
        usleep(100);
    }
    uint8_t buf[3000];
    for (uint64_t i = 0; i < 200; i++)
    {
        offer(p, a, &ga, buf, test_msg_make(buf, 3, i, 80 + (uint32_t)(i * 13 % 2900)));
        tp_bus_poll(b, on_msg, &gb, 64);
    }
    pump(p, a, &ga, 200);
    pump(p, b, &gb, 200);
    assert_int_equal(ga.count, 200);
    assert_int_equal(gb.count, 200);
    assert_int_equal(ga.bad + gb.bad + ga.out_of_order + gb.out_of_order, 0);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(a);
    tp_bus_subscription_close(b);
}

typedef struct poller
{
    tp_bus_subscription_t *sub;
    got_t got;
    uint64_t want;
    atomic_int is_done;
} poller_t;

static void *poll_thread(void *arg)
{
    poller_t *p = arg;
    for (int idle = 0; p->got.count < p->want && idle < 5000;)
    {
        if (tp_bus_poll(p->sub, on_msg, &p->got, 64) == 0)
        {
            idle++;
            tp_bus_subscription_park(p->sub, TP_NS_PER_MS);
        }
        else
        {
            idle = 0;
        }
    }
    atomic_store(&p->is_done, 1);
    return NULL;
}

/* Two threads each poll their own stream's subscription on one shared endpoint: each reads the socket for both
 * and hands the other's datagrams over through its inbox (TSan watches the handover). */
static void test_shared_endpoint_across_threads(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port + 21, "");
    poller_t a = { .got = { .stream = 1 }, .want = 2000 };
    poller_t b = { .got = { .stream = 2 }, .want = 2000 };
    tp_bus_publication_t *pa;
    tp_bus_publication_t *pb;
    tp_assert_ok(tp_bus_subscription_open(&a.sub, bus, ch, 1, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&b.sub, bus, ch, 2, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pa, bus, ch, 1, false));
    tp_assert_ok(tp_bus_publication_open(&pb, bus, ch, 2, false));
    pthread_t ta;
    pthread_t tb;
    assert_int_equal(pthread_create(&ta, NULL, poll_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, poll_thread, &b), 0);
    uint8_t buf[2000];
    uint64_t sent_a = 0;
    uint64_t sent_b = 0;
    for (int tries = 0; tries < 2000000 && (sent_a < 2000 || sent_b < 2000); tries++)
    {
        if (sent_a < 2000 && tp_bus_offer(pa, buf, test_msg_make(buf, 1, sent_a, 40 + (uint32_t)(sent_a % 1900))) > 0)
        {
            sent_a++;
        }
        if (sent_b < 2000 && tp_bus_offer(pb, buf, test_msg_make(buf, 2, sent_b, 100)) > 0)
        {
            sent_b++;
        }
        tp_bus_publication_do_work(pa);
        tp_bus_publication_do_work(pb);
    }
    while (!atomic_load(&a.is_done) || !atomic_load(&b.is_done))
    {
        tp_bus_publication_do_work(pa);
        tp_bus_publication_do_work(pb);
        usleep(1000);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.got.count, 2000);
    assert_int_equal(b.got.count, 2000);
    assert_int_equal(a.got.bad + b.got.bad + a.got.out_of_order + b.got.out_of_order, 0);
    tp_bus_publication_close(pa);
    tp_bus_publication_close(pb);
    tp_bus_subscription_close(a.sub);
    tp_bus_subscription_close(b.sub);
}

/* No sender runs ahead of the window its receiver granted: with a receiver that does not poll, the publication
 * sends at most one window and then, half a term ahead, is back-pressured; nothing is lost. */
static void test_flow_control_window(void **state)
{
    (void)state;
    char ch[160];
    channel_for(ch, sizeof(ch), port + 2, "|term-length=64k|rcv-wnd=16k");
    got_t g = { .stream = 3 };
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 3, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 3, false));
    await_connected(p, s, &g);
    tp_udp_pub_counters_t before;
    tp_bus_udp_publication_counters(p, &before);
    uint8_t buf[1024];
    uint64_t offered = 0;
    int64_t rc;
    while ((rc = tp_bus_offer(p, buf, test_msg_make(buf, 0, offered, 1000))) > 0)
    {
        offered++;
        assert_true(offered < 1000);
    }
    assert_int_equal(rc, TP_BUS_BACK_PRESSURED);
    tp_udp_pub_counters_t after;
    tp_bus_udp_publication_counters(p, &after);
    uint64_t data_bytes = after.bytes_sent - before.bytes_sent - 32 * (after.heartbeats_sent - before.heartbeats_sent) -
        40 * (after.setups_sent - before.setups_sent);
    assert_true(data_bytes <= 16 * 1024);
    assert_true(data_bytes >= 16 * 1024 - 1056); /* the window is used, to within one frame */
    assert_true(offered * 1056 >= 32 * 1024 - 1056); /* half a term appended before back pressure */
    pump(p, s, &g, offered);
    assert_int_equal(g.count, offered);
    assert_int_equal(g.bad + g.out_of_order, 0);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
}

static int relay_sub_port; /* the subscription's port of the last run through the relay (the capture's Aeron port) */

/* A UDP port of 127.0.0.1 nobody holds now (the kernel picks it): other tests running beside this one take ports
 * too, and one derived from our pid may be theirs. */
static void run_through_relay(const char *options, const tp_udp_relay_options_t *rates, uint64_t messages, got_t *g,
    tp_bus_counters_t *counters, tp_udp_sub_counters_t *sub_counters, tp_udp_pub_counters_t *pub_counters)
{
    char pub_ch[160];
    char sub_ch[160];
    int relay_port = tp_test_free_udp_port();
    int sub_port = tp_test_free_udp_port();
    while (sub_port == relay_port)
    {
        sub_port = tp_test_free_udp_port();
    }
    relay_sub_port = sub_port;
    channel_for(pub_ch, sizeof(pub_ch), relay_port, options);
    channel_for(sub_ch, sizeof(sub_ch), sub_port, options);
    tp_udp_relay_t *relay;
    assert_int_equal(tp_udp_relay_start(&relay, relay_port, sub_port, rates), 0);
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, sub_ch, 5, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, pub_ch, 5, false));
    tp_assert_ok(tp_bus_publication_set_coalescing(p, true)); /* many frames to a datagram, through the relay too */
    await_connected(p, s, g);
    static uint8_t buf[8192];
    for (uint64_t i = 0; i < messages; i++)
    {
        offer(p, s, g, buf, test_msg_make(buf, 0, i, 32 + (uint32_t)((i * 7919) % 6000)));
    }
    pump(p, s, g, messages);
    tp_bus_subscription_counters(s, counters);
    tp_bus_udp_subscription_counters(s, sub_counters);
    tp_bus_udp_publication_counters(p, pub_counters);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
    uint64_t forwarded;
    uint64_t dropped;
    tp_udp_relay_counts(relay, &forwarded, &dropped);
    tp_udp_relay_stop(relay);
    print_message("relay: %" PRIu64 " datagrams, %" PRIu64 " dropped; %" PRIu64 " NAKs, %" PRIu64
                  " retransmits, %" PRIu64 " gaps skipped\n",
        forwarded, dropped, sub_counters->naks_sent, pub_counters->retransmits_sent, sub_counters->gaps_skipped);
}

/* reliable=true: through 1% loss, 5% reordering, 1% duplication and damaged headers, in both directions, every
 * message arrives exactly once, in order, intact. TP_UDP_RELAY_BYTES makes it a long run (ctest -L long: 2 GiB). */
static void test_reliable_through_lossy_relay(void **state)
{
    (void)state;
    tp_udp_relay_options_t rates = { .drop = 0.01, .duplicate = 0.01, .reorder = 0.05, .corrupt = 0.005, .seed = 42 };
    got_t g = { .stream = 5 };
    tp_bus_counters_t c;
    tp_udp_sub_counters_t sc;
    tp_udp_pub_counters_t pc;
    const char *bytes = getenv("TP_UDP_RELAY_BYTES");
    uint64_t messages = bytes != NULL ? strtoull(bytes, NULL, 10) / 3000 : 20000; /* messages average 3 KB */
    run_through_relay("|term-length=256k", &rates, messages, &g, &c, &sc, &pc);
    print_message("%" PRIu64 " messages, %.2f GiB, exactly once and in order\n", g.count,
        (double)g.bytes / (double)(1ull << 30));
    assert_int_equal(g.count, messages);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.out_of_order, 0);
    assert_true(sc.naks_sent > 0);
    assert_true(pc.retransmits_sent > 0);
    assert_true(c.malformed > 0); /* the damaged headers were noticed and dropped */
}

/* reliable=false: losses are skipped and counted; what arrives is intact and in order. */
static void test_unreliable_counts_losses(void **state)
{
    (void)state;
    tp_udp_relay_options_t rates = { .drop = 0.02, .reorder = 0.02, .seed = 7 };
    got_t g = { .stream = 5 };
    tp_bus_counters_t c;
    tp_udp_sub_counters_t sc;
    tp_udp_pub_counters_t pc;
    run_through_relay("|term-length=256k|reliable=false", &rates, 5000, &g, &c, &sc, &pc);
    assert_int_equal(g.bad, 0);
    assert_true(g.count < 5000);
    assert_true(g.count > 4000);
    assert_true(c.lost_records > 0);
    assert_int_equal(c.lost_records, sc.gaps_skipped);
    assert_int_equal(sc.naks_sent, 0);
    assert_int_equal(g.backwards, 0); /* every jump in the sequence is a loss, never a step back */
}

/* Offer, claim, commit, poll and do_work allocate nothing once the stream runs (fragmented messages included). */
static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    char ch[160];
    channel_for(ch, sizeof(ch), port + 20, "|term-length=64k");
    got_t g = { .stream = 9 };
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 9, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 9, false));
    await_connected(p, s, &g);
    static uint8_t buf[4000];
    uint64_t seq = 0;
    offer(p, s, &g, buf, test_msg_make(buf, 0, seq++, 3000));
    pump(p, s, &g, seq);
    uint64_t before = tp_malloc_count();
    uint64_t before_tp = tp_alloc_count();
    for (int i = 0; i < 2000; i++)
    {
        offer(p, s, &g, buf, test_msg_make(buf, 0, seq++, i % 2 == 0 ? 48 : 3000));
        tp_bus_claim_t claim;
        while (tp_bus_try_claim(p, 64, &claim) < 0)
        {
            tp_bus_publication_do_work(p);
            tp_bus_poll(s, on_msg, &g, 64);
        }
        test_msg_make(claim.buffer, 0, seq++, 64);
        tp_bus_commit(p, &claim);
        tp_bus_publication_do_work(p);
        tp_bus_poll(s, on_msg, &g, 64);
    }
    pump(p, s, &g, seq);
    assert_int_equal(tp_alloc_count(), before_tp);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count(), before);
    }
    assert_int_equal(g.count, seq);
    assert_int_equal(g.bad + g.out_of_order, 0);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
}

static int count_packets(const char *pcap, const char *filter)
{
    char cmd[1400];
    char out[256];
    snprintf(cmd, sizeof(cmd), "tshark -n -r '%s' -d udp.port==%d,aeron -Y '%s' 2>/dev/null | wc -l", pcap,
        relay_sub_port, filter);
    if (tp_test_run(cmd, out, sizeof(out)) != 0)
    {
        fail_msg("%s failed: %s", cmd, out);
    }
    return atoi(out);
}

/* Wireshark's Aeron dissector (tshark) reads a capture of our traffic, both directions, through loss: every packet
 * is Aeron, none is malformed, and SETUP, SM, NAK, DATA, padding and heartbeats all occur. */
static void test_wireshark_decodes_our_traffic(void **state)
{
    (void)state;
    if (system("command -v tshark > /dev/null 2>&1") != 0)
    {
        print_message("tshark is not installed: the Wireshark check is skipped (apt-get install tshark)\n");
        skip();
    }
    char pcap[600];
    snprintf(pcap, sizeof(pcap), "%s/udp.pcap", dir);
    tp_udp_relay_options_t options = { .drop = 0.01, .reorder = 0.02, .seed = 3, .pcap_path = pcap };
    got_t g = { .stream = 5 };
    tp_bus_counters_t c;
    tp_udp_sub_counters_t sc;
    tp_udp_pub_counters_t pc;
    run_through_relay("|term-length=64k", &options, 3000, &g, &c, &sc, &pc);
    assert_int_equal(g.count, 3000);
    int all = count_packets(pcap, "frame");
    int malformed = count_packets(pcap, "_ws.malformed || _ws.expert.severity >= 8388608");
    print_message("tshark: %d packets, %d malformed or in error\n", all, malformed);
    assert_true(all > 3000);
    assert_int_equal(count_packets(pcap, "!aeron"), 0);
    assert_int_equal(malformed, 0);
    const char *kinds[] = { "aeron.setup", "aeron.sm", "aeron.nak", "aeron.data", "aeron.pad", "aeron.heartbeat" };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
    {
        if (count_packets(pcap, kinds[i]) == 0)
        {
            fail_msg("no %s in the capture", kinds[i]);
        }
    }
}

int main(void)
{
    if (getenv("TP_UDP_RELAY_BYTES") != NULL)
    {
        cmocka_set_test_filter("test_reliable_through_lossy_relay");
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_messages),
        cmocka_unit_test(test_streams_share_an_endpoint),
        cmocka_unit_test(test_two_subscriptions_of_one_stream),
        cmocka_unit_test(test_shared_endpoint_across_threads),
        cmocka_unit_test(test_flow_control_window),
        cmocka_unit_test(test_reliable_through_lossy_relay),
        cmocka_unit_test(test_unreliable_counts_losses),
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_wireshark_decodes_our_traffic),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
