/*
 * The UDP protocol where the test controls the network: a private network namespace (root only; skipped with a
 * message otherwise) whose loopback carries multicast, and tc netem on it for delay, loss and a bandwidth cap.
 *
 * Multicast flow control: two subscriber processes, one slowed down. fc=min holds the publication to the slow
 * one (both receive everything, the fast one no further ahead than a window); fc=max (Aeron's default) lets the
 * publication run at the fast one's pace and leaves the slow one behind.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_udp.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tp_bus_test_util.h"
#include "tp_test_util.h"

#define MESSAGE_BYTES 1000
#define RUN_NS (4 * TP_NS_PER_S)

static char dir[512];
static tp_bus_t *bus;
static int port;

typedef struct tally
{
    uint64_t count;
    uint64_t bad;
    uint64_t next;
} tally_t;

static void on_msg(void *clientd, const uint8_t *buf, size_t len, const tp_bus_header_t *h)
{
    (void)h;
    tally_t *t = clientd;
    test_msg_t m;
    t->count++;
    if (!test_msg_check(buf, len, &m))
    {
        t->bad++;
        return;
    }
    t->bad += m.seq != t->next;
    t->next = m.seq + 1;
}

/* A subscriber process: polls for RUN_NS (one message per millisecond when slow), then writes its tally. */
static pid_t start_subscriber(const char *channel, bool is_slow, int out_fd)
{
    pid_t pid = fork();
    if (pid != 0)
    {
        return pid;
    }
    tp_bus_t *b;
    tp_bus_subscription_t *s;
    if (tp_bus_init(&b, dir) < 0 || tp_bus_subscription_open(&s, b, channel, 11, NULL, NULL, NULL) < 0)
    {
        _exit(2);
    }
    tally_t t = { 0 };
    int64_t end = tp_clock_monotonic_ns() + RUN_NS;
    while (tp_clock_monotonic_ns() < end)
    {
        if (is_slow)
        {
            tp_bus_poll(s, on_msg, &t, 1);
            usleep(1000);
        }
        else if (tp_bus_poll(s, on_msg, &t, 256) == 0)
        {
            tp_bus_subscription_park(s, TP_NS_PER_MS);
        }
    }
    if (write(out_fd, &t, sizeof(t)) != (ssize_t)sizeof(t))
    {
        _exit(3);
    }
    _exit(0);
}

/* Offer as fast as flow control allows for 1.5 s; returns messages offered (appended: up to half
 * a term of them may still wait for the window). */
static uint64_t publish(const char *channel)
{
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_publication_open(&p, bus, channel, 11, false));
    uint8_t buf[MESSAGE_BYTES];
    uint64_t seq = 0;
    int64_t start = tp_clock_monotonic_ns();
    /* Give both subscribers time to join before the first message, so both see the stream from its start. */
    while (tp_clock_monotonic_ns() - start < 300 * TP_NS_PER_MS)
    {
        tp_bus_publication_do_work(p);
        usleep(1000);
    }
    while (tp_clock_monotonic_ns() - start < 1500 * TP_NS_PER_MS && seq < 50000)
    {
        if (tp_bus_offer(p, buf, test_msg_make(buf, 0, seq, MESSAGE_BYTES)) > 0)
        {
            seq++;
        }
        else
        {
            tp_bus_publication_do_work(p);
        }
    }
    tp_bus_publication_close(p); /* lingers (up to 2 s) while the receivers take what was offered */
    return seq;
}

