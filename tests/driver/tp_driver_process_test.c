/*
 * `tp driver` as a real process: started from a TOML file, attached to by other processes, inspected with
 * `tp driver status|streams|leases`, killed with SIGKILL and restarted (epochs move up), stopped with SIGTERM and
 * with an authorised shutdown request. A producer process that freezes stops its keepalives and is revoked.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "cli/tp_driver_proxy.h"
#include "tensorpool/tp_bus.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define TIMEOUT_NS (10 * TP_NS_PER_S)
#define CAM 10

static char dir[512];
static char config[700];
static char bus_dir[700];
static char status_file[800];

static void write_config(void)
{
    char shm[600];
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(status_file, sizeof(status_file), "%s/driver-1000.json", bus_dir);
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\n"
        "bus_dir = \"%s\"\n"
        "control_stream_id = 1000\n"
        "[shm]\n"
        "base_dir = \"%s\"\n"
        "[policies]\n"
        "announce_period_ms = 100\n"
        "lease_keepalive_interval_ms = 50\n"
        "lease_expiry_grace_intervals = 3\n"
        "shutdown_token = \"let-me-stop\"\n"
        "shutdown_timeout_ms = 50\n"
        "[profiles.small]\n"
        "header_nslots = 16\n"
        "payload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\n"
        "stream_id = %d\n"
        "profile = \"small\"\n",
        bus_dir, shm, CAM);
    fclose(f);
}

static pid_t start_driver(void)
{
    unlink(status_file);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        setenv("TP_LOG_LEVEL", "30", 1);
        execl(TP_TOOL, TP_TOOL, "driver", config, (char *)NULL);
        _exit(127);
    }
    /* Ready once it wrote its status file (its regions exist and it listens by then). */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status_file, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        int status;
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* it did not die */
        usleep(2000);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Its exit status within TIMEOUT_NS; a process still running then is killed and fails the test. */
static int wait_exit_soon(pid_t pid)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("process %d did not exit", (int)pid);
        }
        usleep(5000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int tool(const char *args, char *out, size_t capacity)
{
    char command[2048];
    snprintf(command, sizeof(command), "%s %s 2>&1", TP_TOOL, args);
    return tp_test_run(command, out, capacity);
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "driver-proc");
    write_config();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_test_remove_dir(dir);
    return 0;
}

static tp_attach_params_t params(uint32_t client_id, uint8_t role)
{
    tp_attach_params_t p = { .stream_id = CAM, .client_id = client_id, .role = role,
        .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING,
        .require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED };
    return p;
}

/* A producer process: attach, report the lease on the pipe, send keepalives every 10 ms until killed. */
static pid_t start_producer(int report_fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid != 0)
    {
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    tp_attach_result_t r;
    tp_attach_params_t p = params(7, TP_DRIVER_ROLE_PRODUCER);
    if (tp_bus_init(&bus, bus_dir) < 0 || tp_driver_proxy_open(&proxy, bus, "aeron:ipc", 1000) < 0 ||
        tp_driver_proxy_attach(proxy, &p, &r, TIMEOUT_NS) < 0 || r.code != TP_DRIVER_RESPONSE_CODE_OK)
    {
        _exit(3);
    }
    uint64_t report[2] = { r.lease_id, r.epoch };
    if (write(report_fd, report, sizeof(report)) != sizeof(report))
    {
        _exit(4);
    }
    for (;;)
    {
        tp_driver_proxy_keepalive(proxy, r.lease_id, CAM, 7, TP_DRIVER_ROLE_PRODUCER);
        usleep(10000);
    }
}

/* A bus and a proxy on the driver's control stream, as a client process would have. */
static void open_proxy(tp_bus_t **bus, tp_driver_proxy_t **proxy)
{
    tp_assert_ok(tp_bus_init(bus, bus_dir));
    tp_assert_ok(tp_driver_proxy_open(proxy, *bus, "aeron:ipc", 1000));
}

/* A producer process (start_producer), once it reported its lease id and epoch into report. */
static pid_t producer_attached(int fds[2], uint64_t report[2])
{
    assert_int_equal(pipe(fds), 0);
    pid_t producer = start_producer(fds[1]);
    assert_int_equal(read(fds[0], report, 2 * sizeof(report[0])), 2 * sizeof(report[0]));
    return producer;
}

