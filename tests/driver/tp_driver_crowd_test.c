/*
 * A crowd around one `tp driver` process: TP_CROWD_CLIENTS client processes (`tp attach --hold`), started a
 * hundred at a time, hold leases together, a fresh attach is still answered, then TP_CROWD_CHURN processes at a time
 * attach and detach for TP_CROWD_SECONDS, every attach answered. The holders are killed; once the driver stopped
 * cleanly, no bus log of an exited process is left. Then TP_CROWD_CONSUMERS real consumers read a stream.
 * Defaults (1000 clients, 50 churning for 5 s, 300 consumers; 200 and 50 under sanitizers) run in `make test`; the
 * `long` label churns for 60 s and runs 1000 consumers (`make test-long`). History: the 64th client process was
 * refused while the bus took 64 publications per stream; then, with every client reading every other client's
 * requests on the control stream, about 300 processes starting at once was where keepalives missed the default 3 s
 * expiry. Clients now send requests on the request lane, which only the driver reads, and hellos on the hello
 * lane, which only producers read (tp_bus.h, Lanes; docs/ARCHITECTURE.md, limits).
 */
#include <fcntl.h>
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

#define STREAM 10
#define CHANNEL "aeron:ipc?term-length=64k"
#define MAX_CROWD 2000
#define CROWD_WAVE 100
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CROWD_DEFAULT 200 /* `make asan`: every process runs several times slower and maps shadow memory */
#define CROWD_CONSUMERS_DEFAULT 50
#else
#define CROWD_DEFAULT 1000
#define CROWD_CONSUMERS_DEFAULT 300
#endif

static char dir[512];
static char bus_dir[700];
static char config[700];
static char status_file[800];
static pid_t driver;
static pid_t holders[MAX_CROWD];
static int holder_count;

static int env_int(const char *name, int fallback)
{
    const char *v = getenv(name);
    return v != NULL && atoi(v) > 0 ? atoi(v) : fallback;
}

static void write_config(void)
{
    char shm[600];
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    tp_assert_ok(mkdir(shm, 0700));
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(status_file, sizeof(status_file), "%s/driver-1000.json", bus_dir);
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\nbus_dir = \"%s\"\ncontrol_channel = \"%s\"\nqos_channel = \"%s\"\n"
        "[shm]\nbase_dir = \"%s\"\n"
        "[policies]\nannounce_period_ms = 200\nprefault_shm = false\n"
        "[profiles.small]\nheader_nslots = 16\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"small\"\n",
        bus_dir, CHANNEL, CHANNEL, shm, STREAM);
    fclose(f);
}

