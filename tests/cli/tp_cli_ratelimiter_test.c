/*
 * `tp ratelimiter CONFIG` as a process between a `tp driver` process and this test's producer and consumer:
 * frames come out at no more than the cap, intact and under their source seq; `tp ratelimiter status` reports the
 * mapping; a destination that already has a producer is an error at start; SIGTERM stops it cleanly; bad
 * configurations fail fast naming the key.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tp_test_util.h"

#define SOURCE 10000
#define DEST 11000
#define TIMEOUT_NS (10 * TP_NS_PER_S)

static char dir[512];
static char bus_dir[600];
static char shm[600];
static char limiter_config[700];
static pid_t driver_pid;
static char out[1 << 16];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char driver_config[700];

/* `tp driver` on this test's configuration, until its status file shows it is up. */
static void start_driver(void)
{
    char status[700];
    snprintf(status, sizeof(status), "%s/driver-1000.json", bus_dir);
    unlink(status);
    driver_pid = fork();
    assert_true(driver_pid >= 0);
    if (driver_pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TP_LOG_LEVEL", "30", 1);
        execl(TP_TOOL, TP_TOOL, "driver", driver_config, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(2000);
    }
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-ratelimiter");
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    char text[4096];
    snprintf(driver_config, sizeof(driver_config), "%s/driver.toml", dir);
    snprintf(text, sizeof(text),
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "[profiles.cam]\nheader_nslots = 64\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"cam\"\n[streams.cam-10hz]\nstream_id = %d\nprofile = \"cam\"\n"
        "[streams.cam2]\nstream_id = 10001\nprofile = \"cam\"\n[streams.cam2-5hz]\nstream_id = 11001\n"
        "profile = \"cam\"\n",
        bus_dir, shm, SOURCE, DEST);
    write_text(driver_config, text);
    snprintf(limiter_config, sizeof(limiter_config), "%s/ratelimiter.toml", dir);
    snprintf(text, sizeof(text),
        "[rate_limiter]\ninstance_id = \"rl-test\"\nbus_dir = \"%s\"\nshm_base_dir = \"%s\"\n"
        "driver_control_channel = \"aeron:ipc?term-length=4m\"\ndriver_control_stream_id = 1000\n"
        "descriptor_channel = \"aeron:ipc?term-length=4m\"\ndescriptor_stream_id = 1100\n"
        "[[mappings]]\nsource_stream_id = %d\ndest_stream_id = %d\nmax_rate_hz = 10\n",
        bus_dir, shm, SOURCE, DEST);
    write_text(limiter_config, text);
    start_driver();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(driver_pid, SIGTERM);
    waitpid(driver_pid, NULL, 0);
    tp_test_remove_dir(dir);
    return 0;
}

static pid_t start_limiter(const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "exec %s ratelimiter '%s' > '%s' 2>&1", TP_TOOL, limiter_config, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

typedef struct client_end
{
    tp_client_context_t *ctx;
    tp_client_t *client;
} client_end_t;

static void client_open(client_end_t *c)
{
    tp_assert_ok(tp_client_context_init(&c->ctx));
    tp_assert_ok(tp_client_context_set(c->ctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(c->ctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_connect(&c->client, c->ctx));
}

static void client_close(client_end_t *c)
{
    tp_client_close(c->client);
    tp_client_context_close(c->ctx);
}

typedef struct received
{
    int frames;
    int bad;
    uint64_t last_seq;
    int64_t first_ns;
    int64_t last_ns;
} received_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    received_t *r = clientd;
    uint8_t expect[512];
    for (uint32_t i = 0; i < sizeof(expect); i++)
    {
        expect[i] = (uint8_t)(f->seq + i);
    }
    r->bad += f->payload_length != sizeof(expect) || memcmp(f->payload, expect, sizeof(expect)) != 0 ||
        f->trace_id != 1000 + f->seq || (r->frames > 0 && f->seq <= r->last_seq);
    r->last_seq = f->seq;
    int64_t now = tp_clock_monotonic_ns();
    if (r->frames == 0)
    {
        r->first_ns = now;
    }
    r->last_ns = now;
    r->frames++;
}

/* A 500 Hz source for 2 s through a 10 Hz limiter: no more than the cap ever comes out (counted over the span
 * the frames arrived in), every frame intact with its source seq and trace id, and the status report shows it.
 * A second limiter for the same destination gives up at start.
 * covers: R-8-6, R-3-4 */
static void test_caps_a_live_stream(void **state)
{
    (void)state;
    char log[700];
    snprintf(log, sizeof(log), "%s/limiter.log", dir);
    pid_t limiter = start_limiter(log);
    client_end_t a;
    client_open(&a);
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_assert_ok(tp_producer_attach(&source, a.client, SOURCE, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&dest, a.client, DEST, TIMEOUT_NS));
    received_t got = { 0 };
    uint8_t payload[512];
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)sizeof(payload);
    uint64_t seq = 0;
    int64_t end = tp_clock_monotonic_ns() + 2 * TP_NS_PER_S;
    while (tp_clock_monotonic_ns() < end)
    {
        for (uint32_t i = 0; i < sizeof(payload); i++)
        {
            payload[i] = (uint8_t)(seq + i);
        }
        if (tp_producer_offer_frame(source, payload, sizeof(payload), &t, 0, 1000 + seq) >= 0)
        {
            seq++;
        }
        tp_producer_do_work(source);
        tp_consumer_poll(dest, on_frame, &got, 64);
        usleep(2000);
    }
    for (int i = 0; i < 200; i++)
    {
        tp_consumer_poll(dest, on_frame, &got, 64);
        usleep(1000);
    }
    print_message("source %d frames, destination %d\n", (int)seq, got.frames);
    assert_int_equal(got.bad, 0);
    assert_true(got.frames >= 5);
    /* At 10 Hz, n frames need at least (n - 1) x 100 ms (less a little scheduling slack). */
    assert_true(got.last_ns - got.first_ns >= (int64_t)(got.frames - 1) * 95 * TP_NS_PER_MS);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' %s ratelimiter status 2>&1", bus_dir, TP_TOOL);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_test_run(cmd, out, sizeof(out)) != 0 || strstr(out, "rl-test") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
    tp_test_assert_contains(out, "10000");
    tp_test_assert_contains(out, "11000");
    tp_test_assert_contains(out, "yes");
    /* A second limiter for the same destination is refused at start: the stream has its producer. */
    char log2[700];
    snprintf(log2, sizeof(log2), "%s/limiter2.log", dir);
    pid_t second = start_limiter(log2);
    int status = 0;
    assert_int_equal(waitpid(second, &status, 0), second);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    /* SIGTERM: a clean stop, its report removed. */
    kill(limiter, SIGTERM);
    assert_int_equal(waitpid(limiter, &status, 0), limiter);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 1);
    tp_consumer_close(dest);
    tp_producer_close(source);
    client_close(&a);
}

/* The driver restarts under a running limiter (SIGKILL, then a new `tp driver`): the limiter attaches again on
 * both sides by itself, and frames flow through it again. */
static void test_survives_driver_restart(void **state)
{
    (void)state;
    char log[700];
    snprintf(log, sizeof(log), "%s/limiter-restart.log", dir);
    pid_t limiter = start_limiter(log);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' %s ratelimiter status --json 2>&1", bus_dir, TP_TOOL);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_test_run(cmd, out, sizeof(out)) != 0 || strstr(out, "\"ready\":true") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
    kill(driver_pid, SIGKILL);
    waitpid(driver_pid, NULL, 0);
    start_driver();
    client_end_t a;
    client_open(&a);
    tp_producer_t *source;
    tp_consumer_t *dest;
    tp_assert_ok(tp_producer_attach(&source, a.client, SOURCE, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&dest, a.client, DEST, TIMEOUT_NS));
    received_t got = { 0 };
    uint8_t payload[512];
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)sizeof(payload);
    uint64_t seq = 0;
    deadline = tp_clock_monotonic_ns() + 2 * TIMEOUT_NS;
    while (got.frames < 3)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        for (uint32_t i = 0; i < sizeof(payload); i++)
        {
            payload[i] = (uint8_t)(seq + i);
        }
        if (tp_producer_offer_frame(source, payload, sizeof(payload), &t, 0, 1000 + seq) >= 0)
        {
            seq++;
        }
        tp_producer_do_work(source);
        tp_consumer_poll(dest, on_frame, &got, 64);
        usleep(5000);
    }
    assert_int_equal(got.bad, 0);
    kill(limiter, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(limiter, &status, 0), limiter);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tp_consumer_close(dest);
    tp_producer_close(source);
    client_close(&a);
}

