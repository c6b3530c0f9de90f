/*
 * Producers and consumers as separate processes around a `tp driver` process:
 *  - torn-read torture: a producer process overwrites a 4-slot ring as fast as it can while this process
 *    consumes; every accepted frame's checksum holds, and accepted + gaps + late = published;
 *  - a producer killed with SIGKILL in the middle of writing a frame: that frame is never accepted; the driver
 *    expires its lease, a new producer process attaches, and the consumer remaps and continues;
 *  - the driver killed with SIGKILL: producer and consumer notice (the superblock activity goes stale), drop their
 *    leases and mappings, and attach again by themselves once a driver runs again;
 *  - a consumer process killed: its per-consumer stream is closed; a metadata reader started later in another
 *    process sees the data source and its attributes, a deleted one gone;
 *  - a rate-limited consumer process on its own descriptor stream gets at most its rate; a slow one counts its drops;
 *    the QoS this process hears from both matches what each actually counted.
 */
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_metadata.h"
#include "tensorpool/tp_qos.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (10 * TP_NS_PER_S)
#define TORTURE_FRAMES 1000000u

static char dir[512];
static char bus[600];
static char shm[600];
static pid_t driver_pid;

static void write_config(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\nbus_dir = \"%s\"\ndescriptor_stream_id_range = \"31000-31009\"\n[shm]\nbase_dir = \"%s\"\n"
        "[policies]\nannounce_period_ms = 100\nlease_keepalive_interval_ms = 50\nlease_expiry_grace_intervals = 3\n"
        "[profiles.tiny]\nheader_nslots = 4\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"tiny\"\n",
        bus, shm, STREAM);
    fclose(f);
}

static char config[700];
static char status_file[700];

/* Start `tp driver` and wait until it wrote its status file. */
static void start_driver(void)
{
    unlink(status_file);
    driver_pid = fork();
    assert_true(driver_pid >= 0);
    if (driver_pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        setenv("TP_LOG_LEVEL", "30", 1);
        execl(TP_TOOL, TP_TOOL, "driver", config, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status_file, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(2000);
    }
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "client-proc");
    snprintf(bus, sizeof(bus), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    snprintf(status_file, sizeof(status_file), "%s/driver-1000.json", bus);
    write_config(config);
    start_driver();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(driver_pid, SIGTERM);
    int status;
    waitpid(driver_pid, &status, 0);
    tp_test_remove_dir(dir);
    return 0;
}

static tp_client_t *connect_client(tp_client_context_t **ctx)
{
    tp_client_t *c = NULL;
    if (tp_client_context_init(ctx) < 0 || tp_client_context_set(*ctx, "client.bus_dir", bus) < 0 ||
        tp_client_context_set(*ctx, "client.allowed_base_dirs", shm) < 0 ||
        tp_client_context_set(*ctx, "client.keepalive_interval_ms", "10") < 0 ||
        tp_client_context_set(*ctx, "client.announce_period_ms", "100") < 0 ||
        tp_client_context_set(*ctx, "client.qos_period_ms", "50") < 0 ||
        tp_client_context_set(*ctx, "client.metadata_period_ms", "50") < 0 || tp_client_connect(&c, *ctx) < 0)
    {
        return NULL;
    }
    return c;
}

/* Payload of frame seq: length from seq, bytes from seq, CRC32C last. */
static uint32_t make_payload(uint8_t *buf, uint64_t seq)
{
    uint32_t length = 64 + (uint32_t)(seq * 97 % 4000);
    for (uint32_t i = 0; i + 4 < length; i++)
    {
        buf[i] = (uint8_t)(seq + i * 7);
    }
    uint32_t crc = tp_crc32c(0, buf, length - 4);
    memcpy(buf + length - 4, &crc, 4);
    return length;
}

static tp_tensor_desc_t tensor_of(uint32_t length)
{
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)length;
    return t;
}

