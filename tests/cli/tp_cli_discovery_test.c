/*
 * The standalone discovery registry across hosts, on loopback UDP: two `tp driver` processes with their own bus
 * directories announce over UDP, their producers publish metadata over UDP, a `tp discovery` process indexes both,
 * and `tp discover` (on a third bus) finds each stream with the driver to attach through; a stream whose driver
 * was killed expires from the registry.
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
#include "tensorpool/tp_metadata.h"
#include "tp_test_util.h"

#define TIMEOUT_NS (15 * TP_NS_PER_S)

static char dir[512];
static int ports[22]; /* by offset: the kernel's free ports, so that tests running beside this one never collide */
static pid_t drivers[2];
static pid_t registry;
static char out[1 << 16];

static void udp(char *buf, size_t n, int offset)
{
    assert_true(offset >= 0 && offset < 22 && ports[offset] != 0);
    snprintf(buf, n, "aeron:udp?endpoint=127.0.0.1:%d", ports[offset]);
}

static pid_t spawn(const char *const argv[], const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (freopen(log, "w", stderr) == NULL)
        {
            _exit(126);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Driver i: its own bus and SHM, announces on UDP port+10*i. */
static void start_driver(int i)
{
    char sub[600], config[700], text[2048], announce[128], log[700];
    snprintf(sub, sizeof(sub), "%s/d%d", dir, i);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(text, sizeof(text), "%s/shm", sub);
    assert_int_equal(mkdir(text, 0700), 0);
    udp(announce, sizeof(announce), 10 * i);
    snprintf(config, sizeof(config), "%s/driver.toml", sub);
    snprintf(text, sizeof(text),
        "[driver]\ninstance_id = \"driver-%c\"\nbus_dir = \"%s/bus\"\nannounce_channel = \"%s\"\n"
        "announce_stream_id = 1001\n[shm]\nbase_dir = \"%s/shm\"\n[policies]\nprefault_shm = false\n"
        "announce_period_ms = 200\n"
        "[profiles.small]\nheader_nslots = 16\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"small\"\ntags = [\"configured\"]\n",
        'a' + i, sub, announce, sub, 10 + i);
    write_file(config, text);
    snprintf(log, sizeof(log), "%s/driver.log", sub);
    const char *argv[] = { TP_TOOL, "driver", config, NULL };
    drivers[i] = spawn(argv, log);
    char status[700];
    snprintf(status, sizeof(status), "%s/bus/driver-1000.json", sub);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(5000);
    }
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-discovery");
    const int offsets[] = { 0, 1, 10, 11, 20, 21 };
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++)
    {
        bool is_taken = true;
        while (is_taken)
        {
            ports[offsets[i]] = tp_test_free_udp_port();
            is_taken = false;
            for (size_t k = 0; k < i; k++)
            {
                is_taken |= ports[offsets[k]] == ports[offsets[i]];
            }
        }
    }
    start_driver(0);
    start_driver(1);
    /* The registry: its own bus, requests on UDP port+20, both drivers' announces and metadata. */
    char config[700], text[4096], req[128], a0[128], m0[128], a1[128], m1[128], log[700];
    udp(req, sizeof(req), 20);
    udp(a0, sizeof(a0), 0);
    udp(m0, sizeof(m0), 1);
    udp(a1, sizeof(a1), 10);
    udp(m1, sizeof(m1), 11);
    snprintf(config, sizeof(config), "%s/registry.toml", dir);
    snprintf(text, sizeof(text),
        "[discovery]\ninstance_id = \"registry\"\nbus_dir = \"%s/rbus\"\nchannel = \"%s\"\nstream_id = 7000\n"
        "announce_period_ms = 200\n"
        "[[drivers]]\ninstance_id = \"driver-a\"\ncontrol_stream_id = 1000\nannounce_channel = \"%s\"\n"
        "announce_stream_id = 1001\nmetadata_channel = \"%s\"\nmetadata_stream_id = 1300\n"
        "[[drivers]]\ninstance_id = \"driver-b\"\ncontrol_stream_id = 1000\nannounce_channel = \"%s\"\n"
        "announce_stream_id = 1001\nmetadata_channel = \"%s\"\nmetadata_stream_id = 1300\n",
        dir, req, a0, m0, a1, m1);
    write_file(config, text);
    snprintf(log, sizeof(log), "%s/registry.log", dir);
    const char *argv[] = { TP_TOOL, "discovery", config, NULL };
    registry = spawn(argv, log);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    for (;;)
    {
        if (tp_clock_monotonic_ns() >= deadline)
        {
            size_t n = 0;
            char *t = access(log, R_OK) == 0 ? (char *)tp_test_read_file(log, &n) : NULL;
            fail_msg("the registry did not start within %d s; its log:\n%s", (int)(TIMEOUT_NS / TP_NS_PER_S),
                t != NULL ? t : "(none)");
        }
        size_t n = 0;
        if (access(log, R_OK) == 0)
        {
            char *t = (char *)tp_test_read_file(log, &n);
            bool ready = strstr(t, "answering on") != NULL;
            free(t);
            if (ready)
            {
                break;
            }
        }
        usleep(5000);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(registry, SIGTERM);
    waitpid(registry, NULL, 0);
    for (int i = 0; i < 2; i++)
    {
        if (drivers[i] > 0)
        {
            kill(drivers[i], SIGTERM);
            waitpid(drivers[i], NULL, 0);
        }
    }
    tp_test_remove_dir(dir);
    return 0;
}

/* A producer on driver i's bus whose metadata goes to the registry over UDP. */
static tp_producer_t *producer(int i, tp_client_context_t **ctx, tp_client_t **client, const char *name,
    const char *tags)
{
    char bus[600], shm[600], meta[128];
    snprintf(bus, sizeof(bus), "%s/d%d/bus", dir, i);
    snprintf(shm, sizeof(shm), "%s/d%d/shm", dir, i);
    udp(meta, sizeof(meta), 10 * i + 1);
    tp_assert_ok(tp_client_context_init(ctx));
    tp_assert_ok(tp_client_context_set(*ctx, "client.bus_dir", bus));
    tp_assert_ok(tp_client_context_set(*ctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_context_set(*ctx, "client.metadata_channel", meta));
    tp_assert_ok(tp_client_context_set(*ctx, "client.metadata_period_ms", "100"));
    tp_assert_ok(tp_client_connect(client, *ctx));
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, *client, (uint32_t)(10 + i), TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(p), name, ""));
    tp_assert_ok(tp_metadata_set_text(tp_producer_metadata(p), "tags", tags));
    return p;
}