/* Fail fast on what the configuration gets wrong, naming the key.
 * covers: R-8-1, R-8-2, R-8-3, R-8-4 */
static void test_bad_configurations(void **state)
{
    (void)state;
    const struct
    {
        const char *text;
        const char *needle;
    } cases[] = {
        { "[rate_limiter]\ndescriptor_channel = \"aeron:ipc\"\ndescriptor_stream_id = 1100\n[[mappings]]\n"
          "source_stream_id = 1\ndest_stream_id = 2\n",
            "rate_limiter.instance_id" },
        { "[rate_limiter]\ninstance_id = \"x\"\ndescriptor_channel = \"aeron:ipc\"\ndescriptor_stream_id = 1100\n",
            "mappings" },
        { "[rate_limiter]\ninstance_id = \"x\"\ndescriptor_channel = \"aeron:ipc\"\ndescriptor_stream_id = 1100\n"
          "forward_progress = true\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n",
            "rate_limiter.forward_progress" },
        { "[rate_limiter]\ninstance_id = \"x\"\ndescriptor_channel = \"aeron:ipc\"\ndescriptor_stream_id = 1100\n"
          "forward_qos = true\nsource_qos_stream_id = 1200\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n",
            "rate_limiter.forward_qos" },
    };
    char path[700];
    snprintf(path, sizeof(path), "%s/bad.toml", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        write_text(path, cases[i].text);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "%s ratelimiter '%s' 2>&1", TP_TOOL, path);
        assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
        tp_test_assert_contains(out, cases[i].needle);
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s ratelimiter 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "usage: tp ratelimiter CONFIG");
}