typedef struct tally
{
    uint64_t accepted;
    uint64_t bad;
    uint64_t last_seq;
    uint64_t epoch;
} tally_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    tally_t *t = clientd;
    static uint8_t copy[4096];
    /* The safe path: copy out, validate, then check the checksum of the copy. */
    if (tp_frame_copy_out(f, copy, sizeof(copy)) < 0)
    {
        return; /* changed while copying: the library counts it late */
    }
    uint32_t crc;
    memcpy(&crc, copy + f->payload_length - 4, 4);
    t->bad += f->payload_length < 8 || tp_crc32c(0, copy, f->payload_length - 4) != crc;
    t->accepted++;
    t->last_seq = f->seq;
    t->epoch = f->epoch;
}

/* A producer process: attach, then frames [0, count) as fast as possible; report on the pipe; wait for SIGTERM. */
static pid_t start_producer(int report_fd, uint64_t count, bool die_mid_frame)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0)
    {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    tp_producer_t *p = NULL;
    /* A dead predecessor holds the stream until the driver expires its lease: retry while refused. */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (client != NULL && tp_producer_attach(&p, client, STREAM, TIMEOUT_NS) < 0)
    {
        if (tp_errcode() != TP_E_REJECTED || tp_clock_monotonic_ns() > deadline)
        {
            break;
        }
        usleep(20000);
    }
    if (p == NULL)
    {
        fprintf(stderr, "producer: %s\n", tp_errmsg());
        _exit(3);
    }
    static uint8_t buf[4096];
    for (uint64_t seq = 0; seq < count; seq++)
    {
        uint32_t length = make_payload(buf, seq);
        tp_tensor_desc_t t = tensor_of(length);
        if (tp_producer_offer_frame(p, buf, length, &t, 0, 0) != (int64_t)seq)
        {
            fprintf(stderr, "producer: %s\n", tp_errmsg());
            _exit(4);
        }
        if ((seq & 1023) == 0)
        {
            tp_producer_do_work(p);
        }
    }
    if (die_mid_frame)
    {
        /* Half a frame in a claimed slot, then (the parent's) SIGKILL before the commit. */
        tp_claim_t claim;
        if (tp_producer_try_claim_by_size(p, 4000, &claim) < 0)
        {
            _exit(5);
        }
        make_payload(buf, claim.seq);
        memcpy(claim.buffer, buf, 2000);
    }
    uint64_t report[2] = { count, tp_producer_epoch(p) };
    if (write(report_fd, report, sizeof(report)) != sizeof(report))
    {
        _exit(6);
    }
    for (;;)
    {
        if (!die_mid_frame)
        {
            tp_producer_do_work(p);
        }
        usleep(5000);
    }
}

static void consume_until(tp_consumer_t *c, tally_t *t, bool (*done)(tp_consumer_t *, const tally_t *, uint64_t),
    uint64_t arg)
{
    int64_t deadline = tp_clock_monotonic_ns() + 60 * TP_NS_PER_S;
    while (!done(c, t, arg))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_poll(c, on_frame, t, 256) == 0)
        {
            usleep(100);
        }
    }
}

static bool all_accounted(tp_consumer_t *c, const tally_t *t, uint64_t published)
{
    (void)t;
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    return k.frames + k.drops_gap + k.drops_late + k.drops_invalid >= published;
}