static void test_frozen_producer_is_revoked_and_restart_moves_epochs(void **state)
{
    (void)state;
    pid_t driver = start_driver();
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    open_proxy(&bus, &proxy);
    int fds[2];
    uint64_t report[2];
    pid_t producer = producer_attached(fds, report);
    uint64_t lease_id = report[0];
    uint64_t epoch = report[1];
    /* The producer is alive and well: its lease is listed, and outlives several expiry periods. */
    usleep(400000);
    char out[16384];
    char args[1024];
    snprintf(args, sizeof(args), "driver leases --config %s", config);
    assert_int_equal(tool(args, out, sizeof(out)), 0);
    char lease_text[64];
    snprintf(lease_text, sizeof(lease_text), "%llu", (unsigned long long)lease_id);
    tp_test_assert_contains(out, lease_text);
    tp_test_assert_contains(out, "PRODUCER");
    snprintf(args, sizeof(args), "driver streams --config %s", config);
    assert_int_equal(tool(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "client 7 lease");
    snprintf(args, sizeof(args), "driver status --config %s", config);
    assert_int_equal(tool(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "1 active lease(s)");
    tp_test_assert_contains(out, " epoch dir(s) ("); /* the /dev/shm use (issue 18) */
    /* The keepalive interval and grace are discoverable. covers: D-4.4-6 */
    tp_test_assert_contains(out, "leases expire after 3 x 50 ms without keepalive");

    /* Freeze it: keepalives stop, the lease expires within interval x grace (150 ms) plus a check period.
     * covers: D-4.4-4, D-4.7a-2, D-7-2, D-4.9-5 */
    size_t from = tp_driver_proxy_event_count(proxy);
    int64_t frozen_at = tp_clock_monotonic_ns();
    assert_int_equal(kill(producer, SIGSTOP), 0);
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_REVOKED, lease_id, 0, &from, &e, TIMEOUT_NS));
    int64_t revoke_ms = (tp_clock_monotonic_ns() - frozen_at) / TP_NS_PER_MS;
    print_message("frozen producer revoked after %lld ms (lease 150 ms)\n", (long long)revoke_ms);
    assert_int_equal(e.reason, TP_DRIVER_LEASE_REVOKE_REASON_EXPIRED);
    /* then an announce with a higher epoch */
    tp_control_event_t a;
    do
    {
        tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, CAM, &from, &a, TIMEOUT_NS));
    } while (a.epoch <= epoch);
    assert_int_equal(a.client_id, 0);
    kill(producer, SIGKILL);
    wait_exit(producer);

    /* A consumer attaches, then the driver dies without a word. */
    tp_attach_params_t c = params(8, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    tp_assert_ok(tp_driver_proxy_attach(proxy, &c, &rc, TIMEOUT_NS));
    assert_int_equal(rc.code, TP_DRIVER_RESPONSE_CODE_OK);
    assert_int_equal(kill(driver, SIGKILL), 0);
    assert_int_equal(wait_exit(driver), 128 + SIGKILL);
    snprintf(args, sizeof(args), "driver status --config %s", config);
    assert_int_equal(tool(args, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "not running");

    /* Restarted, it issues epochs above every epoch it issued before. covers: D-10-3 */
    driver = start_driver();
    tp_attach_params_t c2 = params(9, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc2;
    tp_assert_ok(tp_driver_proxy_attach(proxy, &c2, &rc2, TIMEOUT_NS));
    assert_int_equal(rc2.code, TP_DRIVER_RESPONSE_CODE_OK);
    assert_true(rc2.epoch > rc.epoch);

    /* SIGTERM: ShmDriverShutdown, then a clean exit. covers: D-4.13-8s */
    from = tp_driver_proxy_event_count(proxy);
    assert_int_equal(kill(driver, SIGTERM), 0);
    tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_SHUTDOWN, 0, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(e.reason, TP_DRIVER_SHUTDOWN_REASON_NORMAL);
    assert_int_equal(wait_exit_soon(driver), 0);
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    close(fds[0]);
    close(fds[1]);
}

static void test_killed_producer_is_revoked_at_once(void **state)
{
    (void)state;
    /* The driver watches each lease holder's process (driver spec 7: process liveness). A producer killed outright
     * loses its lease when its process exits, not when the lease expires; the recovery time is reported.
     * covers: D-7-1s */
    pid_t driver = start_driver();
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    open_proxy(&bus, &proxy);
    int fds[2];
    uint64_t report[2];
    pid_t producer = producer_attached(fds, report);
    size_t from = tp_driver_proxy_event_count(proxy);
    int64_t killed_at = tp_clock_monotonic_ns();
    assert_int_equal(kill(producer, SIGKILL), 0);
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_REVOKED, report[0], 0, &from, &e, TIMEOUT_NS));
    print_message("killed producer's lease ended %.1f ms after SIGKILL (lease 150 ms)\n",
        (double)(tp_clock_monotonic_ns() - killed_at) / 1e6);
    wait_exit(producer);
    /* It ended because the process exited, which the driver counts apart from expiries. */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    size_t length = 0;
    uint8_t *text = NULL;
    while (text == NULL || strstr((const char *)text, "\"leases_dead_process\":1") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        free(text);
        usleep(10000);
        text = tp_test_read_file(status_file, &length);
    }
    tp_test_assert_contains((const char *)text, "\"leases_expired\":0");
    free(text);
    kill(driver, SIGTERM);
    assert_int_equal(wait_exit_soon(driver), 0);
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    close(fds[0]);
    close(fds[1]);
}

