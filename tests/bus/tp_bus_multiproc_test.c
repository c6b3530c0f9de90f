/*
 * The IPC bus across real processes: W writers x R readers see everything exactly once and in order; a reader
 * lapped while asleep counts exactly what it missed; a writer killed with SIGKILL in the middle of a record never
 * leaks it and its image goes away; a writer frozen with SIGSTOP delays only itself; join time holds.
 * Every message carries a CRC32C that readers verify.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_internal.h"
#include "bus/tp_bus_ipc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tp_bus_test_util.h"
#include "tp_test_util.h"

#define STREAM 2002
#define MSG_BYTES 64

static char dir[512];

typedef struct pipe_pair
{
    int fds[2];
} pipe_pair_t;

static void pipe_open(pipe_pair_t *p)
{
    assert_int_equal(pipe(p->fds), 0);
}

static void pipe_send(pipe_pair_t *p, uint64_t v)
{
    if (write(p->fds[1], &v, sizeof(v)) != sizeof(v))
    {
        _exit(90);
    }
}

static uint64_t pipe_recv(pipe_pair_t *p)
{
    uint64_t v = 0;
    if (read(p->fds[0], &v, sizeof(v)) != sizeof(v))
    {
        return UINT64_MAX;
    }
    return v;
}

typedef struct tally
{
    uint64_t count[4];
    uint64_t next[4];
    uint64_t bad;
    uint64_t out_of_order;
} tally_t;

static void on_msg(void *clientd, const uint8_t *buf, size_t len, const tp_bus_header_t *h)
{
    tally_t *t = clientd;
    test_msg_t m;
    if (!test_msg_check(buf, len, &m) || m.writer >= 4 || h->stream_id != STREAM)
    {
        t->bad++;
        return;
    }
    if (m.seq != t->next[m.writer])
    {
        t->out_of_order++;
    }
    t->next[m.writer] = m.seq + 1;
    t->count[m.writer]++;
}

static tp_bus_t *child_bus(void)
{
    tp_bus_t *b = NULL;
    if (tp_bus_init(&b, dir) < 0)
    {
        fprintf(stderr, "child: %s\n", tp_errmsg());
        _exit(91);
    }
    return b;
}

static void write_messages(tp_bus_publication_t *p, uint32_t writer, uint64_t from, uint64_t to, int pause_every)
{
    uint8_t buf[MSG_BYTES];
    for (uint64_t i = from; i < to; i++)
    {
        test_msg_make(buf, writer, i, MSG_BYTES);
        while (tp_bus_offer(p, buf, MSG_BYTES) < 0)
        {
        }
        if (pause_every > 0 && i % (uint64_t)pause_every == 0)
        {
            usleep(50);
        }
    }
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "busmp");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_test_remove_dir(dir);
    return 0;
}

static void wait_ok(pid_t pid)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    {
        print_error("child %d failed: status 0x%x\n", (int)pid, status);
        fail();
    }
}

/* --- W writers x R readers --- */

#define WR_WRITERS 2
#define WR_READERS 2
#define WR_MESSAGES 100000

static void test_writers_by_readers(void **state)
{
    (void)state;
    pipe_pair_t ready;
    pipe_pair_t go[WR_WRITERS];
    pipe_open(&ready);
    pid_t readers[WR_READERS];
    pid_t writers[WR_WRITERS];
    for (int r = 0; r < WR_READERS; r++)
    {
        if ((readers[r] = fork()) == 0)
        {
            tp_bus_t *b = child_bus();
            tp_bus_subscription_t *s;
            if (tp_bus_subscription_open(&s, b, "aeron:ipc?term-length=16m", STREAM, NULL, NULL, NULL) < 0)
            {
                _exit(92);
            }
            pipe_send(&ready, 1);
            tally_t t = { 0 };
            int64_t deadline = tp_clock_monotonic_ns() + 60 * 1000000000LL;
            while (t.count[0] + t.count[1] < (uint64_t)WR_WRITERS * WR_MESSAGES && tp_clock_monotonic_ns() < deadline)
            {
                tp_bus_poll(s, on_msg, &t, 256);
            }
            tp_bus_counters_t c;
            tp_bus_subscription_counters(s, &c);
            int ok = t.bad == 0 && t.out_of_order == 0 && c.lost_records == 0 && t.count[0] == WR_MESSAGES &&
                     t.count[1] == WR_MESSAGES;
            if (!ok)
            {
                fprintf(stderr, "reader %d: counts %llu/%llu bad %llu order %llu lost %llu\n", r,
                    (unsigned long long)t.count[0], (unsigned long long)t.count[1], (unsigned long long)t.bad,
                    (unsigned long long)t.out_of_order, (unsigned long long)c.lost_records);
            }
            _exit(ok ? 0 : 1);
        }
    }
    for (int r = 0; r < WR_READERS; r++)
    {
        assert_int_equal(pipe_recv(&ready), 1);
    }
    for (int w = 0; w < WR_WRITERS; w++)
    {
        pipe_open(&go[w]);
        if ((writers[w] = fork()) == 0)
        {
            tp_bus_t *b = child_bus();
            tp_bus_publication_t *p;
            if (tp_bus_publication_open(&p, b, "aeron:ipc?term-length=16m", STREAM, false) < 0)
            {
                _exit(93);
            }
            write_messages(p, (uint32_t)w, 0, WR_MESSAGES, 0);
            tp_bus_publication_close(p);
            _exit(0);
        }
    }
    for (int w = 0; w < WR_WRITERS; w++)
    {
        wait_ok(writers[w]);
    }
    for (int r = 0; r < WR_READERS; r++)
    {
        wait_ok(readers[r]);
    }
}