static void test_torn_read_torture(void **state)
{
    (void)state;
    /* covers: W-8.3-5, W-8.3-7, W-8.3-10, W-8.3-12, W-15.21-2, W-10.2.1-7 */
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    assert_non_null(client);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* The consumer attaches (and subscribes to descriptors) before the producer exists, so it sees every
     * descriptor; the first one, of the producer's new epoch, makes it remap. */
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    pid_t producer = start_producer(fds[1], TORTURE_FRAMES, false);
    uint64_t report[2];
    tally_t t = { 0 };
    consume_until(c, &t, all_accounted, TORTURE_FRAMES);
    assert_int_equal(read(fds[0], report, sizeof(report)), sizeof(report));
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    print_message("torture: %u frames into a 4-slot ring: accepted %llu, gaps %llu, late %llu, invalid %llu\n",
        TORTURE_FRAMES, (unsigned long long)k.frames, (unsigned long long)k.drops_gap,
        (unsigned long long)k.drops_late, (unsigned long long)k.drops_invalid);
    assert_int_equal(t.bad, 0);
    assert_int_equal(k.drops_invalid, 0);
    assert_int_equal(k.frames + k.drops_gap + k.drops_late, TORTURE_FRAMES);
    assert_true(t.accepted >= k.frames);
    kill(producer, SIGKILL);
    waitpid(producer, NULL, 0);
    tp_consumer_close(c);
    assert_int_equal(tp_client_close(client), 0);
    tp_client_context_close(ctx);
    close(fds[0]);
    close(fds[1]);
}

static bool frames_of_epoch_above(tp_consumer_t *c, const tally_t *t, uint64_t epoch)
{
    (void)c;
    return t->accepted > 0 && t->epoch > epoch;
}

static void test_producer_killed_mid_frame(void **state)
{
    (void)state;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    assert_non_null(client);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    pid_t first = start_producer(fds[1], 100, true);
    uint64_t report[2];
    tally_t t = { 0 };
    consume_until(c, &t, all_accounted, 100);
    assert_int_equal(read(fds[0], report, sizeof(report)), sizeof(report));
    assert_int_equal(kill(first, SIGKILL), 0);
    waitpid(first, NULL, 0);
    uint64_t first_epoch = report[1];
    /* The half-written frame (seq 100) was never published: nothing beyond seq 99 of that epoch is accepted. */
    for (int i = 0; i < 50; i++)
    {
        tp_consumer_poll(c, on_frame, &t, 256);
    }
    assert_true(t.last_seq <= 99);
    /* The driver expires the dead producer's lease (150 ms), a new producer attaches; the consumer follows.
     * covers: D-4.9-7, D-6-5 */
    pid_t second = start_producer(fds[1], 100, false);
    t.accepted = 0;
    consume_until(c, &t, frames_of_epoch_above, first_epoch);
    assert_int_equal(read(fds[0], report, sizeof(report)), sizeof(report));
    assert_true(report[1] > first_epoch);
    assert_int_equal(t.bad, 0);
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_true(k.remaps >= 1);
    kill(second, SIGKILL);
    waitpid(second, NULL, 0);
    tp_consumer_close(c);
    assert_int_equal(tp_client_close(client), 0);
    tp_client_context_close(ctx);
    close(fds[0]);
    close(fds[1]);
}

/* Offer a frame and poll until the consumer accepted one of the producer's current epoch. */
static void until_frame_flows(tp_producer_t *p, tp_consumer_t *c, tally_t *t)
{
    static uint8_t buf[4096];
    int64_t deadline = tp_clock_monotonic_ns() + 30 * TP_NS_PER_S;
    uint64_t seq = 0;
    t->accepted = 0;
    while (t->accepted == 0 || t->epoch != tp_producer_epoch(p))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        if (tp_producer_is_attached(p))
        {
            uint32_t length = make_payload(buf, seq++);
            tp_tensor_desc_t tensor = tensor_of(length);
            tp_producer_offer_frame(p, buf, length, &tensor, 0, 0);
        }
        tp_consumer_poll(c, on_frame, t, 256);
        usleep(1000);
    }
}

