#include "tp_test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_fs.h"
#include "shm/tp_shm_layout.h"

void tp_test_assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL)
    {
        print_error("expected '%s' in: %s\n", needle, haystack != NULL ? haystack : "(null)");
        fail();
    }
}

bool tp_test_has_shared(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors", TP_SHARED_DIR);
    return access(path, R_OK) == 0;
}

int tp_test_shared_result(int rc)
{
    if (rc == 0 && !tp_test_has_shared())
    {
        fprintf(stderr, "some tests were skipped: %s/vectors is missing\n", TP_SHARED_DIR);
        return 77;
    }
    return rc;
}

uint8_t *tp_test_read_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
    {
        print_error("cannot open %s\n", path);
        fail();
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = 0;
    fclose(f);
    *length = (size_t)n;
    return data;
}

/* Every directory a test made, removed when the test program exits however its tests ended (a failed test skips
 * its own clean-up). Only by the process that made them: a forked child that exits must not remove them. */
#define TEST_DIRS_MAX 64
static char test_dirs[TEST_DIRS_MAX][512];
static int test_dir_count;
static pid_t test_dirs_owner;

static void remove_test_dirs(void)
{
    if (getpid() != test_dirs_owner)
    {
        return;
    }
    for (int i = 0; i < test_dir_count; i++)
    {
        tp_fs_remove_tree(test_dirs[i]);
    }
}

void tp_test_make_dir(char *out, size_t capacity, const char *name)
{
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(out, capacity, "%s/tp-test-%d-%s", root, (int)getpid(), name);
    tp_fs_remove_tree(out);
    assert_int_equal(mkdir(out, 0700), 0);
    if (test_dirs_owner == 0)
    {
        test_dirs_owner = getpid();
        atexit(remove_test_dirs);
    }
    bool is_known = false;
    for (int i = 0; i < test_dir_count && !is_known; i++)
    {
        is_known = strcmp(test_dirs[i], out) == 0;
    }
    if (!is_known && test_dir_count < TEST_DIRS_MAX)
    {
        snprintf(test_dirs[test_dir_count++], sizeof(test_dirs[0]), "%s", out);
    }
}

void tp_test_remove_dir(const char *path)
{
    tp_fs_remove_tree(path);
}

int tp_test_run(const char *command, char *out, size_t capacity)
{
    FILE *p = popen(command, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, capacity - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tp_test_config_load(tp_test_config_loader_t load, void *config, const char *name, const char *text,
    tp_config_report_t *r)
{
    tp_toml_value_t *doc = NULL;
    tp_assert_ok(tp_toml_parse(&doc, text, strlen(text), name));
    tp_config_report_init(r, name);
    int rc = load(config, doc, r);
    tp_toml_free(doc);
    return rc;
}

void tp_test_config_expect_error(tp_test_config_loader_t load, void *config, const char *name, const char *text,
    const char *needle)
{
    tp_config_report_t r;
    if (tp_test_config_load(load, config, name, text, &r) == 0)
    {
        print_error("accepted:\n%s\n", text);
        fail();
    }
    tp_test_assert_contains(tp_strbuf_cstr(&r.errors), needle);
    tp_config_report_fini(&r);
}

int tp_test_enter_multicast_netns(char *why, size_t capacity)
{
    if (geteuid() != 0)
    {
        snprintf(why, capacity, "making a network namespace needs root");
        return -1;
    }
    if (unshare(CLONE_NEWNET) < 0)
    {
        snprintf(why, capacity, "unshare(CLONE_NEWNET) failed: %s", strerror(errno));
        return -1;
    }
    /* A fresh namespace has only lo, down: bring it up, let it carry multicast, and route the groups to it. */
    if (system("ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo") != 0)
    {
        snprintf(why, capacity, "configuring lo for multicast with ip(8) failed (is iproute2 installed?)");
        return -1;
    }
    return 0;
}

#ifdef TP_TOOL
int tp_test_free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t n = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

int tp_test_spawn(const char *command)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int tp_test_start_driver_process(const char *config, const char *bus_dir)
{
    char status[4096];
    snprintf(status, sizeof(status), "%s/driver-1000.json", bus_dir);
    unlink(status);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TP_LOG_LEVEL", "30", 1);
        execl(TP_TOOL, TP_TOOL, "driver", config, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 5000 && access(status, R_OK) != 0; i++)
    {
        usleep(2000);
    }
    assert_int_equal(access(status, R_OK), 0);
    return pid;
}
#endif
