/*
 * docs/GUIDE.md's "Bridging two hosts" as real processes: two `tp driver`s with their own bus directories and SHM
 * bases ("host A" and "host B"), `tp bridge --direction send` on A and `--direction receive` on B running the
 * example config/bridge.toml (its endpoints moved to this test's ports by environment), `tp produce` on A and
 * `tp consume --verify` on B. Every frame B reads is the one A wrote; the receiving bridge, the sending bridge and
 * B's driver are each killed and restarted and the stream comes back; `tp bridge status` shows both ends; SIGTERM
 * stops a bridge cleanly; a file that does not say which end runs is refused.
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
#include "tp_test_util.h"

#define TIMEOUT_NS (20 * TP_NS_PER_S)

typedef struct host
{
    char dir[600];
    char bus[700];
    char shm[700];
    char config[700];
    pid_t driver;
} host_t;

static char root[512];
static host_t A;
static host_t B;
static int ports[3]; /* payload, control, metadata: free ports from the kernel */
static pid_t producer;
static char out[1 << 16];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Run `command` through sh in the background, output to log; killed with us. */
static pid_t spawn(const char *command, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[8192];
        snprintf(cmd, sizeof(cmd), "exec env %s > '%s' 2>&1", command, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

static void start_driver(host_t *h)
{
    char status[800];
    snprintf(status, sizeof(status), "%s/driver-1000.json", h->bus);
    unlink(status);
    char cmd[4096];
    char log[800];
    snprintf(cmd, sizeof(cmd), "TP_LOG_LEVEL=30 %s driver '%s'", TP_TOOL, h->config);
    snprintf(log, sizeof(log), "%s/driver.log", h->dir);
    h->driver = spawn(cmd, log);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(2000);
    }
}

static void host_prepare(host_t *h, const char *name)
{
    snprintf(h->dir, sizeof(h->dir), "%s/%s", root, name);
    snprintf(h->bus, sizeof(h->bus), "%s/bus", h->dir);
    snprintf(h->shm, sizeof(h->shm), "%s/shm", h->dir);
    snprintf(h->config, sizeof(h->config), "%s/driver.toml", h->dir);
    assert_int_equal(mkdir(h->dir, 0700), 0);
    assert_int_equal(mkdir(h->shm, 0700), 0);
    char text[4096];
    snprintf(text, sizeof(text),
        "[driver]\nbus_dir = \"%s\"\nstream_id_range = \"20000-29999\"\n[shm]\nbase_dir = \"%s\"\n"
        "[policies]\nprefault_shm = false\nallow_dynamic_streams = true\nannounce_period_ms = 200\n"
        "[profiles.cam]\nheader_nslots = 64\npayload_pools = [ { pool_id = 1, stride_bytes = 131072 } ]\n"
        "[streams.cam]\nstream_id = 10000\nprofile = \"cam\"\n[streams.cam2]\nstream_id = 10001\nprofile = \"cam\"\n",
        h->bus, h->shm);
    write_text(h->config, text);
    start_driver(h);
}

/* The example config, on this test's hosts and ports. */
static pid_t start_bridge(const host_t *h, const char *direction)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
        "TP_BRIDGE_BUS_DIR='%s' TP_BRIDGE_SHM_BASE_DIR='%s' TP_BRIDGE_PAYLOAD_CHANNEL='aeron:udp?endpoint=127.0.0.1:%d' "
        "TP_BRIDGE_CONTROL_CHANNEL='aeron:udp?endpoint=127.0.0.1:%d' "
        "TP_BRIDGE_METADATA_CHANNEL='aeron:udp?endpoint=127.0.0.1:%d' %s bridge --direction %s "
        "'%s/config/bridge.toml'",
        h->bus, h->shm, ports[0], ports[1], ports[2], TP_TOOL, direction, TP_SOURCE_DIR);
    char log[800];
    snprintf(log, sizeof(log), "%s/bridge-%s.log", h->dir, direction);
    return spawn(cmd, log);
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(root, sizeof(root), "cli-bridge");
    for (int i = 0; i < 3; i++)
    {
        bool is_taken = true;
        while (is_taken) /* the kernel may hand out a port twice once it is closed: draw again */
        {
            ports[i] = tp_test_free_udp_port();
            is_taken = false;
            for (int k = 0; k < i; k++)
            {
                is_taken |= ports[k] == ports[i];
            }
        }
    }
    host_prepare(&A, "a");
    host_prepare(&B, "b");
    char cmd[4096];
    char log[800];
    snprintf(cmd, sizeof(cmd), "%s produce 10000 --size 70000 --rate 200 --bus-dir '%s' --allowed-base-dirs '%s'",
        TP_TOOL, A.bus, A.shm);
    snprintf(log, sizeof(log), "%s/produce.log", A.dir);
    producer = spawn(cmd, log);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop(producer, SIGTERM);
    stop(A.driver, SIGTERM);
    stop(B.driver, SIGTERM);
    tp_test_remove_dir(root);
    return 0;
}