static void test_driver_killed_and_restarted(void **state)
{
    (void)state;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    assert_non_null(client);
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tally_t t = { 0 };
    until_frame_flows(p, c, &t);
    uint64_t epoch = tp_producer_epoch(p);
    uint64_t lease = tp_producer_lease_id(p);
    /* No ShmDriverShutdown this time: the clients see the regions' activity timestamp go stale (3 announce
     * periods), stop using the regions and drop the leases.
     * covers: W-15.14-1, W-7.1-4, D-4.8-2, D-4.13-10 */
    assert_int_equal(kill(driver_pid, SIGKILL), 0);
    waitpid(driver_pid, NULL, 0);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_producer_is_attached(p) || tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        tp_consumer_poll(c, on_frame, &t, 256);
        usleep(2000);
    }
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    assert_int_equal(tp_producer_lease_id(p), 0);
    /* A new driver (above every epoch on disk): both attach again with their pending requests, frames flow. */
    start_driver();
    until_frame_flows(p, c, &t);
    assert_true(tp_producer_epoch(p) > epoch);
    assert_true(tp_producer_lease_id(p) != 0);
    print_message("driver restart: epoch %llu -> %llu, producer lease %llu -> %llu\n", (unsigned long long)epoch,
        (unsigned long long)tp_producer_epoch(p), (unsigned long long)lease,
        (unsigned long long)tp_producer_lease_id(p));
    assert_int_equal(t.bad, 0);
    tp_consumer_counters(c, &k);
    assert_int_equal(k.lease_losses, 1);
    assert_true(k.remaps >= 1);
    tp_producer_close(p);
    tp_consumer_close(c);
    assert_int_equal(tp_client_close(client), 0);
    tp_client_context_close(ctx);
}

static void on_nothing(void *clientd, const tp_frame_t *f)
{
    (void)clientd;
    (void)f;
}

