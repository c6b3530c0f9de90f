/*
 * The IPC bus in one process: delivery and order, join time, overrun accounting (also for a reader lapped onto
 * zeros), records found without the writer's tail, claims, image lifecycle, futex parking, incompatible files, and
 * zero allocations on offer/poll.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_ipc.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tp_bus_test_util.h"
#include "tp_malloc_count.h"
#include "tp_test_util.h"

#define STREAM 1001

static char dir[512];
static tp_bus_t *bus;

typedef struct received
{
    uint64_t count;
    uint64_t bad;
    uint64_t last_seq[8];
    uint64_t out_of_order;
    int32_t session;
    int64_t last_position;
    uint64_t first_seq;
} received_t;

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    received_t *r = clientd;
    test_msg_t m;
    if (!test_msg_check(buffer, length, &m) || m.writer >= 8 || header->stream_id != STREAM)
    {
        r->bad++;
        return;
    }
    if (r->count == 0)
    {
        r->first_seq = m.seq;
    }
    else if (m.seq <= r->last_seq[m.writer] && !(r->last_seq[m.writer] == 0 && m.seq == 0))
    {
        r->out_of_order++;
    }
    if (header->position <= r->last_position && header->session_id == r->session)
    {
        r->out_of_order++;
    }
    r->last_seq[m.writer] = m.seq;
    r->session = header->session_id;
    r->last_position = header->position;
    r->count++;
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "bus");
    tp_assert_ok(tp_bus_init(&bus, dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

static int poll_all(tp_bus_subscription_t *sub, received_t *r)
{
    int total = 0;
    int n;
    while ((n = tp_bus_poll(sub, on_message, r, 64)) > 0)
    {
        total += n;
    }
    return total;
}

static void test_delivery_in_order(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64k", STREAM, false));
    uint8_t buf[512];
    /* Nobody listens yet: nothing is written. */
    assert_int_equal(tp_bus_offer(pub, buf, test_msg_make(buf, 0, 0, 32)), TP_BUS_NOT_CONNECTED);
    assert_false(tp_bus_publication_is_connected(pub));
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    assert_true(tp_bus_publication_is_connected(pub));
    received_t r = { 0 };
    int64_t last = 0;
    /* Many laps of a 64 KiB ring with a reader that keeps up, sizes varied to exercise padding. */
    for (uint64_t i = 0; i < 20000; i++)
    {
        uint32_t len = 24 + (uint32_t)((i * 37) % 400);
        int64_t pos = tp_bus_offer(pub, buf, test_msg_make(buf, 1, i, len));
        assert_true(pos > last);
        last = pos;
        if (i % 50 == 49)
        {
            poll_all(sub, &r);
        }
    }
    poll_all(sub, &r);
    assert_int_equal(r.count, 20000);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.out_of_order, 0);
    assert_int_equal(r.session, tp_bus_publication_session_id(pub));
    tp_bus_counters_t c;
    tp_bus_subscription_counters(sub, &c);
    assert_int_equal(c.lost_records, 0);
    assert_int_equal(c.images_active, 1);
    /* too long for this ring: 64 KiB / 8 minus the record header */
    assert_int_equal(tp_bus_publication_max_message_length(pub), 65536 / 8 - 16);
    assert_int_equal(tp_bus_offer(pub, buf, 65536 / 8), TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED);
    tp_bus_subscription_close(sub);
    assert_int_equal(tp_bus_offer(pub, buf, 32), TP_BUS_NOT_CONNECTED);
    tp_bus_publication_close(pub);
}