/* `tp discover ARGS` from a third bus, over UDP; exit status, output in out. */
static int discover(const char *args)
{
    char cmd[2048], req[128], resp[128];
    udp(req, sizeof(req), 20);
    udp(resp, sizeof(resp), 21);
    snprintf(cmd, sizeof(cmd),
        "TP_CLIENT_BUS_DIR='%s/cbus' TP_CLIENT_DISCOVERY_CHANNEL='%s' TP_CLIENT_DISCOVERY_RESPONSE_CHANNEL='%s' %s discover "
        "--timeout 1 %s 2>&1",
        dir, req, resp, TP_TOOL, args);
    return tp_test_run(cmd, out, sizeof(out));
}

static void test_registry_over_udp(void **state)
{
    (void)state;
    /* covers: Q-6.1-1, Q-6.2-1, Q-6.2-3, Q-6.4-1, Q-8-1, Q-4.3-2 */
    tp_client_context_t *ca = NULL, *cb = NULL;
    tp_client_t *a = NULL, *b = NULL;
    tp_producer_t *pa = producer(0, &ca, &a, "cam-a", "front");
    tp_producer_t *pb = producer(1, &cb, &b, "cam-b", "rear,ir");
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (discover("--json") != 0 || strstr(out, "\"name\":\"cam-a\"") == NULL ||
           strstr(out, "\"name\":\"cam-b\"") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(pa);
        tp_producer_do_work(pb);
        usleep(50000);
    }
    assert_non_null(strstr(out, "\"stream_id\":10,"));
    assert_non_null(strstr(out, "\"driver_instance_id\":\"driver-a\""));
    assert_non_null(strstr(out, "\"driver_instance_id\":\"driver-b\""));
    int tag_rc = discover("--tag ir");
    if (tag_rc != 0)
    {
        print_message("tp discover --tag ir: %s\n", out);
    }
    assert_int_equal(tag_rc, 0);
    assert_non_null(strstr(out, "cam-b"));
    assert_null(strstr(out, "cam-a"));
    assert_non_null(strstr(out, "driver-b"));
    assert_non_null(strstr(out, "rear,ir"));
    /* The embedded provider of driver a (IPC, on its own bus) knows its streams with the tags its configuration
     * gives them. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "TP_CLIENT_BUS_DIR='%s/d0/bus' %s discover --tag configured --json 2>&1", dir, TP_TOOL);
    deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_test_run(cmd, out, sizeof(out)) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(50000);
    }
    assert_non_null(strstr(out, "\"stream_id\":10,"));
    assert_non_null(strstr(out, "\"tags\":[\"configured\"]"));
    assert_non_null(strstr(out, "\"driver_instance_id\":\"driver-a\""));
    /* Driver b dies: its stream expires from the registry (3 announce periods), driver a's stays. */
    kill(drivers[1], SIGKILL);
    waitpid(drivers[1], NULL, 0);
    drivers[1] = 0;
    deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (discover("--name cam-b") != 1)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(pa);
        usleep(50000);
    }
    assert_non_null(strstr(out, "no stream matches"));
    assert_int_equal(discover("--name cam-a"), 0);
    /* Usage errors. */
    assert_int_equal(discover("--stream-id x"), 2);
    assert_int_equal(discover("--bogus 1"), 2);
    tp_producer_close(pb);
    tp_producer_close(pa);
    tp_client_close(b);
    tp_client_close(a);
    tp_client_context_close(cb);
    tp_client_context_close(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_over_udp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