static void test_killed_consumer_and_late_metadata_reader(void **state)
{
    (void)state;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    assert_non_null(client);
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(p), "camera-7", "a camera in another process"));
    tp_assert_ok(tp_metadata_set_text(tp_producer_metadata(p), "exposure", "10ms"));
    tp_assert_ok(tp_metadata_set_text(tp_producer_metadata(p), "gain", "2"));
    tp_assert_ok(tp_metadata_delete_attribute(tp_producer_metadata(p), "gain"));
    /* A consumer process with a descriptor stream of its own. */
    pid_t consumer = fork();
    assert_true(consumer >= 0);
    if (consumer == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        tp_client_context_t *cctx = NULL;
        tp_client_t *cc = connect_client(&cctx);
        tp_consumer_options_t o;
        tp_consumer_options_init(&o);
        o.per_consumer_descriptors = true;
        tp_consumer_t *c = NULL;
        if (cc == NULL || tp_consumer_open(&c, cc, STREAM, &o, TIMEOUT_NS) < 0)
        {
            _exit(3);
        }
        for (;;)
        {
            tp_consumer_poll(c, on_nothing, NULL, 64);
            usleep(1000);
        }
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_producer_consumer_streams(p) != 1)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(p);
        usleep(1000);
    }
    /* Killed: no detach, no more hellos. The stream closes once the consumer is stale or its lease expired.
     * covers: W-5-3, W-10.1.3-7 */
    assert_int_equal(kill(consumer, SIGKILL), 0);
    waitpid(consumer, NULL, 0);
    int64_t killed = tp_clock_monotonic_ns();
    while (tp_producer_consumer_streams(p) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < killed + TIMEOUT_NS);
        tp_producer_do_work(p);
        usleep(1000);
    }
    print_message("per-consumer stream closed %.0f ms after the consumer was killed\n",
        (double)(tp_clock_monotonic_ns() - killed) / 1e6);
    /* A metadata reader started now, in another process, learns the data source from the repeats. */
    pid_t reader = fork();
    assert_true(reader >= 0);
    if (reader == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        tp_client_context_t *rctx = NULL;
        tp_client_t *rc = connect_client(&rctx);
        tp_metadata_cache_t *cache = NULL;
        if (rc == NULL || tp_metadata_cache_open(&cache, rc, NULL, NULL) < 0)
        {
            _exit(3);
        }
        int64_t end = tp_clock_monotonic_ns() + TIMEOUT_NS;
        tp_metadata_view_t v;
        while (tp_clock_monotonic_ns() < end)
        {
            tp_metadata_cache_poll(cache, 64);
            if (tp_metadata_cache_get(cache, STREAM, &v) && v.has_announce && strcmp(v.name, "camera-7") == 0 &&
                v.has_attributes)
            {
                const tp_metadata_attribute_t *exposure = tp_metadata_find(&v, "exposure");
                bool ok = exposure != NULL && tp_metadata_find(&v, "gain") == NULL;
                _exit(ok ? 0 : 5); /* the deleted attribute is gone, the other is there */
            }
            usleep(1000);
        }
        _exit(4);
    }
    int status = -1;
    while (waitpid(reader, &status, WNOHANG) == 0)
    {
        tp_producer_do_work(p); /* the periodic DataSourceAnnounce */
        usleep(1000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tp_producer_close(p);
    assert_int_equal(tp_client_close(client), 0);
    tp_client_context_close(ctx);
}

/* ---- rate limiting and QoS across processes ---- */

typedef struct child_report
{
    tp_consumer_counters_t counters;
    uint32_t own_stream; /* its per-consumer descriptor stream (0: the shared one) */
    uint8_t mode;
} child_report_t;

static void slow_frame(void *clientd, const tp_frame_t *f)
{
    (void)clientd;
    (void)f;
    usleep(3000); /* reads in place for 3 ms while the producer writes a 4-slot ring every 1 ms */
}

/* A consumer process: rate limited to 50 Hz on a descriptor stream of its own, or slow on the shared stream. Says
 * 'R' on ready_fd once attached (and granted), consumes until a byte arrives on stop_fd, keeps polling for 300 ms
 * (six QoS periods: its last report carries its final counters), then writes its report and exits. */
static void consumer_child(bool rate_limited, int ready_fd, int stop_fd, int report_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    if (rate_limited)
    {
        o.mode = TP_CONSUMER_RATE_LIMITED;
        o.max_rate_hz = 50;
        o.per_consumer_descriptors = true;
    }
    tp_consumer_t *c = NULL;
    if (client == NULL || tp_consumer_open(&c, client, STREAM, &o, TIMEOUT_NS) < 0)
    {
        _exit(3);
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (rate_limited && tp_consumer_descriptor_stream_id(c) == 0)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            _exit(4);
        }
        tp_consumer_poll(c, on_nothing, NULL, 64);
        usleep(1000);
    }
    if (write(ready_fd, "R", 1) != 1)
    {
        _exit(5);
    }
    struct pollfd pfd = { .fd = stop_fd, .events = POLLIN };
    while (poll(&pfd, 1, 0) == 0)
    {
        tp_consumer_poll(c, rate_limited ? on_nothing : slow_frame, NULL, 64);
    }
    int64_t end = tp_clock_monotonic_ns() + 300 * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < end)
    {
        tp_consumer_poll(c, on_nothing, NULL, 64);
        usleep(1000);
    }
    child_report_t r;
    memset(&r, 0, sizeof(r));
    tp_consumer_counters(c, &r.counters);
    r.own_stream = tp_consumer_descriptor_stream_id(c);
    r.mode = (uint8_t)tp_consumer_mode(c);
    _exit(write(report_fd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 6);
}