static void test_join_time(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *early;
    tp_bus_subscription_t *late;
    uint8_t buf[64];
    tp_assert_ok(tp_bus_subscription_open(&early, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc", STREAM, false));
    for (uint64_t i = 0; i < 10; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 0, i, 40)) > 0);
    }
    /* The late subscriber joins an image that exists: it starts at its tail. */
    tp_assert_ok(tp_bus_subscription_open(&late, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    for (uint64_t i = 10; i < 15; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 0, i, 40)) > 0);
    }
    received_t re = { 0 };
    received_t rl = { 0 };
    poll_all(early, &re);
    poll_all(late, &rl);
    /* The early one joined before the image registered, so it reads it from the start. */
    assert_int_equal(re.count, 15);
    assert_int_equal(re.first_seq, 0);
    assert_int_equal(rl.count, 5);
    assert_int_equal(rl.first_seq, 10);
    tp_bus_subscription_close(late);
    tp_bus_subscription_close(early);
    tp_bus_publication_close(pub);
}

static void test_overrun_counts_exactly_what_was_lost(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64k", STREAM, false));
    received_t r = { 0 };
    uint8_t buf[256];
    tp_assert_ok(tp_bus_offer(pub, buf, test_msg_make(buf, 2, 0, 100)) > 0 ? 0 : -1);
    poll_all(sub, &r); /* the reader is attached and current */
    const uint64_t written = 10000;
    for (uint64_t i = 1; i <= written; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 2, i, 100)) > 0);
    }
    poll_all(sub, &r);
    tp_bus_counters_t c;
    tp_bus_subscription_counters(sub, &c);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.out_of_order, 0);
    assert_true(c.lost_records > 0);
    assert_int_equal(r.count + c.lost_records, written + 1); /* every record is either read or counted lost */
    assert_int_equal(r.last_seq[2], written);                /* resumed and read up to the newest */
    /* and it keeps working afterwards */
    assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 2, written + 1, 100)) > 0);
    assert_int_equal(poll_all(sub, &r), 1);
    tp_bus_subscription_close(sub);
    tp_bus_publication_close(pub);
}

static void on_any(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)buffer;
    (void)length;
    (void)header;
    (*(uint64_t *)clientd)++;
}

/* A reader lapped so that its cursor sits inside the zero payload of a newer record finds a zero length there, as
 * if nothing had been written yet: an empty poll also reads the writer's intent, sees the lap and resumes at the
 * newest record, counting what it lost, instead of waiting on those zeros for ever. */
static void test_lapped_reader_resumes_from_zeros(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64k", STREAM, false));
    uint64_t read = 0;
    static uint8_t zeros[8000];
    assert_true(tp_bus_offer(pub, zeros, 112) > 0); /* a 128-byte record: the reader's cursor is at offset 128 */
    while (tp_bus_poll(sub, on_any, &read, 64) > 0)
    {
    }
    assert_int_equal(read, 1);
    /* 8016-byte records from 128 on: the eighth does not fit and is padded to the end, so every later lap has a
     * record at offset 0 whose zero payload covers offset 128. */
    const uint64_t written = 40;
    for (uint64_t i = 0; i < written; i++)
    {
        assert_true(tp_bus_offer(pub, zeros, sizeof(zeros)) > 0);
    }
    while (tp_bus_poll(sub, on_any, &read, 64) > 0)
    {
    }
    tp_bus_counters_t c;
    tp_bus_subscription_counters(sub, &c);
    assert_true(read >= 2);                            /* resumed: at least the newest record */
    assert_int_equal(read + c.lost_records, written + 1); /* every record read or counted lost */
    tp_bus_subscription_close(sub);
    tp_bus_publication_close(pub);
}

/* Readers find records from the records themselves (layout version 4): the writer's tail, which a reader polling it
 * pulled across cores once per record, is not on the read path. A log whose tail says nothing was written still
 * delivers every record. */
static void test_reader_finds_records_without_the_tail(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64k", STREAM, false));
    char path[1024];
    snprintf(path, sizeof(path), "%s/%d/%08x.log", dir, STREAM, (uint32_t)tp_bus_publication_session_id(pub));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t buf[256];
    for (uint64_t i = 0; i < 100; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 1, i, 40)) > 0);
    }
    uint64_t zero = 0;
    assert_int_equal(pwrite(fd, &zero, sizeof(zero), offsetof(tp_bus_log_header_t, tail)), sizeof(zero));
    close(fd);
    received_t r = { 0 };
    assert_int_equal(poll_all(sub, &r), 100);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.out_of_order, 0);
    assert_int_equal(r.last_seq[1], 99);
    tp_bus_subscription_close(sub);
    tp_bus_publication_close(pub);
}