/* --- a reader asleep while the writer laps it --- */

static void test_sleeping_reader_counts_exact_loss(void **state)
{
    (void)state;
    pipe_pair_t to_writer;
    pipe_pair_t to_reader;
    pipe_open(&to_writer);
    pipe_open(&to_reader);
    tp_bus_t *b = child_bus();
    tp_bus_subscription_t *s;
    tp_assert_ok(tp_bus_subscription_open(&s, b, "aeron:ipc", STREAM, NULL, NULL, NULL));
    pid_t writer = fork();
    if (writer == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc?term-length=64k", STREAM, false) < 0)
        {
            _exit(93);
        }
        write_messages(p, 0, 0, 20000, 0); /* 20000 x 80 bytes through a 64 KiB ring: ~24 laps */
        pipe_send(&to_reader, 20000);
        pipe_recv(&to_writer);
        write_messages(p, 0, 20000, 20100, 0);
        pipe_send(&to_reader, 20100);
        pipe_recv(&to_writer);
        tp_bus_publication_close(p);
        _exit(0);
    }
    uint64_t written = pipe_recv(&to_reader);
    tally_t t = { 0 };
    while (tp_bus_poll(s, on_msg, &t, 256) > 0)
    {
    }
    tp_bus_counters_t c;
    tp_bus_subscription_counters(s, &c);
    print_message("lapped reader: received %llu, lost %llu of %llu\n", (unsigned long long)t.count[0],
        (unsigned long long)c.lost_records, (unsigned long long)written);
    assert_int_equal(t.bad, 0);
    assert_true(c.lost_records > 0);
    assert_int_equal(t.count[0] + c.lost_records, written);
    assert_int_equal(t.next[0], written); /* resumed at the newest */
    /* and resumes cleanly */
    pipe_send(&to_writer, 1);
    written = pipe_recv(&to_reader);
    while (tp_bus_poll(s, on_msg, &t, 256) > 0)
    {
    }
    tp_bus_subscription_counters(s, &c);
    assert_int_equal(t.count[0] + c.lost_records, written);
    assert_int_equal(t.next[0], written);
    pipe_send(&to_writer, 1);
    wait_ok(writer);
    tp_bus_subscription_close(s);
    tp_bus_close(b);
}

/* --- SIGKILL in the middle of writing a record --- */

static int dropped;

static void on_dropped(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)clientd;
    (void)stream_id;
    (void)session_id;
    dropped++;
}

