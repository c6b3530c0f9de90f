/* The bus over UDP on loopback: unicast, several streams on one endpoint, multicast, hostile datagrams, gaps. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tensorpool/tp_bus.h"
#include "tp_bus_test_util.h"
#include "tp_test_util.h"

static tp_bus_t *bus;
static char dir[512];
static int port;

typedef struct got
{
    uint64_t count;
    uint64_t bad;
    uint64_t next;
    uint64_t out_of_order;
    int32_t stream;
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
    g->next = m.seq + 1;
    g->count++;
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

static void channel_for(char *out, size_t n, int p)
{
    snprintf(out, n, "aeron:udp?endpoint=127.0.0.1:%d", p);
}

static void drain(tp_bus_subscription_t *s, got_t *g, uint64_t want)
{
    for (int spins = 0; spins < 2000 && g->count < want; spins++)
    {
        if (tp_bus_poll(s, on_msg, g, 64) == 0)
        {
            tp_bus_subscription_park(s, 1000000);
        }
    }
}

static void test_unicast(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port);
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 7, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 7, false));
    assert_true(tp_bus_publication_is_connected(p));
    uint8_t buf[2048];
    got_t g = { .stream = 7 };
    for (uint64_t i = 0; i < 1000; i++)
    {
        assert_true(tp_bus_offer(p, buf, test_msg_make(buf, 0, i, 64 + (uint32_t)(i % 500))) > 0);
        if (i % 100 == 99)
        {
            drain(s, &g, i + 1);
        }
    }
    drain(s, &g, 1000);
    assert_int_equal(g.count, 1000);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.out_of_order, 0);
    /* claims become one datagram at commit */
    tp_bus_claim_t claim;
    assert_true(tp_bus_try_claim(p, 100, &claim) > 0);
    test_msg_make(claim.buffer, 0, 1000, 100);
    assert_true(tp_bus_commit(p, &claim) > 0);
    drain(s, &g, 1001);
    assert_int_equal(g.count, 1001);
    /* larger than a datagram: refused */
    assert_int_equal(tp_bus_publication_max_message_length(p), 1408 - 32);
    assert_int_equal(tp_bus_offer(p, buf, 1408 - 31), TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
}

static void test_streams_share_an_endpoint(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port + 1);
    tp_bus_subscription_t *a;
    tp_bus_subscription_t *b;
    tp_bus_publication_t *pa;
    tp_bus_publication_t *pb;
    tp_assert_ok(tp_bus_subscription_open(&a, bus, ch, 1, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&b, bus, ch, 2, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pa, bus, ch, 1, false));
    tp_assert_ok(tp_bus_publication_open(&pb, bus, ch, 2, false));
    uint8_t buf[128];
    for (uint64_t i = 0; i < 100; i++)
    {
        tp_bus_offer(pa, buf, test_msg_make(buf, 1, i, 80));
        tp_bus_offer(pb, buf, test_msg_make(buf, 2, i, 80));
    }
    got_t ga = { .stream = 1 };
    got_t gb = { .stream = 2 };
    drain(a, &ga, 100); /* reads stream 2's datagrams too and queues them for b */
    drain(b, &gb, 100);
    assert_int_equal(ga.count, 100);
    assert_int_equal(gb.count, 100);
    assert_int_equal(ga.bad + gb.bad, 0);
    assert_int_equal(ga.out_of_order + gb.out_of_order, 0);
    tp_bus_publication_close(pa);
    tp_bus_publication_close(pb);
    tp_bus_subscription_close(a);
    tp_bus_subscription_close(b);
}

static void send_raw(int p, const void *data, size_t n)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_int_equal(sendto(fd, data, n, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)n);
    close(fd);
}

typedef struct raw_header
{
    uint32_t magic;
    uint8_t version;
    uint8_t flags;
    uint16_t reserved0;
    int32_t stream_id;
    int32_t session_id;
    uint64_t seq;
    uint32_t length;
    uint32_t reserved1;
} raw_header_t;

static void send_message(int p, int32_t stream, int32_t session, uint64_t seq)
{
    uint8_t d[32 + 64];
    raw_header_t h = { .magic = 0x31425054u, .version = 1, .stream_id = stream, .session_id = session, .seq = seq,
        .length = 64 };
    memcpy(d, &h, sizeof(h));
    test_msg_make(d + 32, 0, seq, 64);
    send_raw(p, d, sizeof(d));
}

static void test_hostile_datagrams_and_gaps(void **state)
{
    (void)state;
    char ch[128];
    channel_for(ch, sizeof(ch), port + 2);
    tp_bus_subscription_t *s;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 9, NULL, NULL, NULL));
    send_raw(port + 2, "short", 5);
    uint8_t junk[64];
    memset(junk, 0xAB, sizeof(junk));
    send_raw(port + 2, junk, sizeof(junk)); /* wrong magic */
    uint8_t d[32 + 64];
    raw_header_t h = { .magic = 0x31425054u, .version = 1, .stream_id = 9, .session_id = 5, .length = 999 };
    memcpy(d, &h, sizeof(h));
    send_raw(port + 2, d, sizeof(d)); /* length field disagrees with the datagram */
    send_message(port + 2, 9, 77, 0);
    send_message(port + 2, 9, 77, 1);
    send_message(port + 2, 9, 77, 5); /* 2, 3, 4 lost */
    send_message(port + 2, 9, 77, 6);
    got_t g = { 0 };
    g.next = 0;
    drain(s, &g, 4);
    tp_bus_counters_t c;
    tp_bus_subscription_counters(s, &c);
    assert_int_equal(g.count, 4);
    assert_int_equal(g.bad, 0);
    assert_int_equal(c.malformed, 3);
    assert_int_equal(c.lost_records, 3);
    assert_int_equal(c.images_joined, 1);
    tp_bus_subscription_close(s);
}

static void test_multicast_on_loopback(void **state)
{
    (void)state;
    char ch[160];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=239.255.77.1:%d|interface=127.0.0.1|ttl=0", port + 3);
    tp_bus_subscription_t *s1;
    tp_bus_subscription_t *s2 = NULL;
    if (tp_bus_subscription_open(&s1, bus, ch, 3, NULL, NULL, NULL) < 0)
    {
        print_message("multicast unavailable here: %s\n", tp_errmsg());
        skip();
    }
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 3, false));
    uint8_t buf[128];
    got_t g = { .stream = 3 };
    for (uint64_t i = 0; i < 100; i++)
    {
        tp_bus_offer(p, buf, test_msg_make(buf, 0, i, 100));
    }
    drain(s1, &g, 100);
    if (g.count == 0)
    {
        print_message("multicast datagrams are not looped back on this host\n");
        tp_bus_publication_close(p);
        tp_bus_subscription_close(s1);
        skip();
    }
    assert_int_equal(g.count, 100);
    assert_int_equal(g.bad, 0);
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s1);
    (void)s2;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicast),
        cmocka_unit_test(test_streams_share_an_endpoint),
        cmocka_unit_test(test_hostile_datagrams_and_gaps),
        cmocka_unit_test(test_multicast_on_loopback),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
