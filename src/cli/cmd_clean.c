/*
 * `tp clean [--dry-run] [--base DIR]`: remove what dead drivers and dead `tp` processes left in shared memory,
 * never what a live process maps or a live driver owns.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_proc.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_layout.h"

typedef struct clean
{
    const char *base;
    bool is_dry_run;
    uint64_t bytes;
    uint32_t removed;
    uint32_t kept_mapped;
    uint32_t kept_live;
} clean_t;

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tp clean [--dry-run] [--base DIR]\n\n"
        "Remove what dead processes left in shared memory under DIR [/dev/shm]:\n"
        "  - in each SHM namespace of tensorpool-$USER whose driver is not running (nobody holds its driver.lock),\n"
        "    the region files of every epoch no live process maps; the newest epoch directory of each stream stays,\n"
        "    empty, so that a driver started later still numbers its epochs above it;\n"
        "  - tp-bench-PID (also tp-bench-udp-PID, tp-bench-attach-PID) and tp-test-PID-* directories of\n"
        "    processes that no longer run.\n"
        "A namespace whose driver runs is left to that driver's epoch GC. --dry-run lists what would go, with sizes.\n\n"
        "example:\n"
        "  tp clean --dry-run\n\n"
        "exit status: 0 done; 2 bad arguments.\n");
}

static uint64_t tree_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
    {
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
    {
        return (uint64_t)st.st_blocks * 512;
    }
    DIR *d = opendir(path);
    uint64_t total = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
    {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
        {
            char child[TP_PATH_MAX + 300];
            snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            total += tree_bytes(child);
        }
    }
    if (d != NULL)
    {
        closedir(d);
    }
    return total;
}

/* Remove path (a tree), or say it would be. keep_dir: remove what is inside, keep the directory. */
static void remove_one(clean_t *c, const char *path, bool keep_dir)
{
    uint64_t bytes = tree_bytes(path);
    printf("%s %s%s (%.1f MiB)\n", c->is_dry_run ? "would remove" : "removed", path, keep_dir ? "/*" : "",
        (double)bytes / (1024.0 * 1024.0));
    if (!c->is_dry_run)
    {
        tp_fs_remove_tree_below(c->base, path);
        if (keep_dir)
        {
            mkdir(path, 0700);
        }
    }
    c->bytes += bytes;
    c->removed++;
}

/* true if a live process holds the record lock of a driver's lock file. */
static bool driver_runs(const char *lock_path)
{
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
    {
        return false;
    }
    struct flock probe = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    bool held = fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
    close(fd);
    return held;
}

static int cmp_epoch_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

static void clean_stream(clean_t *c, const char *stream_dir)
{
    uint64_t epochs[1024];
    size_t n = 0;
    DIR *d = opendir(stream_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL && n < sizeof(epochs) / sizeof(epochs[0]))
    {
        uint64_t v;
        if (tp_shm_layout_parse_number(e->d_name, &v) == 0)
        {
            epochs[n++] = v;
        }
    }
    if (d != NULL)
    {
        closedir(d);
    }
    qsort(epochs, n, sizeof(epochs[0]), cmp_epoch_desc);
    for (size_t i = 0; i < n; i++)
    {
        char epoch_dir[TP_PATH_MAX + 900];
        snprintf(epoch_dir, sizeof(epoch_dir), "%s/%" PRIu64, stream_dir, epochs[i]);
        if (tp_proc_dir_is_mapped(epoch_dir))
        {
            printf("kept %s: a live process maps it\n", epoch_dir);
            c->kept_mapped++;
        }
        else if (i > 0 || tree_bytes(epoch_dir) > 0)
        {
            remove_one(c, epoch_dir, i == 0); /* the newest stays, empty: epochs keep rising */
        }
    }
}

static void clean_namespace(clean_t *c, const char *ns_dir)
{
    char lock[TP_PATH_MAX + 350];
    snprintf(lock, sizeof(lock), "%s/driver.lock", ns_dir);
    if (driver_runs(lock))
    {
        printf("kept %s: its driver runs\n", ns_dir);
        c->kept_live++;
        return;
    }
    DIR *d = opendir(ns_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
    {
        uint64_t stream;
        if (tp_shm_layout_parse_number(e->d_name, &stream) == 0)
        {
            char stream_dir[TP_PATH_MAX + 600];
            snprintf(stream_dir, sizeof(stream_dir), "%s/%s", ns_dir, e->d_name);
            clean_stream(c, stream_dir);
        }
    }
    if (d != NULL)
    {
        closedir(d);
    }
}

/* tp-bench-PID, tp-bench-udp-PID, tp-bench-attach-PID, tp-test-PID-NAME: the pid, or 0 when name is none of
 * those. */
static pid_t scratch_pid(const char *name)
{
    const char *digits = strncmp(name, "tp-bench-udp-", 13) == 0      ? name + 13
                         : strncmp(name, "tp-bench-attach-", 16) == 0 ? name + 16
                         : strncmp(name, "tp-bench-", 9) == 0         ? name + 9
                         : strncmp(name, "tp-test-", 8) == 0          ? name + 8
                                                                      : NULL;
    if (digits == NULL || *digits < '1' || *digits > '9')
    {
        return 0;
    }
    char *end = NULL;
    long pid = strtol(digits, &end, 10);
    return (*end == '\0' || *end == '-') && pid > 0 ? (pid_t)pid : 0;
}

int tp_cmd_clean(int argc, char **argv)
{
    clean_t c = { .base = "/dev/shm" };
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(argv[i], "--dry-run") == 0)
        {
            c.is_dry_run = true;
        }
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
        {
            c.base = argv[++i];
        }
        else
        {
            usage(stderr);
            return tp_cli_fail(TP_EXIT_USAGE, "clean", "unknown argument '%s'", argv[i]);
        }
    }
    char user[256], user_dir[TP_PATH_MAX];
    if (tp_fs_user_dir_name(user, sizeof(user)) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "clean", "%s", tp_errmsg());
    }
    snprintf(user_dir, sizeof(user_dir), "%s/%s", c.base, user);
    DIR *d = opendir(user_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
    {
        char ns_dir[TP_PATH_MAX + 300];
        snprintf(ns_dir, sizeof(ns_dir), "%s/%s", user_dir, e->d_name);
        struct stat st;
        if (e->d_name[0] != '.' && lstat(ns_dir, &st) == 0 && S_ISDIR(st.st_mode) && strcmp(e->d_name, "bus") != 0)
        {
            clean_namespace(&c, ns_dir);
        }
    }
    if (d != NULL)
    {
        closedir(d);
    }
    d = opendir(c.base);
    while (d != NULL && (e = readdir(d)) != NULL)
    {
        pid_t pid = scratch_pid(e->d_name);
        if (pid != 0 && !tp_proc_is_alive(pid, 0))
        {
            char path[TP_PATH_MAX + 300];
            snprintf(path, sizeof(path), "%s/%s", c.base, e->d_name);
            remove_one(&c, path, false);
        }
    }
    if (d != NULL)
    {
        closedir(d);
    }
    printf("%s %" PRIu32 " path(s), %.1f MiB; kept %" PRIu32 " mapped epoch(s) and %" PRIu32
        " namespace(s) of running drivers\n", c.is_dry_run ? "would remove" : "removed", c.removed,
        (double)c.bytes / (1024.0 * 1024.0), c.kept_mapped, c.kept_live);
    return TP_EXIT_OK;
}