static void test_killed_mid_record_is_never_delivered(void **state)
{
    (void)state;
    pipe_pair_t from_a;
    pipe_pair_t to_b;
    pipe_open(&from_a);
    pipe_open(&to_b);
    dropped = 0;
    tp_bus_t *b = child_bus();
    tp_bus_subscription_t *s;
    tp_assert_ok(tp_bus_subscription_open(&s, b, "aeron:ipc", STREAM, NULL, on_dropped, NULL));
    pid_t a = fork();
    if (a == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc", STREAM, false) < 0)
        {
            _exit(93);
        }
        write_messages(p, 0, 0, 1000, 0);
        tp_bus_claim_t claim;
        if (tp_bus_try_claim(p, MSG_BYTES, &claim) < 0)
        {
            _exit(94);
        }
        /* Half a valid-looking message, then death before the commit. */
        uint8_t full[MSG_BYTES];
        test_msg_make(full, 0, 1000, MSG_BYTES);
        memcpy(claim.buffer, full, MSG_BYTES / 2);
        pipe_send(&from_a, 1);
        pause();
        _exit(95);
    }
    pid_t bpid = fork();
    if (bpid == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc", STREAM, false) < 0)
        {
            _exit(93);
        }
        pipe_recv(&to_b);
        write_messages(p, 1, 0, 2000, 0);
        tp_bus_publication_close(p);
        _exit(0);
    }
    assert_int_equal(pipe_recv(&from_a), 1);
    kill(a, SIGKILL);
    int status;
    waitpid(a, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    pipe_send(&to_b, 1);
    tally_t t = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + 30 * 1000000000LL;
    while ((t.count[1] < 2000 || dropped < 1) && tp_clock_monotonic_ns() < deadline)
    {
        tp_bus_poll(s, on_msg, &t, 256);
    }
    wait_ok(bpid);
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.out_of_order, 0);
    assert_int_equal(t.count[0], 1000); /* everything A committed, and not its half-written record */
    assert_int_equal(t.count[1], 2000); /* the other publisher is unaffected */
    assert_true(dropped >= 1);          /* A's image went away once drained and its pid was gone */
    tp_bus_subscription_close(s);
    tp_bus_close(b);
}

/* --- SIGSTOP: a frozen writer delays only itself --- */

#define STOP_MESSAGES 50000

static void test_stopped_writer_delays_only_itself(void **state)
{
    (void)state;
    pipe_pair_t from_a;
    pipe_pair_t to_b;
    pipe_open(&from_a);
    pipe_open(&to_b);
    tp_bus_t *b = child_bus();
    tp_bus_subscription_t *s;
    tp_assert_ok(tp_bus_subscription_open(&s, b, "aeron:ipc?term-length=16m", STREAM, NULL, NULL, NULL));
    pid_t a = fork();
    if (a == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc?term-length=16m", STREAM, false) < 0)
        {
            _exit(93);
        }
        write_messages(p, 0, 0, 1000, 0);
        pipe_send(&from_a, 1);
        write_messages(p, 0, 1000, STOP_MESSAGES, 100); /* slower, so the parent freezes it mid-way */
        tp_bus_publication_close(p);
        _exit(0);
    }
    pid_t bpid = fork();
    if (bpid == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc?term-length=16m", STREAM, false) < 0)
        {
            _exit(93);
        }
        pipe_recv(&to_b);
        write_messages(p, 1, 0, STOP_MESSAGES, 0);
        tp_bus_publication_close(p);
        _exit(0);
    }
    assert_int_equal(pipe_recv(&from_a), 1);
    kill(a, SIGSTOP);
    tally_t t = { 0 };
    while (tp_bus_poll(s, on_msg, &t, 256) > 0)
    {
    }
    uint64_t a_frozen_at = t.count[0];
    pipe_send(&to_b, 1);
    int64_t deadline = tp_clock_monotonic_ns() + 60 * 1000000000LL;
    while (t.count[1] < STOP_MESSAGES && tp_clock_monotonic_ns() < deadline)
    {
        tp_bus_poll(s, on_msg, &t, 256);
    }
    /* B delivered everything while A stayed frozen. */
    assert_int_equal(t.count[1], STOP_MESSAGES);
    assert_int_equal(t.count[0], a_frozen_at);
    assert_true(a_frozen_at < STOP_MESSAGES);
    kill(a, SIGCONT);
    deadline = tp_clock_monotonic_ns() + 60 * 1000000000LL;
    while (t.count[0] < STOP_MESSAGES && tp_clock_monotonic_ns() < deadline)
    {
        tp_bus_poll(s, on_msg, &t, 256);
    }
    wait_ok(a);
    wait_ok(bpid);
    assert_int_equal(t.count[0], STOP_MESSAGES); /* after SIGCONT, the rest in order */
    assert_int_equal(t.bad, 0);
    assert_int_equal(t.out_of_order, 0);
    tp_bus_subscription_close(s);
    tp_bus_close(b);
}

/* --- join time across processes --- */