/* The example configuration in config/ runs (its bus and SHM base pointed at this test's by environment): both
 * mappings attach and report, with progress forwarding on. */
static void test_example_config_runs(void **state)
{
    (void)state;
    char log[700];
    snprintf(log, sizeof(log), "%s/example.log", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd),
            "TP_RATE_LIMITER_BUS_DIR='%s' TP_RATE_LIMITER_SHM_BASE_DIR='%s' exec %s ratelimiter '%s/config/rate-limiter.toml' "
            "> '%s' 2>&1",
            bus_dir, shm, TP_TOOL, TP_SOURCE_DIR, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' %s ratelimiter status --json 2>&1", bus_dir, TP_TOOL);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_test_run(cmd, out, sizeof(out)) != 0 || strstr(out, "\"ready\":false") != NULL ||
           strstr(out, "\"dest\":11001") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
    tp_test_assert_contains(out, "\"instance_id\":\"rate-limiter-01\"");
    tp_test_assert_contains(out, "\"max_rate_hz\":30");
    tp_test_assert_contains(out, "\"max_rate_hz\":5");
    kill(pid, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_a_live_stream),
        cmocka_unit_test(test_bad_configurations),
        cmocka_unit_test(test_example_config_runs),
        cmocka_unit_test(test_survives_driver_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
