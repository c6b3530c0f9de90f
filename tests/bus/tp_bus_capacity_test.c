/*
 * The IPC bus under crowds and churn: a stream takes as many publications as its registry was made for (configured
 * by its creator, adopted by everyone else), a refused one leaves no log behind, closed images are reclaimed at once
 * when nobody subscribes and under pressure when somebody does, and log files that no registry names and whose
 * writer is dead are removed by the next open.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_ipc.h"
#include "core/tp_proc.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

#define STREAM 1200
#define SMALL "aeron:ipc?term-length=64k"
#define SLOTS 64 /* this test's registries: made small by configuration, filled quickly */

static char dir[512];
static char stream_dir[600];
static tp_bus_t *bus;
static tp_bus_publication_t *pubs[SLOTS];

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "bus-capacity");
    tp_assert_ok(tp_bus_init(&bus, dir));
    tp_assert_ok(tp_bus_set_registry_slots(bus, SLOTS));
    snprintf(stream_dir, sizeof(stream_dir), "%s/%d", dir, STREAM);
    memset(pubs, 0, sizeof(pubs));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < SLOTS; i++)
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
    for (int i = 0; i < SLOTS; i++)
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
    assert_int_equal(count_logs(), SLOTS);
    tp_bus_publication_t *extra = NULL;
    tp_assert_fails_with(tp_bus_publication_open(&extra, bus, SMALL, STREAM, false), "64 publications");
    assert_int_equal(count_logs(), SLOTS);
    /* Nobody subscribes: a closed image and its log go at once instead of lingering. */
    for (int i = 0; i < SLOTS; i++)
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
    assert_int_equal(count_logs(), SLOTS);
    tp_assert_ok(tp_bus_publication_open(&pubs[7], bus, SMALL, STREAM, false));
    assert_int_equal(count_logs(), SLOTS);
    tp_bus_subscription_close(sub);
}

/* The registry's size is its creator's choice (TP_BUS_REGISTRY_SLOTS or tp_bus_set_registry_slots), and everyone
 * who opens it afterwards takes that size, whatever their own setting; bad settings and files that lie about their
 * size are refused with a message. */
static void test_registry_size_is_configured_by_its_creator(void **state)
{
    (void)state;
    tp_bus_publication_t *first = NULL;
    tp_assert_ok(tp_bus_publication_open(&first, bus, SMALL, STREAM, false)); /* creates it: 64 slots */
    char path[700];
    snprintf(path, sizeof(path), "%s/registry", stream_dir);
    struct stat st;
    tp_assert_ok(stat(path, &st));
    assert_int_equal((size_t)st.st_size, tp_bus_registry_bytes(SLOTS, SLOTS));
    /* Another process's setting (the environment: 100) makes its own new streams 100, adopts this one's 64. */
    setenv("TP_BUS_REGISTRY_SLOTS", "100", 1);
    tp_bus_t *other = NULL;
    tp_assert_ok(tp_bus_init(&other, dir));
    unsetenv("TP_BUS_REGISTRY_SLOTS");
    for (int i = 1; i < SLOTS; i++)
    {
        tp_assert_ok(tp_bus_publication_open(&pubs[i], other, SMALL, STREAM, false));
    }
    tp_bus_publication_t *extra = NULL;
    tp_assert_fails_with(tp_bus_publication_open(&extra, other, SMALL, STREAM, false), "64 publications");
    tp_bus_publication_t *elsewhere = NULL;
    tp_assert_ok(tp_bus_publication_open(&elsewhere, other, SMALL, STREAM + 1, false));
    snprintf(path, sizeof(path), "%s/%d/registry", dir, STREAM + 1);
    tp_assert_ok(stat(path, &st));
    assert_int_equal((size_t)st.st_size, tp_bus_registry_bytes(100, 100));
    tp_bus_publication_close(elsewhere);
    for (int i = 1; i < SLOTS; i++)
    {
        tp_bus_publication_close(pubs[i]);
        pubs[i] = NULL;
    }
    tp_bus_close(other);
    tp_bus_publication_close(first);
    /* Bad settings. */
    tp_assert_fails_with(tp_bus_set_registry_slots(bus, 8), "from 16 to 65536");
    setenv("TP_BUS_REGISTRY_SLOTS", "lots", 1);
    tp_assert_fails_with(tp_bus_init(&other, dir), "TP_BUS_REGISTRY_SLOTS='lots'");
    setenv("TP_BUS_REGISTRY_SLOTS", "70000", 1);
    tp_assert_fails_with(tp_bus_init(&other, dir), "from 16 to 65536");
    unsetenv("TP_BUS_REGISTRY_SLOTS");
    /* A registry whose header claims more entries than its file holds is refused, never mapped short. */
    snprintf(path, sizeof(path), "%s/registry", stream_dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint32_t lie = 65536;
    assert_int_equal(pwrite(fd, &lie, sizeof(lie), offsetof(tp_bus_registry_t, max_images)), (ssize_t)sizeof(lie));
    close(fd);
    tp_assert_fails_with(tp_bus_publication_open(&extra, bus, SMALL, STREAM, false), "is damaged");
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
        cmocka_unit_test_setup_teardown(test_registry_size_is_configured_by_its_creator, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