/* Another process on the control stream sends what only the driver may: a shutdown and an announce. */
static void forge_driver_messages(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        tp_bus_t *bus = NULL;
        tp_bus_publication_t *pub = NULL;
        uint8_t buf[512];
        tp_driver_shm_driver_shutdown_enc_t e;
        tp_driver_shm_driver_shutdown_enc_begin(&e, buf, sizeof(buf));
        tp_driver_shm_driver_shutdown_set_reason(&e, TP_DRIVER_SHUTDOWN_REASON_NORMAL);
        int64_t n = tp_driver_shm_driver_shutdown_enc_finish(&e);
        tp_wire_shm_pool_announce_enc_t a;
        uint8_t abuf[512];
        tp_wire_shm_pool_announce_enc_begin(&a, abuf, sizeof(abuf));
        tp_wire_shm_pool_announce_set_stream_id(&a, CAM);
        tp_wire_shm_pool_announce_set_epoch(&a, 999);
        tp_wire_shm_pool_announce_set_announce_clock_domain(&a, TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
        int64_t an = tp_wire_shm_pool_announce_enc_finish(&a);
        bool ok = n > 0 && an > 0 && tp_bus_init(&bus, bus_dir) == 0 &&
                  tp_bus_publication_open(&pub, bus, "aeron:ipc", 1000, false) == 0 &&
                  tp_bus_offer(pub, buf, (size_t)n) > 0 && tp_bus_offer(pub, abuf, (size_t)an) > 0;
        tp_bus_publication_close(pub);
        tp_bus_close(bus);
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(wait_exit(pid), 0);
}

static void test_forged_driver_notices_are_ignored(void **state)
{
    (void)state;
    /* Anyone who can write the control stream could make every client drop its lease with a forged
     * ShmDriverShutdown. Clients take the driver's messages only from the process holding the driver's lock. */
    pid_t driver = start_driver();
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    open_proxy(&bus, &proxy);
    size_t from = tp_driver_proxy_event_count(proxy);
    forge_driver_messages();
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_driver_proxy_messages_untrusted(proxy) < 2)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_driver_proxy_poll(proxy);
    }
    for (size_t i = from; i < tp_driver_proxy_event_count(proxy); i++)
    {
        const tp_control_event_t *e = tp_driver_proxy_event(proxy, i);
        assert_int_not_equal(e->kind, TP_CONTROL_EVENT_SHUTDOWN);
        assert_false(e->kind == TP_CONTROL_EVENT_ANNOUNCE && e->epoch == 999);
    }
    /* The driver's own are believed. */
    tp_control_event_t e;
    tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, CAM, &from, &e, TIMEOUT_NS));
    assert_int_not_equal(e.epoch, 999);
    kill(driver, SIGTERM);
    tp_assert_ok(tp_driver_proxy_await_event(proxy, TP_CONTROL_EVENT_SHUTDOWN, 0, 0, &from, &e, TIMEOUT_NS));
    assert_int_equal(wait_exit_soon(driver), 0);
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
}

static void test_external_driver_lays_out_like_an_embedded_one(void **state)
{
    (void)state;
    /* `tp driver` as a process puts the regions where an embedded driver does (tp_driver_regions_test checks the
     * embedded one): <base>/tensorpool-$USER/<namespace>/<stream>/<epoch>/header.ring and <pool>.pool.
     * covers: D-15-3s */
    pid_t driver = start_driver();
    tp_bus_t *bus = NULL;
    tp_driver_proxy_t *proxy = NULL;
    open_proxy(&bus, &proxy);
    tp_attach_params_t params = { .stream_id = CAM, .client_id = 99, .role = TP_DRIVER_ROLE_CONSUMER,
        .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING };
    tp_attach_result_t r;
    tp_assert_ok(tp_driver_proxy_attach(proxy, &params, &r, TIMEOUT_NS));
    assert_int_equal(r.code, TP_DRIVER_RESPONSE_CODE_OK);
    char user[128], expected[2048];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(expected, sizeof(expected), "shm:file?path=%s/shm/%s/default/%d/%llu/header.ring", dir, user, CAM,
        (unsigned long long)r.epoch);
    assert_string_equal(r.header_region_uri, expected);
    snprintf(expected, sizeof(expected), "shm:file?path=%s/shm/%s/default/%d/%llu/1.pool", dir, user, CAM,
        (unsigned long long)r.epoch);
    assert_string_equal(r.pools[0].region_uri, expected);
    tp_driver_proxy_close(proxy);
    tp_bus_close(bus);
    kill(driver, SIGTERM);
    assert_int_equal(wait_exit_soon(driver), 0);
}