static void test_claim_commit_abort(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64k", STREAM, false));
    tp_bus_claim_t claim;
    uint8_t buf[128];
    received_t r = { 0 };
    for (uint64_t i = 0; i < 3000; i++)
    {
        int64_t pos = tp_bus_try_claim(pub, 64, &claim);
        assert_true(pos > 0);
        assert_int_equal(tp_bus_offer(pub, buf, 16), TP_BUS_ADMIN_ACTION); /* one claim at a time */
        test_msg_make(claim.buffer, 3, i, 64);
        if (i % 3 == 2)
        {
            tp_bus_abort(pub, &claim); /* never delivered */
        }
        else
        {
            assert_int_equal(tp_bus_commit(pub, &claim), pos);
        }
        if (i % 100 == 99)
        {
            poll_all(sub, &r);
        }
    }
    poll_all(sub, &r);
    assert_int_equal(r.count, 2000);
    assert_int_equal(r.bad, 0);
    tp_bus_counters_t c;
    tp_bus_subscription_counters(sub, &c);
    assert_int_equal(c.lost_records, 0); /* aborted records are not sequence gaps */
    assert_int_equal(tp_bus_commit(pub, &claim), TP_BUS_ADMIN_ACTION);
    tp_bus_subscription_close(sub);
    tp_bus_publication_close(pub);
}

static int available;
static int unavailable;

static void on_available(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)clientd;
    (void)session_id;
    assert_int_equal(stream_id, STREAM);
    available++;
}

static void on_unavailable(void *clientd, int32_t stream_id, int32_t session_id)
{
    (void)clientd;
    (void)stream_id;
    (void)session_id;
    unavailable++;
}

static void test_image_lifecycle(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    available = unavailable = 0;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, on_available, on_unavailable, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc", STREAM, false));
    uint8_t buf[64];
    for (uint64_t i = 0; i < 5; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 0, i, 48)) > 0);
    }
    tp_bus_publication_close(pub); /* closes with 5 unread messages */
    received_t r = { 0 };
    poll_all(sub, &r);
    assert_int_equal(available, 1);
    assert_int_equal(r.count, 5); /* drained first */
    tp_bus_poll(sub, on_message, &r, 10);
    assert_int_equal(unavailable, 1); /* then dropped */
    for (int i = 0; i < 10; i++)
    {
        tp_bus_poll(sub, on_message, &r, 10); /* the closed image lingers in the registry: never rejoined */
    }
    assert_int_equal(r.count, 5);
    assert_int_equal(available, 1);
    tp_bus_counters_t c;
    tp_bus_subscription_counters(sub, &c);
    assert_int_equal(c.images_active, 0);
    assert_int_equal(c.images_dropped, 1);
    tp_bus_subscription_close(sub);
}

static void test_dead_publisher_is_dropped_once_drained(void **state)
{
    (void)state;
    tp_bus_subscription_t *sub;
    available = unavailable = 0;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, on_available, on_unavailable, NULL));
    pid_t child = fork();
    if (child == 0)
    {
        tp_bus_t *b;
        tp_bus_publication_t *p;
        uint8_t buf[64];
        if (tp_bus_init(&b, dir) < 0 || tp_bus_publication_open(&p, b, "aeron:ipc", STREAM, false) < 0)
        {
            _exit(1);
        }
        for (uint64_t i = 0; i < 7; i++)
        {
            tp_bus_offer(p, buf, test_msg_make(buf, 4, i, 48));
        }
        _exit(0); /* dies without closing anything */
    }
    int status;
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    received_t r = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + 10 * 1000000000LL;
    while (unavailable == 0 && tp_clock_monotonic_ns() < deadline)
    {
        tp_bus_poll(sub, on_message, &r, 16);
    }
    assert_int_equal(r.count, 7);
    assert_int_equal(available, 1);
    assert_int_equal(unavailable, 1);
    tp_bus_subscription_close(sub);
}

