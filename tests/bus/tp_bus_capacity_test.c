/*
 * The IPC bus under crowds and churn: a stream takes TP_BUS_MAX_IMAGES publications, a refused one leaves no log
 * behind, closed images are reclaimed at once when nobody subscribes and under pressure when somebody does, and log
 * files that no registry names and whose writer is dead are removed by the next open.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_ipc.h"
#include "core/tp_proc.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

#define STREAM 1200
#define SMALL "aeron:ipc?term-length=64k"

static char dir[512];
static char stream_dir[600];
static tp_bus_t *bus;
static tp_bus_publication_t *pubs[TP_BUS_MAX_IMAGES];

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "bus-capacity");
    tp_assert_ok(tp_bus_init(&bus, dir));
    snprintf(stream_dir, sizeof(stream_dir), "%s/%d", dir, STREAM);
    memset(pubs, 0, sizeof(pubs));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < TP_BUS_MAX_IMAGES; i++)
    {
        tp_bus_publication_close(pubs[i]);
    }
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

static int count_logs(void)
{
    DIR *d = opendir(stream_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
    {
        size_t len = strlen(e->d_name);
        n += len > 4 && strcmp(e->d_name + len - 4, ".log") == 0;
    }
    closedir(d);
    return n;
}

static void fill_stream(void)
{
    for (int i = 0; i < TP_BUS_MAX_IMAGES; i++)
    {
        tp_assert_ok(tp_bus_publication_open(&pubs[i], bus, SMALL, STREAM, false));
    }
}

static void test_a_full_stream_leaks_no_log(void **state)
{
    (void)state;
    /* 64 publications per stream used to be the limit, and each refused open left its log file behind for good:
     * client churn filled /dev/shm with them. */
    fill_stream();
    assert_int_equal(count_logs(), TP_BUS_MAX_IMAGES);
    tp_bus_publication_t *extra = NULL;
    tp_assert_fails_with(tp_bus_publication_open(&extra, bus, SMALL, STREAM, false), "2048 publications");
    assert_int_equal(count_logs(), TP_BUS_MAX_IMAGES);
    /* Nobody subscribes: a closed image and its log go at once instead of lingering. */
    for (int i = 0; i < TP_BUS_MAX_IMAGES; i++)
    {
        tp_bus_publication_close(pubs[i]);
        pubs[i] = NULL;
    }
    assert_int_equal(count_logs(), 0);
}

static void test_closed_images_are_reclaimed_under_pressure(void **state)
{
    (void)state;
    /* With a subscriber, a closed image lingers so it can be drained; a new publication that finds the stream full
     * takes the oldest closed entry instead of failing. */
    tp_bus_subscription_t *sub = NULL;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, SMALL, STREAM, NULL, NULL, NULL));
    fill_stream();
    tp_bus_publication_close(pubs[7]);
    pubs[7] = NULL;
    assert_int_equal(count_logs(), TP_BUS_MAX_IMAGES);
    tp_assert_ok(tp_bus_publication_open(&pubs[7], bus, SMALL, STREAM, false));
    assert_int_equal(count_logs(), TP_BUS_MAX_IMAGES);
    tp_bus_subscription_close(sub);
}

/* Write a log header for session `session` written by pid. */
static void write_log(int32_t session, pid_t pid, uint64_t start_time)
{
    char path[700];
    tp_bus_log_path(path, sizeof(path), stream_dir, session);
    tp_bus_log_header_t h;
    memset(&h, 0, sizeof(h));
    h.magic = TP_BUS_LOG_MAGIC;
    h.version = TP_BUS_LAYOUT_VERSION;
    h.stream_id = STREAM;
    h.session_id = session;
    h.pid = pid;
    h.pid_start_time = start_time;
    h.capacity = 65536;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, &h, sizeof(h)), sizeof(h));
    close(fd);
}

static void test_orphaned_logs_are_reaped(void **state)
{
    (void)state;
    /* A process killed between creating its log and registering it left a file nothing names. */
    tp_bus_subscription_t *sub = NULL;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, SMALL, STREAM, NULL, NULL, NULL));
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
    {
        _exit(0);
    }
    uint64_t child_start = tp_proc_start_time(child);
    assert_int_equal(waitpid(child, NULL, 0), child);
    write_log(0x0badcafe, child, child_start);
    write_log(0x0051f00d, getpid(), tp_proc_start_time(getpid())); /* alive: about to register, say */
    assert_int_equal(count_logs(), 2);
    tp_assert_ok(tp_bus_publication_open(&pubs[0], bus, SMALL, STREAM, false)); /* any open reaps */
    assert_int_equal(count_logs(), 2); /* ours, and the live writer's */
    char path[700];
    tp_bus_log_path(path, sizeof(path), stream_dir, 0x0badcafe);
    assert_int_not_equal(access(path, F_OK), 0);
    tp_bus_log_path(path, sizeof(path), stream_dir, 0x0051f00d);
    assert_int_equal(access(path, F_OK), 0);
    tp_bus_subscription_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_full_stream_leaks_no_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_images_are_reclaimed_under_pressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphaned_logs_are_reaped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