static void test_shutdown_command(void **state)
{
    (void)state;
    pid_t driver = start_driver();
    char out[4096], args[1024];
    /* covers: D-4.13-2, D-4.13-5 */
    snprintf(args, sizeof(args), "driver shutdown --config %s --token guess --wait 0.3", config);
    assert_int_equal(tool(args, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "no ShmDriverShutdown");
    int status;
    assert_int_equal(waitpid(driver, &status, WNOHANG), 0);
    /* covers: D-4.13-3, D-4.13-4 */
    snprintf(args, sizeof(args), "driver shutdown --config %s --token let-me-stop --wait 5", config);
    assert_int_equal(tool(args, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "shut down");
    assert_int_equal(wait_exit_soon(driver), 0);
    assert_int_not_equal(access(status_file, F_OK), 0); /* removed on exit */
}

static void test_cli_errors(void **state)
{
    (void)state;
    char out[4096], args[1024];
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/bad.toml", dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("[policies]\nannounce_period_ms = \"often\"\n", f);
    fclose(f);
    snprintf(args, sizeof(args), "driver %s", bad);
    assert_int_equal(tool(args, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "bad.toml:2");
    /* A channel typo is a configuration error (exit 2) naming the file and the key. */
    char typo[700];
    snprintf(typo, sizeof(typo), "%s/typo.toml", dir);
    f = fopen(typo, "w");
    assert_non_null(f);
    fprintf(f, "[driver]\ncontrol_channel = \"aeron:ipc?term-lenght=4m\"\n[profiles.p]\n"
               "payload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n[streams.s]\nstream_id = 10\n"
               "profile = \"p\"\n");
    fclose(f);
    snprintf(args, sizeof(args), "driver %s", typo);
    assert_int_equal(tool(args, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "typo.toml: driver.control_channel: unsupported parameter 'term-lenght'");
    snprintf(args, sizeof(args), "config check %s", typo);
    assert_int_equal(tool(args, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "driver.control_channel: unsupported parameter 'term-lenght'");
    assert_int_equal(tool("driver /nonexistent/driver.toml", out, sizeof(out)), 2);
    tp_test_assert_contains(out, "cannot open");
    snprintf(args, sizeof(args), "driver %s --set policies.nope=1", config);
    assert_int_equal(tool(args, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "unknown driver setting 'policies.nope'");
    assert_int_equal(tool("driver shutdown", out, sizeof(out)), 2);
    tp_test_assert_contains(out, "--token");
    snprintf(args, sizeof(args), "driver status --bus-dir %s/empty", dir);
    assert_int_equal(tool(args, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "no driver serves control stream 1000");
    assert_int_equal(tool("driver --help", out, sizeof(out)), 0);
    tp_test_assert_contains(out, "usage: tp driver CONFIG");
    /* Two drivers on one control stream: the second refuses. covers: D-2.1-1 */
    pid_t driver = start_driver();
    snprintf(args, sizeof(args), "driver %s", config);
    assert_int_equal(tool(args, out, sizeof(out)), 1);
    tp_test_assert_contains(out, "already serves control stream 1000");
    kill(driver, SIGINT);
    assert_int_equal(wait_exit_soon(driver), 0);
}

static void test_mlock_failure_is_fatal(void **state)
{
    (void)state;
    /* No CAP_IPC_LOCK (dropped from the bounding set, so even root cannot regain it through exec) and a zero
     * RLIMIT_MEMLOCK: mlock must fail, and with policies.mlock_shm the driver must refuse to start.
     * covers: D-17-6 */
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* AddressSanitizer turns mlock into a no-op that succeeds, so tp driver cannot see a failure */
#endif
    char log[700];
    snprintf(log, sizeof(log), "%s/mlock.log", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0); /* EPERM when not root: then there is nothing to drop */
        struct rlimit none = { 0, 0 };
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (setrlimit(RLIMIT_MEMLOCK, &none) < 0 || fd < 0 || dup2(fd, 2) < 0)
        {
            _exit(126);
        }
        execl(TP_TOOL, TP_TOOL, "driver", config, "--set", "policies.mlock_shm=true", (char *)NULL);
        _exit(127);
    }
    assert_int_equal(wait_exit_soon(pid), 1);
    size_t n;
    char *text = (char *)tp_test_read_file(log, &n);
    tp_test_assert_contains(text, "mlock of region");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frozen_producer_is_revoked_and_restart_moves_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_producer_is_revoked_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_driver_notices_are_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_external_driver_lays_out_like_an_embedded_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mlock_failure_is_fatal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