/* `tp` with args, stdout and stderr to /dev/null unless keep_output; killed if this test dies. */
static pid_t spawn_tool(const char *const *args, bool keep_output)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = TP_TOOL;
    for (int i = 0; args[i] != NULL && n < 30; i++)
    {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (!keep_output)
        {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(TP_TOOL, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static pid_t spawn_attach(const char *hold_s)
{
    const char *args[] = { "attach", "--role", "consumer", "--stream-id", "10", "--bus-dir", bus_dir,
        "--control-channel", CHANNEL, "--timeout", "30", hold_s != NULL ? "--hold" : NULL, hold_s, NULL };
    return spawn_tool(args, false);
}

static int exit_status(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The number of consumer leases the driver's status file shows for STREAM (-1 before it exists). */
static int consumers_in_status(void)
{
    if (access(status_file, R_OK) != 0)
    {
        return -1;
    }
    size_t length = 0;
    uint8_t *text = tp_test_read_file(status_file, &length);
    if (text == NULL)
    {
        return -1;
    }
    int n = -1;
    const char *s = strstr((const char *)text, "\"consumers\":");
    if (s != NULL)
    {
        n = atoi(s + strlen("\"consumers\":"));
    }
    free(text);
    return n;
}

static int count_logs(const char *path)
{
    char command[900];
    snprintf(command, sizeof(command), "find '%s' -name '*.log' | wc -l", path);
    char out[64];
    assert_int_equal(tp_test_run(command, out, sizeof(out)), 0);
    return atoi(out);
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "crowd");
    write_config();
    const char *args[] = { "driver", config, NULL };
    driver = spawn_tool(args, true);
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (consumers_in_status() < 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(5000);
    }
    holder_count = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < holder_count; i++)
    {
        kill(holders[i], SIGKILL);
        waitpid(holders[i], NULL, 0);
    }
    if (driver > 0)
    {
        kill(driver, SIGKILL);
        waitpid(driver, NULL, 0);
    }
    tp_test_remove_dir(dir);
    return 0;
}

static void test_a_crowd_is_served(void **state)
{
    (void)state;
    int clients = env_int("TP_CROWD_CLIENTS", CROWD_DEFAULT);
    int churn = env_int("TP_CROWD_CHURN", 50);
    int seconds = env_int("TP_CROWD_SECONDS", 5);
    assert_true(clients <= MAX_CROWD);
    int64_t start = tp_clock_monotonic_ns();
    int64_t deadline = start + 120 * TP_NS_PER_S;
    /* Started in waves of CROWD_WAVE, the next once the driver holds the last one's leases: a thousand processes
     * exec'd in the same instant on 2 vCPUs starve everyone, the driver included, for longer than a lease lasts. */
    while (holder_count < clients)
    {
        int wave_end = holder_count + CROWD_WAVE < clients ? holder_count + CROWD_WAVE : clients;
        while (holder_count < wave_end)
        {
            holders[holder_count++] = spawn_attach("600");
        }
        while (consumers_in_status() < holder_count)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            assert_int_equal(waitpid(-1, NULL, WNOHANG), 0); /* no holder gave up */
            usleep(20000);
        }
    }
    double held_s = (double)(tp_clock_monotonic_ns() - start) / 1e9;
    /* One more, from a fresh process: answered. */
    int status = 0;
    pid_t fresh = spawn_attach(NULL);
    assert_int_equal(waitpid(fresh, &status, 0), fresh);
    assert_int_equal(exit_status(status), 0);
    /* Churn: `churn` processes at a time attach, hold 50 ms and detach, replaced as they exit. */
    pid_t churning[MAX_CROWD];
    for (int i = 0; i < churn; i++)
    {
        churning[i] = spawn_attach("0.05");
    }
    int answered = 0;
    int64_t churn_end = tp_clock_monotonic_ns() + (int64_t)seconds * TP_NS_PER_S;
    int running = churn;
    while (running > 0)
    {
        pid_t pid = waitpid(-1, &status, 0);
        assert_true(pid > 0);
        for (int i = 0; i < churn; i++)
        {
            if (churning[i] != pid)
            {
                continue;
            }
            if (exit_status(status) != 0)
            {
                fail_msg("a churning attach (pid %d) exited %d", (int)pid, exit_status(status));
            }
            answered++;
            churning[i] = tp_clock_monotonic_ns() < churn_end ? spawn_attach("0.05") : -1;
            running -= churning[i] < 0;
        }
    }
    print_message("crowd: %d clients held leases after %.2f s; %d churning attaches answered in %d s (%d at a "
                  "time)\n", clients, held_s, answered, seconds, churn);
    /* Holders killed: their leases expire, their bus entries are reaped; a clean stop leaves no logs behind. */
    for (int i = 0; i < holder_count; i++)
    {
        kill(holders[i], SIGKILL);
        waitpid(holders[i], NULL, 0);
    }
    holder_count = 0;
    deadline = tp_clock_monotonic_ns() + 30 * TP_NS_PER_S;
    while (consumers_in_status() != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
    kill(driver, SIGTERM);
    assert_int_equal(waitpid(driver, &status, 0), driver);
    driver = 0;
    assert_int_equal(exit_status(status), 0);
    assert_int_equal(count_logs(bus_dir), 0);
}

/* Real consumers: TP_CROWD_CONSUMERS `tp consume` processes (a hundred at a time) on one stream fed by `tp produce`
 * at 30 frames/s, each reading 60 frames and exiting 0. They send hellos once a second, which go on the hello lane
 * that only the producer's client and the driver read; before it, every consumer polled every other's hello
 * image, and 300 of them kept 2 vCPUs busy and lost leases (docs/ARCHITECTURE.md, Lanes). */
static void test_a_crowd_of_consumers_reads_frames(void **state)
{
    (void)state;
    int consumers = env_int("TP_CROWD_CONSUMERS", CROWD_CONSUMERS_DEFAULT);
    assert_true(consumers <= MAX_CROWD);
    char shm[600];
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    setenv("TP_CLIENT_CONTROL_CHANNEL", CHANNEL, 1);
    const char *produce[] = { "produce", "10", "--size", "1024", "--rate", "30", "--bus-dir", bus_dir,
        "--allowed-base-dirs", shm, NULL };
    holders[holder_count++] = spawn_tool(produce, false);
    pid_t readers[MAX_CROWD];
    int64_t start = tp_clock_monotonic_ns();
    int64_t deadline = start + 180 * TP_NS_PER_S;
    const char *consume[] = { "consume", "10", "--count", "60", "--bus-dir", bus_dir, "--allowed-base-dirs", shm,
        NULL };
    for (int i = 0; i < consumers; i++)
    {
        readers[i] = spawn_tool(consume, false);
        if ((i + 1) % CROWD_WAVE == 0)
        {
            usleep(500000);
        }
    }
    int done = 0;
    while (done < consumers)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        int status = 0;
        pid_t pid = waitpid(-1, &status, 0);
        assert_true(pid > 0);
        for (int i = 0; i < consumers; i++)
        {
            if (readers[i] == pid)
            {
                if (exit_status(status) != 0)
                {
                    fail_msg("consumer %d (pid %d) exited %d", i, (int)pid, exit_status(status));
                }
                readers[i] = -1;
                done++;
            }
        }
        assert_true(pid != holders[0]); /* the producer runs on */
    }
    unsetenv("TP_CLIENT_CONTROL_CHANNEL");
    print_message("crowd: %d consumers each read 60 frames of a 30 frames/s stream within %.1f s\n", consumers,
        (double)(tp_clock_monotonic_ns() - start) / 1e9);
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_crowd_is_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_crowd_of_consumers_reads_frames, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