static void run_multicast(const char *fc, uint64_t *published, tally_t *fast, tally_t *slow)
{
    char ch[200];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=239.255.60.1:%d|interface=127.0.0.1|ttl=0|fc=%s|linger=2s", port,
        fc);
    port += 2;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t fast_pid = start_subscriber(ch, false, fds[1]);
    pid_t slow_pid = start_subscriber(ch, true, fds[1]);
    *published = publish(ch);
    int status;
    assert_int_equal(waitpid(fast_pid, &status, 0), fast_pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(waitpid(slow_pid, &status, 0), slow_pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tally_t a;
    tally_t b;
    assert_int_equal(read(fds[0], &a, sizeof(a)), (ssize_t)sizeof(a));
    assert_int_equal(read(fds[0], &b, sizeof(b)), (ssize_t)sizeof(b));
    close(fds[0]);
    close(fds[1]);
    /* The slow one has read fewer by construction; which pipe write came first does not say who is who. */
    *fast = a.count >= b.count ? a : b;
    *slow = a.count >= b.count ? b : a;
    print_message("fc=%s: published %" PRIu64 ", fast subscriber %" PRIu64 " (%" PRIu64 " bad), slow %" PRIu64
                  " (%" PRIu64 " bad)\n",
        fc, *published, fast->count, fast->bad, slow->count, slow->bad);
}

static void test_multicast_min_flow_control(void **state)
{
    (void)state;
    uint64_t published;
    tally_t fast;
    tally_t slow;
    run_multicast("min", &published, &fast, &slow);
    assert_int_equal(fast.bad + slow.bad, 0);
    /* Held to the slow receiver: the fast one is at most a window ahead of it, and nothing was lost by either. */
    assert_true(fast.count - slow.count <= TP_UDP_RECEIVER_WINDOW_DEFAULT / 1056 + 10);
    assert_true(slow.count > 100);
    /* Offers ran ahead by up to half a term (appended, not sent): what was sent is what the slow one allowed. */
    assert_true(published >= fast.count);
}

static void test_multicast_max_flow_control(void **state)
{
    (void)state;
    uint64_t published;
    tally_t fast;
    tally_t slow;
    run_multicast("max", &published, &fast, &slow);
    /* Paced by the fast receiver, which gets everything; the slow one is left behind. */
    assert_int_equal(fast.bad, 0);
    assert_int_equal(fast.count, published);
    assert_true(published > 5 * 1500);
    assert_true(slow.count < published / 2);
}

/* Delay, 2% loss and a bandwidth cap on the namespace's loopback (tc netem): every message arrives, in order. */
static void test_netem_delay_loss_rate(void **state)
{
    (void)state;
    if (system("tc qdisc add dev lo root netem delay 2ms loss 2% rate 200mbit 2>/dev/null") != 0)
    {
        print_message("tc netem is not available here (the kernel needs sch_netem); skipped\n");
        skip();
    }
    char ch[160];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d|linger=0", port);
    tp_bus_subscription_t *s;
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, ch, 12, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&p, bus, ch, 12, false));
    tally_t t = { 0 };
    static uint8_t buf[8192];
    uint64_t seq = 0;
    int64_t deadline = tp_clock_monotonic_ns() + 60 * TP_NS_PER_S;
    while (t.count < 3000 && tp_clock_monotonic_ns() < deadline)
    {
        if (seq < 3000 && tp_bus_offer(p, buf, test_msg_make(buf, 0, seq, 20 + (uint32_t)(seq * 37 % 8000))) > 0)
        {
            seq++;
            continue;
        }
        tp_bus_publication_do_work(p);
        if (tp_bus_poll(s, on_msg, &t, 64) == 0)
        {
            tp_bus_subscription_park(s, 200 * TP_NS_PER_US);
        }
    }
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
    assert_int_equal(system("tc qdisc del dev lo root"), 0);
    print_message("netem: %" PRIu64 " of 3000 delivered, %" PRIu64 " bad\n", t.count, t.bad);
    assert_int_equal(t.count, 3000);
    assert_int_equal(t.bad, 0);
}

static int group_setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "busudpnetns");
    tp_assert_ok(tp_bus_init(&bus, dir));
    port = 30000 + (int)(getpid() % 10000);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

int main(void)
{
    char why[256];
    if (tp_test_enter_multicast_netns(why, sizeof(why)) < 0)
    {
        printf("skipped: %s\n", why);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multicast_min_flow_control),
        cmocka_unit_test(test_multicast_max_flow_control),
        cmocka_unit_test(test_netem_delay_loss_rate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
