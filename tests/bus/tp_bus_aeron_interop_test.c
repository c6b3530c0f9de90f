/*
 * Interoperability with a real Aeron media driver (C, built from real-logic/aeron; docs/ARCHITECTURE.md says how):
 * Aeron's streaming_publisher -> our subscription and our publication -> Aeron's basic_subscriber, unicast, and
 * multicast where the test can make a network namespace with a multicast loopback (root). Thousands of messages of
 * mixed sizes, fragmented ones included, each checked for order and content.
 *
 * AERON_BIN_DIR names the directory with aeronmd, streaming_publisher and basic_subscriber; without it the test is
 * skipped with a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

extern char **environ;

static char bin_dir[1024];
static char dir[512];
static char aeron_dir[600];
static pid_t driver_pid;
static tp_bus_t *bus;
static int port;
static bool has_multicast;

static pid_t spawn_logged(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

static void stop(pid_t pid)
{
    if (pid > 0)
    {
        kill(pid, SIGTERM);
        for (int i = 0; i < 200; i++)
        {
            if (waitpid(pid, NULL, WNOHANG) == pid)
            {
                return;
            }
            usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static int group_setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "aeroninterop");
    snprintf(aeron_dir, sizeof(aeron_dir), "%s/aeron", dir);
    char path[1200];
    snprintf(path, sizeof(path), "%s/aeronmd", bin_dir);
    char dir_arg[700];
    snprintf(dir_arg, sizeof(dir_arg), "-Daeron.dir=%s", aeron_dir);
    /* One shared thread, backing off when idle: the samples and this test need the other core. */
    char *argv[] = { path, dir_arg, "-Daeron.threading.mode=SHARED", "-Daeron.dir.delete.on.shutdown=true", NULL };
    char log[700];
    snprintf(log, sizeof(log), "%s/aeronmd.log", dir);
    driver_pid = spawn_logged(argv, log);
    if (driver_pid < 0)
    {
        return -1;
    }
    char cnc[700];
    snprintf(cnc, sizeof(cnc), "%s/cnc.dat", aeron_dir);
    struct stat st;
    for (int i = 0; i < 500 && stat(cnc, &st) < 0; i++)
    {
        usleep(10000);
    }
    tp_assert_ok(tp_bus_init(&bus, dir));
    port = 23000 + (int)(getpid() % 15000);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop(driver_pid);
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

typedef struct from_aeron
{
    uint64_t count;
    uint64_t bad;
    size_t length;
} from_aeron_t;

/* streaming_publisher writes its message number in the first 8 bytes and zeros after. */
static void on_aeron_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    from_aeron_t *f = clientd;
    uint64_t seq;
    memcpy(&seq, buffer, sizeof(seq));
    bool ok = length == f->length && seq == f->count;
    for (size_t i = 8; ok && i < length; i++)
    {
        ok = buffer[i] == 0;
    }
    f->bad += !ok;
    f->count++;
}

static int next_stream = 1001;

static void aeron_publisher_to_us(const char *channel, size_t length, uint64_t messages)
{
    /* A fresh stream each run: Aeron's driver shares one network publication per channel and stream, which
     * would still be lingering from the run before. */
    char stream_arg[16];
    int stream = next_stream++;
    snprintf(stream_arg, sizeof(stream_arg), "%d", stream);
    tp_bus_subscription_t *s;
    tp_assert_ok(tp_bus_subscription_open(&s, bus, channel, stream, NULL, NULL, NULL));
    char path[1200];
    snprintf(path, sizeof(path), "%s/streaming_publisher", bin_dir);
    char length_arg[32];
    char count_arg[32];
    snprintf(length_arg, sizeof(length_arg), "%zu", length);
    snprintf(count_arg, sizeof(count_arg), "%" PRIu64, messages);
    char *argv[] = { path, "-p", aeron_dir, "-c", (char *)channel, "-s", stream_arg, "-L", length_arg, "-m", count_arg,
        "-l", "0", NULL };
    char log[700];
    snprintf(log, sizeof(log), "%s/publisher.log", dir);
    pid_t pid = spawn_logged(argv, log);
    assert_true(pid > 0);
    from_aeron_t f = { .length = length };
    int idle = 0;
    while (f.count < messages && idle < 10000)
    {
        int n = tp_bus_poll(s, on_aeron_message, &f, 256);
        idle = n > 0 ? 0 : idle + 1;
        if (n == 0)
        {
            tp_bus_subscription_park(s, TP_NS_PER_MS);
        }
    }
    stop(pid);
    print_message("Aeron -> us on %s: %" PRIu64 " of %" PRIu64 " messages of %zu bytes, %" PRIu64 " bad\n", channel,
        f.count, messages, length, f.bad);
    assert_int_equal(f.count, messages);
    assert_int_equal(f.bad, 0);
    tp_bus_subscription_close(s);
}

/* Printable content that says which message it is, so Aeron's subscriber's output can be checked. */
static size_t make_text(char *buf, uint64_t seq, size_t length)
{
    int n = snprintf(buf, length + 1, "tp-%06" PRIu64 "-", seq);
    for (size_t i = (size_t)n; i < length; i++)
    {
        buf[i] = (char)('a' + (seq + i) % 26);
    }
    return length;
}