static void test_never_sees_messages_from_before_it_joined(void **state)
{
    (void)state;
    pipe_pair_t from_w;
    pipe_pair_t to_w;
    pipe_open(&from_w);
    pipe_open(&to_w);
    tp_bus_t *b = child_bus();
    tp_bus_subscription_t *early;
    tp_assert_ok(tp_bus_subscription_open(&early, b, "aeron:ipc", STREAM, NULL, NULL, NULL));
    pid_t w = fork();
    if (w == 0)
    {
        tp_bus_t *wb = child_bus();
        tp_bus_publication_t *p;
        if (tp_bus_publication_open(&p, wb, "aeron:ipc", STREAM, false) < 0)
        {
            _exit(93);
        }
        write_messages(p, 0, 0, 100, 0);
        pipe_send(&from_w, 1);
        pipe_recv(&to_w);
        write_messages(p, 0, 100, 200, 0);
        pipe_send(&from_w, 2);
        pipe_recv(&to_w);
        tp_bus_publication_close(p);
        _exit(0);
    }
    assert_int_equal(pipe_recv(&from_w), 1);
    tp_bus_subscription_t *late;
    tp_assert_ok(tp_bus_subscription_open(&late, b, "aeron:ipc", STREAM, NULL, NULL, NULL));
    pipe_send(&to_w, 1);
    assert_int_equal(pipe_recv(&from_w), 2);
    tally_t t = { 0 };
    t.next[0] = 100;
    while (tp_bus_poll(late, on_msg, &t, 256) > 0)
    {
    }
    assert_int_equal(t.count[0], 100);
    assert_int_equal(t.next[0], 200);
    assert_int_equal(t.out_of_order, 0); /* the first one seen was seq 100 */
    tally_t e = { 0 };
    while (tp_bus_poll(early, on_msg, &e, 256) > 0)
    {
    }
    assert_int_equal(e.count[0], 200);
    pipe_send(&to_w, 1);
    wait_ok(w);
    tp_bus_subscription_close(late);
    tp_bus_subscription_close(early);
    tp_bus_close(b);
}

static void test_subscriber_killed_while_parked_stops_costing_wakes(void **state)
{
    (void)state;
    /* A subscriber process parks on the futex and is killed there. Nobody else subscribes, so only the
     * publisher can notice: within TP_BUS_WAKES_PER_REAP messages it takes the dead waiter out, after which
     * offers make no system call and the stream reads as not connected. */
    tp_bus_t *b = child_bus();
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_publication_open(&p, b, "aeron:ipc", STREAM, false));
    pipe_pair_t parked;
    pipe_open(&parked);
    pid_t child = fork();
    if (child == 0)
    {
        tp_bus_t *cb = child_bus();
        tp_bus_subscription_t *s;
        if (tp_bus_subscription_open(&s, cb, "aeron:ipc", STREAM, NULL, NULL, NULL) < 0)
        {
            _exit(93);
        }
        pipe_send(&parked, 1);
        for (;;)
        {
            tp_bus_subscription_park(s, 60 * TP_NS_PER_S);
        }
    }
    assert_int_equal(pipe_recv(&parked), 1);
    tp_bus_registry_t *reg = p->registry.reg;
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (__atomic_load_n(&reg->waiters, __ATOMIC_ACQUIRE) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(1000);
    }
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    assert_int_equal(__atomic_load_n(&reg->waiters, __ATOMIC_ACQUIRE), 1); /* the dead waiter is still counted */
    uint8_t msg[MSG_BYTES];
    for (uint64_t i = 0; i < TP_BUS_WAKES_PER_REAP + 1; i++)
    {
        test_msg_make(msg, 0, i, MSG_BYTES);
        if (tp_bus_offer(p, msg, MSG_BYTES) == TP_BUS_NOT_CONNECTED)
        {
            break; /* reaped: the dead subscriber is gone too */
        }
    }
    assert_int_equal(__atomic_load_n(&reg->waiters, __ATOMIC_ACQUIRE), 0);
    assert_false(tp_bus_publication_is_connected(p));
    tp_bus_publication_close(p);
    tp_bus_close(b);
}

static void count_one(void *clientd, const uint8_t *buf, size_t len, const tp_bus_header_t *h)
{
    (void)buf;
    (void)len;
    (void)h;
    (*(uint64_t *)clientd)++;
}

/* One side of a ping-pong where each side parks (2 s) whenever the other's message is not there yet: returns how
 * many parks timed out although a message was waiting (a missed wake), or -1 if it did not finish. The publication
 * is opened with pub_flags; is_broadcast subscribes skipping requests. */