static tp_bus_subscription_t *park_sub;
static int park_result;

static void *parker(void *arg)
{
    (void)arg;
    park_result = tp_bus_subscription_park(park_sub, 30 * 1000000000LL);
    return NULL;
}

static void test_park_wakes_on_next_message(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_assert_ok(tp_bus_subscription_open(&park_sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc", STREAM, false));
    received_t r = { 0 };
    poll_all(park_sub, &r);
    /* Nothing to read: a short park times out. */
    assert_int_equal(tp_bus_subscription_park(park_sub, 1000000), 0);
    pthread_t t;
    park_result = -1;
    assert_int_equal(pthread_create(&t, NULL, parker, NULL), 0);
    /* Wait until the parker has registered as a waiter, then publish once. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/%d/registry", dir, STREAM);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    tp_bus_registry_t reg_view;
    for (int i = 0; i < 100000; i++)
    {
        assert_int_equal(pread(fd, &reg_view, sizeof(reg_view), 0), sizeof(reg_view));
        if (reg_view.waiters > 0)
        {
            break;
        }
        usleep(100);
    }
    close(fd);
    assert_true(reg_view.waiters > 0);
    uint8_t buf[64];
    assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 0, 1, 40)) > 0);
    pthread_join(t, NULL);
    assert_int_equal(park_result, 1); /* woken, not timed out (the timeout is 30 s) */
    assert_int_equal(poll_all(park_sub, &r), 1);
    tp_bus_subscription_close(park_sub);
    tp_bus_publication_close(pub);
}

typedef struct threaded
{
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    received_t r;
    uint64_t target;
} threaded_t;

static void *threaded_reader(void *arg)
{
    threaded_t *t = arg;
    int64_t deadline = tp_clock_monotonic_ns() + 60 * 1000000000LL;
    while (t->r.count < t->target && tp_clock_monotonic_ns() < deadline)
    {
        tp_bus_poll(t->sub, on_message, &t->r, 64);
    }
    return NULL;
}

typedef struct eager_writer
{
    tp_bus_publication_t *pub;
    uint64_t first_accepted; /* the first message the publication took (it was connected): UINT64_MAX none yet */
    int stop;
} eager_writer_t;

/* Offers 0, 1, 2, ... until a subscription exists, then 100 more (far less than the term holds: nothing laps). */
static void *eager_write(void *arg)
{
    eager_writer_t *w = arg;
    uint64_t accepted = 0;
    for (uint64_t n = 0; accepted < 100 && !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); n++)
    {
        uint64_t v = n;
        if (tp_bus_offer(w->pub, &v, sizeof(v)) >= 0 && accepted++ == 0)
        {
            __atomic_store_n(&w->first_accepted, n, __ATOMIC_RELEASE);
        }
    }
    return NULL;
}

static void on_first(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    uint64_t *first = clientd;
    if (*first == UINT64_MAX && length == sizeof(uint64_t))
    {
        memcpy(first, buffer, sizeof(uint64_t));
    }
}

/* A publication is connected once a subscription exists, and from then on the subscription gets what it offers:
 * a writer offering as fast as it can while a subscription opens sees its first accepted message arrive (200
 * times over; a subscription that counted itself before it joined lost the messages offered in between). */
static void test_connected_means_delivered(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++)
    {
        int32_t stream = STREAM + 100 + round;
        eager_writer_t w = { .first_accepted = UINT64_MAX };
        tp_assert_ok(tp_bus_publication_open(&w.pub, bus, "aeron:ipc?term-length=64k", stream, false));
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, eager_write, &w), 0);
        tp_bus_subscription_t *sub = NULL;
        tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc?term-length=64k", stream, NULL, NULL, NULL));
        int64_t deadline = tp_clock_monotonic_ns() + 10 * 1000000000LL;
        while (__atomic_load_n(&w.first_accepted, __ATOMIC_ACQUIRE) == UINT64_MAX)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
        }
        pthread_join(t, NULL);
        uint64_t first = UINT64_MAX;
        while (tp_bus_poll(sub, on_first, &first, 1) > 0 && first == UINT64_MAX)
        {
        }
        if (first != w.first_accepted)
        {
            fail_msg("round %d: the writer was connected at message %llu, the subscription's first is %llu", round,
                (unsigned long long)w.first_accepted, (unsigned long long)first);
        }
        tp_bus_subscription_close(sub);
        tp_bus_publication_close(w.pub);
    }
}