static const size_t text_sizes[] = { 20, 1000, 1376, 1377, 5000, 20000 };
#define TEXT_SIZE_COUNT (sizeof(text_sizes) / sizeof(text_sizes[0]))

static uint64_t count_expected_lines(const char *log_path, uint64_t messages, uint64_t *bad)
{
    size_t n = 0;
    uint8_t *text = tp_test_read_file(log_path, &n);
    if (text == NULL)
    {
        return 0;
    }
    static char expected[32768];
    uint64_t next = 0;
    *bad = 0;
    char *line = (char *)text;
    char *end = (char *)text + n;
    while (line < end)
    {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl == NULL)
        {
            break;
        }
        char *open = strstr(line, "<<");
        if (strncmp(line, "Message to stream", 17) == 0 && open != NULL && open < nl && next < messages)
        {
            size_t length = text_sizes[next % TEXT_SIZE_COUNT];
            make_text(expected, next, length);
            char bytes_text[64];
            snprintf(bytes_text, sizeof(bytes_text), "(%zu bytes)", length);
            bool ok = (size_t)(nl - open) == length + 4 && memcmp(open + 2, expected, length) == 0 &&
                strstr(line, bytes_text) != NULL && strstr(line, bytes_text) < open;
            *bad += !ok;
            next++;
        }
        line = nl + 1;
    }
    free(text);
    return next;
}

static void us_to_aeron_subscriber(const char *channel, uint64_t messages)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/basic_subscriber", bin_dir);
    char *argv[] = { "/usr/bin/stdbuf", "-oL", path, "-p", aeron_dir, "-c", (char *)channel, "-s", "1002", NULL };
    char log[700];
    snprintf(log, sizeof(log), "%s/subscriber.log", dir);
    pid_t pid = spawn_logged(argv, log);
    assert_true(pid > 0);
    tp_bus_publication_t *p;
    tp_assert_ok(tp_bus_publication_open(&p, bus, channel, 1002, false));
    /* Several frames to a datagram, as Aeron's own senders do: its receiver must take them apart. */
    tp_assert_ok(tp_bus_publication_set_coalescing(p, true));
    for (int i = 0; i < 5000 && !tp_bus_publication_is_connected(p); i++)
    {
        tp_bus_publication_do_work(p);
        usleep(1000);
    }
    assert_true(tp_bus_publication_is_connected(p));
    static char buf[32768];
    for (uint64_t i = 0; i < messages; i++)
    {
        size_t length = make_text(buf, i, text_sizes[i % TEXT_SIZE_COUNT]);
        int64_t rc;
        while ((rc = tp_bus_offer(p, buf, length)) < 0)
        {
            assert_int_equal(rc, TP_BUS_BACK_PRESSURED);
            tp_bus_publication_do_work(p);
        }
    }
    uint64_t bad = 0;
    uint64_t seen = 0;
    for (int i = 0; i < 1000 && seen < messages; i++)
    {
        tp_bus_publication_do_work(p);
        usleep(10000);
        seen = count_expected_lines(log, messages, &bad);
    }
    tp_bus_publication_close(p);
    stop(pid);
    print_message("us -> Aeron on %s: %" PRIu64 " of %" PRIu64 " messages, %" PRIu64 " bad\n", channel, seen, messages,
        bad);
    assert_int_equal(seen, messages);
    assert_int_equal(bad, 0);
}

static void test_unicast_aeron_to_us(void **state)
{
    (void)state;
    char ch[128];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d", port);
    aeron_publisher_to_us(ch, 32, 20000);
    aeron_publisher_to_us(ch, 3000, 3000);      /* three fragments each */
    aeron_publisher_to_us(ch, 200000, 100);     /* 146 fragments each */
}

static void test_unicast_us_to_aeron(void **state)
{
    (void)state;
    char ch[128];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=127.0.0.1:%d", port + 1);
    us_to_aeron_subscriber(ch, 3000);
}

static void test_multicast_both_ways(void **state)
{
    (void)state;
    if (!has_multicast)
    {
        skip();
    }
    char ch[160];
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=239.255.90.1:%d|interface=127.0.0.1|ttl=0", port + 2);
    aeron_publisher_to_us(ch, 3000, 3000);
    snprintf(ch, sizeof(ch), "aeron:udp?endpoint=239.255.90.3:%d|interface=127.0.0.1|ttl=0", port + 4);
    us_to_aeron_subscriber(ch, 3000);
}

int main(void)
{
    const char *env = getenv("AERON_BIN_DIR");
    char probe[1100];
    snprintf(probe, sizeof(probe), "%s/aeronmd", env != NULL ? env : "");
    if (env == NULL || access(probe, X_OK) != 0)
    {
        printf("skipped: set AERON_BIN_DIR to a directory with Aeron's C aeronmd, streaming_publisher and "
               "basic_subscriber (docs/ARCHITECTURE.md, \"Interoperability with Aeron\", says how to build them)\n");
        return 77;
    }
    snprintf(bin_dir, sizeof(bin_dir), "%s", env);
    char why[256];
    has_multicast = tp_test_enter_multicast_netns(why, sizeof(why)) == 0;
    if (!has_multicast)
    {
        printf("multicast interop skipped: %s\n", why);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicast_aeron_to_us),
        cmocka_unit_test(test_unicast_us_to_aeron),
        cmocka_unit_test(test_multicast_both_ways),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