static void test_rate_limit_and_qos_across_processes(void **state)
{
    (void)state;
    /* covers: W-11-3, W-10.4.1-1, W-11-1 (across processes: the hello's 50 Hz is applied by the producer; QoS drops are
     * the counted ones; the slow STREAM consumer accounts for every descriptor) */
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = connect_client(&ctx);
    assert_non_null(client);
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_qos_monitor_t *monitor = NULL;
    tp_assert_ok(tp_qos_monitor_open(&monitor, client, 0));
    int ready[2], stop[2], report[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(stop), 0);
    assert_int_equal(pipe(report), 0);
    pid_t children[2];
    for (int i = 0; i < 2; i++)
    {
        children[i] = fork();
        assert_true(children[i] >= 0);
        if (children[i] == 0)
        {
            consumer_child(i == 0, ready[1], stop[0], report[1]);
        }
    }
    /* Both attached (the limited one granted its stream), and the producer serving that stream. */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    int ready_count = 0;
    while (ready_count < 2 || tp_producer_consumer_streams(p) != 1)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
        char byte;
        if (poll(&pfd, 1, 1) == 1 && read(ready[0], &byte, 1) == 1)
        {
            ready_count++;
        }
        tp_producer_do_work(p);
        tp_qos_monitor_poll(monitor, 64);
    }
    /* 300 frames, one a millisecond. */
    uint8_t buf[4096];
    int64_t first = tp_clock_monotonic_ns();
    for (uint64_t i = 0; i < 300; i++)
    {
        uint32_t length = make_payload(buf, i);
        tp_tensor_desc_t t = tensor_of(length);
        assert_true(tp_producer_offer_frame(p, buf, length, &t, 0, 0) >= 0);
        tp_producer_do_work(p);
        tp_qos_monitor_poll(monitor, 64);
        usleep(1000);
    }
    double seconds = (double)(tp_clock_monotonic_ns() - first) / 1e9;
    assert_int_equal(write(stop[1], "SS", 2), 2);
    int exited = 0;
    while (exited < 2)
    {
        for (int i = 0; i < 2; i++)
        {
            int status = 0;
            if (children[i] > 0 && waitpid(children[i], &status, WNOHANG) == children[i])
            {
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
                children[i] = 0;
                exited++;
            }
        }
        tp_producer_do_work(p);
        tp_qos_monitor_poll(monitor, 64);
        usleep(1000);
    }
    tp_qos_monitor_poll(monitor, 256);
    child_report_t reports[2];
    assert_int_equal(read(report[0], reports, sizeof(reports)), (ssize_t)sizeof(reports));
    tp_qos_consumer_view_t views[4];
    size_t nviews = tp_qos_monitor_consumers(monitor, views, 4);
    assert_int_equal(nviews, 2);
    for (int i = 0; i < 2; i++)
    {
        const child_report_t *r = &reports[i];
        const tp_consumer_counters_t *k = &r->counters;
        if (r->mode == TP_CONSUMER_RATE_LIMITED)
        {
            /* Thinned by the producer on its own stream: at most one frame per 20 ms, the rest counted as rate
             * limited, not as drops. */
            assert_true(r->own_stream >= 31000 && r->own_stream <= 31009);
            assert_true(k->frames >= 1);
            assert_true((double)k->frames <= seconds * 50 + 1);
            assert_true(k->rate_limited > 0);
            print_message("rate limited: %llu frames in %.2f s (50 Hz cap), %llu thinned\n",
                (unsigned long long)k->frames, seconds, (unsigned long long)k->rate_limited);
        }
        else
        {
            /* Slow on the shared stream: every frame accounted for, some lost to the 4-slot ring. */
            assert_int_equal(r->own_stream, 0);
            assert_int_equal(k->frames + k->drops_gap + k->drops_late + k->drops_invalid, 300);
            assert_true(k->drops_gap + k->drops_late > 0);
            print_message("slow: %llu frames, %llu gaps, %llu late\n", (unsigned long long)k->frames,
                (unsigned long long)k->drops_gap, (unsigned long long)k->drops_late);
        }
        /* What its QoS said is what it counted. */
        bool found = false;
        for (size_t v = 0; v < nviews; v++)
        {
            if (views[v].mode == r->mode)
            {
                found = true;
                assert_int_equal(views[v].drops_gap, k->drops_gap);
                assert_int_equal(views[v].drops_late, k->drops_late);
            }
        }
        assert_true(found);
    }
    close(ready[0]);
    close(ready[1]);
    close(stop[0]);
    close(stop[1]);
    close(report[0]);
    close(report[1]);
    tp_assert_ok(tp_qos_monitor_close(monitor));
    tp_producer_close(p);
    assert_int_equal(tp_client_close(client), 0);
    tp_client_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_torn_read_torture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_killed_mid_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_driver_killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_consumer_and_late_metadata_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_and_qos_across_processes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