static int64_t ping_pong_side(tp_bus_t *b, int32_t out_stream, int32_t in_stream, uint64_t rounds, bool serves,
    uint32_t pub_flags, bool is_broadcast)
{
    tp_bus_publication_t *p = NULL;
    tp_bus_subscription_t *s = NULL;
    int rc = is_broadcast ? tp_bus_subscription_open_broadcast(&s, b, "aeron:ipc", in_stream, NULL, NULL, NULL)
                          : tp_bus_subscription_open(&s, b, "aeron:ipc", in_stream, NULL, NULL, NULL);
    if (rc < 0 || tp_bus_publication_open_with(&p, b, "aeron:ipc", out_stream, pub_flags) < 0)
    {
        return -1;
    }
    int64_t missed = 0;
    uint8_t msg[32] = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + 40 * TP_NS_PER_S;
    for (uint64_t i = 0; i < rounds; i++)
    {
        if (!serves)
        {
            while (tp_bus_offer(p, msg, sizeof(msg)) < 0) /* until the other side has subscribed */
            {
                if (tp_clock_monotonic_ns() > deadline)
                {
                    return -1;
                }
                usleep(100);
            }
        }
        uint64_t got = 0;
        while (got == 0)
        {
            if (tp_bus_poll(s, count_one, &got, 1) > 0)
            {
                break;
            }
            if (tp_bus_subscription_park(s, 2 * TP_NS_PER_S) == 0 && tp_bus_poll(s, count_one, &got, 1) > 0)
            {
                missed++; /* slept its full timeout on a message that was there */
            }
            if (tp_clock_monotonic_ns() > deadline)
            {
                fprintf(stderr, "%s: stuck in round %llu of %llu (%lld missed wakes so far)\n", serves ? "server" : "client",
                    (unsigned long long)i, (unsigned long long)rounds, (long long)missed);
                return -1;
            }
        }
        if (serves)
        {
            while (tp_bus_offer(p, msg, sizeof(msg)) < 0)
            {
                usleep(100);
            }
        }
    }
    tp_bus_publication_close(p);
    tp_bus_subscription_close(s);
    return missed;
}

/* A parked subscriber always wakes on the next message, with publishers that skip the per-record fence (this
 * process and its child registered for the kernel's asymmetric barrier: the parking side issues it): 3000 round
 * trips in which every receive parks, none of them sleeping through a message. */
static void parked_ping_pong(uint32_t server_flags, uint32_t client_flags, bool client_broadcast)
{
    pid_t child = fork();
    if (child == 0)
    {
        int64_t missed = ping_pong_side(child_bus(), STREAM + 11, STREAM + 10, 3000, true, server_flags, false);
        _exit(missed == 0 ? 0 : missed < 0 ? 90 : 91);
    }
    tp_bus_t *b = child_bus();
    int64_t missed = ping_pong_side(b, STREAM + 10, STREAM + 11, 3000, false, client_flags, client_broadcast);
    int status = 0;
    waitpid(child, &status, 0);
    tp_bus_close(b);
    assert_int_equal(missed, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_parked_ping_pong_never_misses_a_wake(void **state)
{
    (void)state;
    parked_ping_pong(0, 0, false);
}

/* The same with fenced publications only, as on a driver's control stream: no stream has an asymmetric publisher,
 * so the parking side makes a fence and no system-wide barrier; and across the lanes, as a driver and its client
 * do: the client's requests on the request lane, which the server's subscription reads, the server's answers on
 * the broadcast lane, which the client's broadcast-only subscription reads (waking on a bitset of its own). */
static void test_parked_ping_pong_fenced_across_lanes_never_misses_a_wake(void **state)
{
    (void)state;
    parked_ping_pong(TP_BUS_PUB_SERVICE, TP_BUS_PUB_REQUESTS, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers_by_readers),
        cmocka_unit_test(test_sleeping_reader_counts_exact_loss),
        cmocka_unit_test(test_killed_mid_record_is_never_delivered),
        cmocka_unit_test(test_stopped_writer_delays_only_itself),
        cmocka_unit_test(test_never_sees_messages_from_before_it_joined),
        cmocka_unit_test(test_subscriber_killed_while_parked_stops_costing_wakes),
        cmocka_unit_test(test_parked_ping_pong_never_misses_a_wake),
        cmocka_unit_test(test_parked_ping_pong_fenced_across_lanes_never_misses_a_wake),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
