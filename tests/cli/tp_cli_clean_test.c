/*
 * `tp clean` on a base directory made to look like what crashed processes leave: a namespace whose driver is dead
 * (three epochs of a stream, one epoch of another still mapped by this process), a namespace whose driver runs (a
 * child holds its lock), and scratch directories of a dead and of a live `tp` process. --dry-run changes nothing;
 * the real run removes only what no live process uses, and leaves each dead stream's newest epoch directory, empty.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_fs.h"
#include "tp_test_util.h"

static char dir[512];
static char base[600];
static char user_dir[1024];
static char out[1 << 16];

static void write_file(const char *path, size_t bytes)
{
    char parent[2048];
    snprintf(parent, sizeof(parent), "%s", path);
    *strrchr(parent, '/') = '\0';
    tp_assert_ok(tp_fs_mkdirs(dir, parent, 0700));
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < bytes; i++)
    {
        fputc('x', f);
    }
    fclose(f);
}

static bool exists(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    return access(path, F_OK) == 0;
}

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return pid;
}

/* A child holding the record lock of path, as a running driver does. */
static pid_t lock_holder(const char *path)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        int fd = open(path, O_RDWR | O_CREAT, 0600);
        struct flock lock = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        if (fd < 0 || fcntl(fd, F_SETLK, &lock) < 0 || write(ready[1], "1", 1) != 1)
        {
            _exit(1);
        }
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void test_clean(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-clean");
    snprintf(base, sizeof(base), "%s/base", dir);
    char user[256];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(user_dir, sizeof(user_dir), "%s/%s", base, user);
    char path[2048];
    for (int epoch = 1; epoch <= 3; epoch++)
    {
        snprintf(path, sizeof(path), "%s/dead/10/%d/header.ring", user_dir, epoch);
        write_file(path, 4096);
    }
    snprintf(path, sizeof(path), "%s/dead/11/5/1.pool", user_dir);
    write_file(path, 8192);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    void *mapped = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0); /* a consumer that has not let go */
    assert_true(mapped != MAP_FAILED);
    close(fd);
    snprintf(path, sizeof(path), "%s/live/10/1/header.ring", user_dir);
    write_file(path, 4096);
    snprintf(path, sizeof(path), "%s/live/driver.lock", user_dir);
    pid_t driver = lock_holder(path);
    pid_t gone = dead_pid();
    char dead_bench[64], dead_test[64], live_bench[64], dead_udp[64];
    snprintf(dead_bench, sizeof(dead_bench), "tp-bench-%d", (int)gone);
    snprintf(dead_test, sizeof(dead_test), "tp-test-%d-x", (int)gone);
    snprintf(dead_udp, sizeof(dead_udp), "tp-bench-udp-%d", (int)gone);
    snprintf(live_bench, sizeof(live_bench), "tp-bench-%d", (int)getpid());
    const char *scratch[] = { dead_bench, dead_test, live_bench, dead_udp };
    for (int i = 0; i < 4; i++)
    {
        snprintf(path, sizeof(path), "%s/%s/log", base, scratch[i]);
        write_file(path, 1000);
    }

    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s clean --dry-run --base '%s' 2>&1", TP_TOOL, base);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "would remove");
    assert_true(exists(dead_bench));
    snprintf(path, sizeof(path), "%s/dead/10/1", user);
    assert_true(exists(path));

    snprintf(cmd, sizeof(cmd), "%s clean --base '%s' 2>&1", TP_TOOL, base);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "its driver runs");
    tp_test_assert_contains(out, "a live process maps it");
    const struct
    {
        const char *rel;
        bool stays;
    } expect[] = {
        { "dead/10/1", false },
        { "dead/10/2", false },
        { "dead/10/3", true },              /* the newest epoch directory stays... */
        { "dead/10/3/header.ring", false }, /* ...empty */
        { "dead/11/5/1.pool", true },       /* mapped */
        { "live/10/1/header.ring", true },  /* its driver runs */
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
    {
        snprintf(path, sizeof(path), "%s/%s", user, expect[i].rel);
        if (exists(path) != expect[i].stays)
        {
            fail_msg("%s should %s\n%s", expect[i].rel, expect[i].stays ? "stay" : "be gone", out);
        }
    }
    assert_false(exists(dead_bench));
    assert_false(exists(dead_test));
    assert_false(exists(dead_udp));
    assert_true(exists(live_bench));
    kill(driver, SIGKILL);
    waitpid(driver, NULL, 0);
    munmap(mapped, 8192);
    tp_test_remove_dir(dir);
}

/* A `tp bench` ended by SIGTERM (as `timeout` ends it) stops its processes and threads and removes its files:
 * the bus bench's directory, and the embedded driver's namespace and bus of the frames bench. */
static void test_bench_removes_its_files_on_sigterm(void **state)
{
    (void)state;
    char user[256];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    const struct
    {
        const char *args;
        bool is_namespace; /* its files: an embedded driver's namespace, or /dev/shm/tp-bench-PID */
    } benches[] = {
        { "bench bus --seconds 3 --repeats 1 --round-trips 1000", false },
        { "bench frames --seconds 3 --repeats 1", true },
    };
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
    {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "exec %s %s >/dev/null 2>&1", TP_TOOL, benches[i].args);
        pid_t bench = tp_test_spawn(cmd);
        char bench_dir[512];
        if (benches[i].is_namespace)
        {
            snprintf(bench_dir, sizeof(bench_dir), "/dev/shm/%s/bench-%d", user, (int)bench);
        }
        else
        {
            snprintf(bench_dir, sizeof(bench_dir), "/dev/shm/tp-bench-%d", (int)bench);
        }
        for (int k = 0; k < 5000 && access(bench_dir, F_OK) != 0; k++)
        {
            usleep(2000);
        }
        assert_int_equal(access(bench_dir, F_OK), 0);
        usleep(300 * 1000); /* its processes or threads are running in it */
        kill(bench, SIGTERM);
        int status = 0;
        assert_int_equal(waitpid(bench, &status, 0), bench);
        if (!WIFEXITED(status) || access(bench_dir, F_OK) == 0)
        {
            fail_msg("tp %s: %s after SIGTERM, %s stays", benches[i].args, WIFEXITED(status) ? "exited" : "killed",
                bench_dir);
        }
    }
}

static void test_usage(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s clean --frobnicate 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "unknown argument '--frobnicate'");
    snprintf(cmd, sizeof(cmd), "%s clean --help 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "--dry-run");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_bench_removes_its_files_on_sigterm),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