static void test_threads_share_the_bus(void **state)
{
    (void)state;
    /* One writer thread, two reader threads: the TSan build checks the log protocol's atomics. */
    threaded_t readers[2];
    memset(readers, 0, sizeof(readers));
    for (int i = 0; i < 2; i++)
    {
        readers[i].target = 50000;
        tp_assert_ok(tp_bus_subscription_open(&readers[i].sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    }
    tp_bus_publication_t *pub;
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=8m", STREAM, false));
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
    {
        assert_int_equal(pthread_create(&t[i], NULL, threaded_reader, &readers[i]), 0);
    }
    uint8_t buf[128];
    for (uint64_t i = 0; i < 50000; i++)
    {
        assert_true(tp_bus_offer(pub, buf, test_msg_make(buf, 5, i, 40 + (uint32_t)(i % 64))) > 0);
    }
    for (int i = 0; i < 2; i++)
    {
        pthread_join(t[i], NULL);
        assert_int_equal(readers[i].r.count, 50000);
        assert_int_equal(readers[i].r.bad, 0);
        assert_int_equal(readers[i].r.out_of_order, 0);
        tp_bus_subscription_close(readers[i].sub);
    }
    tp_bus_publication_close(pub);
}

static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc", STREAM, false));
    uint8_t buf[64];
    received_t r = { 0 };
    test_msg_make(buf, 0, 0, 48);
    tp_bus_offer(pub, buf, 48);
    poll_all(sub, &r);
    uint64_t before = tp_malloc_count();
    uint64_t before_tp = tp_alloc_count();
    for (int i = 0; i < 10000; i++)
    {
        tp_bus_offer(pub, buf, 48);
        tp_bus_poll(sub, on_message, &r, 10);
        tp_bus_claim_t claim;
        tp_bus_try_claim(pub, 32, &claim);
        memset(claim.buffer, 0, 32);
        tp_bus_commit(pub, &claim);
        tp_bus_poll(sub, on_message, &r, 10);
    }
    assert_int_equal(tp_alloc_count(), before_tp);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count(), before);
    }
    tp_bus_subscription_close(sub);
    tp_bus_publication_close(pub);
}

static void test_modes(void **state)
{
    (void)state;
    char shared[1024];
    snprintf(shared, sizeof(shared), "%s/group/bus", dir);
    tp_bus_t *b;
    tp_assert_ok(tp_bus_init_with_modes(&b, shared, 02770, 0660));
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    tp_assert_ok(tp_bus_subscription_open(&sub, b, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&pub, b, "aeron:ipc", STREAM, false));
    struct stat st;
    char path[1200];
    snprintf(path, sizeof(path), "%s/%d", shared, STREAM);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 02770);
    snprintf(path, sizeof(path), "%s/%d/registry", shared, STREAM);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    snprintf(path, sizeof(path), "%s/%d/%08x.log", shared, STREAM, (uint32_t)tp_bus_publication_session_id(pub));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    tp_bus_close(b);
    /* defaults: private */
    snprintf(path, sizeof(path), "%s/%d", dir, STREAM);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    tp_assert_fails_with(tp_bus_init_with_modes(&b, shared, 0070, 0600), "owner needs");
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* A client's bus (default modes) joins a group-shared directory on its terms (setgid group dirs, 0660 files), and
 * stays private (0700, 0600) everywhere else, /dev/shm-like sticky world-writable parents included. */