/* `tp consume 20000 --count N --verify` on B, retried until it succeeds (the bridge may still be attaching). */
static void consume_on_b(int count)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s consume 20000 --count %d --verify --seconds 5 --bus-dir '%s' --allowed-base-dirs '%s' 2>&1",
        TP_TOOL, count, B.bus, B.shm);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    int rc;
    while ((rc = tp_test_run(cmd, out, sizeof(out))) != 0)
    {
        /* not there yet (the bridge attaching the stream), or too few frames; never a wrong one */
        assert_true(strstr(out, "failed --verify") == NULL || strstr(out, "(0 failed --verify)") != NULL);
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
    tp_test_assert_contains(out, "(0 failed --verify)");
}

static void status_of(const host_t *h, const char *needle)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s bridge status --bus-dir '%s' 2>&1", TP_TOOL, h->bus);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_test_run(cmd, out, sizeof(out)) != 0 || strstr(out, needle) == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
}

/* The walk-through, then each piece killed and restarted.
 * covers: B-2.1-1, B-2.2-1, B-4-4 */
static void test_two_hosts(void **state)
{
    (void)state;
    pid_t receiver = start_bridge(&B, "receive");
    pid_t sender = start_bridge(&A, "send");
    consume_on_b(100);
    status_of(&B, "receive 10000   20000");
    status_of(&B, "receive 10001   20100"); /* dest_stream_id = 0: granted from the range */
    status_of(&A, "send    10000   20000");
    /* the receiving bridge dies and comes back: a new local epoch, the stream flows again */
    stop(receiver, SIGKILL);
    receiver = start_bridge(&B, "receive");
    consume_on_b(50);
    /* the sending bridge dies and comes back */
    stop(sender, SIGKILL);
    sender = start_bridge(&A, "send");
    consume_on_b(50);
    /* host B's driver restarts: the receiving bridge attaches its stream to the new one */
    stop(B.driver, SIGKILL);
    start_driver(&B);
    consume_on_b(50);
    /* SIGTERM: a clean exit, and its report goes */
    kill(receiver, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(receiver, &status, 0), receiver);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s bridge status --bus-dir '%s' 2>&1", TP_TOOL, B.bus);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "no bridge reports");
    stop(sender, SIGTERM);
}

/* Usage errors: no direction, a bad one, no file. */
static void test_refusals(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "TP_BRIDGE_BUS_DIR='%s' %s bridge '%s/config/bridge.toml' 2>&1", A.bus, TP_TOOL,
        TP_SOURCE_DIR);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "which end runs here?");
    snprintf(cmd, sizeof(cmd), "%s bridge --direction sideways '%s/config/bridge.toml' 2>&1", TP_TOOL, TP_SOURCE_DIR);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "--direction is 'sideways'");
    snprintf(cmd, sizeof(cmd), "%s bridge 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "usage: tp bridge");
    snprintf(cmd, sizeof(cmd), "%s consume 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "needs a STREAM_ID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