static void test_default_bus_joins_only_shared_directories(void **state)
{
    (void)state;
    char sticky[1024], shared[1024], path[1400];
    snprintf(sticky, sizeof(sticky), "%s/sticky", dir);
    snprintf(shared, sizeof(shared), "%s/shared", dir);
    assert_int_equal(mkdir(sticky, 0700), 0);
    assert_int_equal(chmod(sticky, 01777), 0);
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chmod(shared, 02770), 0);
    const struct
    {
        const char *parent;
        mode_t dir_mode;
        mode_t file_mode;
    } cases[] = { { sticky, 0700, 0600 }, { shared, 02770, 0660 } };
    for (size_t i = 0; i < 2; i++)
    {
        char bus_dir[1200];
        snprintf(bus_dir, sizeof(bus_dir), "%s/user/bus", cases[i].parent);
        tp_bus_t *b;
        tp_assert_ok(tp_bus_init(&b, bus_dir));
        tp_bus_publication_t *pub;
        tp_assert_ok(tp_bus_publication_open(&pub, b, "aeron:ipc", STREAM, false));
        snprintf(path, sizeof(path), "%s/user", cases[i].parent);
        assert_int_equal(mode_of(path), cases[i].dir_mode);
        snprintf(path, sizeof(path), "%s/%d", bus_dir, STREAM);
        assert_int_equal(mode_of(path), cases[i].dir_mode);
        snprintf(path, sizeof(path), "%s/%d/%08x.log", bus_dir, STREAM, (uint32_t)tp_bus_publication_session_id(pub));
        assert_int_equal(mode_of(path), cases[i].file_mode);
        tp_bus_publication_close(pub);
        tp_bus_close(b);
    }
}

static void test_incompatible_files_are_refused(void **state)
{
    (void)state;
    /* A registry of another layout version: refused with a message that says what to do. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/%d", dir, 4242);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%d/registry", dir, 4242);
    int fd = open(path, O_CREAT | O_RDWR, 0600);
    assert_true(fd >= 0);
    tp_bus_registry_t reg;
    memset(&reg, 0, sizeof(reg));
    reg.magic = TP_BUS_REGISTRY_MAGIC;
    reg.version = 99;
    reg.stream_id = 4242;
    assert_int_equal(write(fd, &reg, sizeof(reg)), sizeof(reg));
    close(fd);
    tp_bus_subscription_t *sub;
    tp_assert_fails_with(tp_bus_subscription_open(&sub, bus, "aeron:ipc", 4242, NULL, NULL, NULL),
        "layout version 99");
    /* Garbage of the wrong size */
    fd = open(path, O_TRUNC | O_RDWR);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);
    tp_assert_fails_with(tp_bus_subscription_open(&sub, bus, "aeron:ipc", 4242, NULL, NULL, NULL),
        "not a regular file of");
    tp_assert_fails_with(tp_bus_subscription_open(&sub, bus, "aeron:tcp", 1, NULL, NULL, NULL), "neither aeron:ipc");
    tp_bus_t *b2;
    tp_assert_fails_with(tp_bus_init(&b2, "relative/dir"), "absolute");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivery_in_order),
        cmocka_unit_test(test_join_time),
        cmocka_unit_test(test_overrun_counts_exactly_what_was_lost),
        cmocka_unit_test(test_lapped_reader_resumes_from_zeros),
        cmocka_unit_test(test_reader_finds_records_without_the_tail),
        cmocka_unit_test(test_claim_commit_abort),
        cmocka_unit_test(test_image_lifecycle),
        cmocka_unit_test(test_dead_publisher_is_dropped_once_drained),
        cmocka_unit_test(test_park_wakes_on_next_message),
        cmocka_unit_test(test_connected_means_delivered),
        cmocka_unit_test(test_threads_share_the_bus),
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_default_bus_joins_only_shared_directories),
        cmocka_unit_test(test_incompatible_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
