/*
 * Path containment (wire spec 15.21a.5) against hostile paths and files. Every check runs on every open: the
 * library has no trusted mode to skip them (W-15.21a.5-9 below, at the escapes).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"
#include "tp_test_util.h"

static char root[512];
static char base[600];
static tp_shm_allowed_dirs_t allowed;

static void touch(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "data", 4), 4);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(root, sizeof(root), "path");
    snprintf(base, sizeof(base), "%s/base", root);
    mkdir(base, 0700);
    touch(base, "good.pool");
    touch(root, "outside.pool");
    char p[1024];
    snprintf(p, sizeof(p), "%s/base2", root);
    mkdir(p, 0700);
    touch(p, "sibling.pool");
    const char *dirs[] = { base };
    tp_assert_ok(tp_shm_allowed_dirs_init(&allowed, dirs, 1));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_shm_allowed_dirs_fini(&allowed);
    tp_test_remove_dir(root);
    return 0;
}

static int open_path(const char *dir, const char *suffix)
{
    char p[2048];
    snprintf(p, sizeof(p), "%s%s", dir, suffix);
    int fd = tp_shm_open_contained(&allowed, p, O_RDONLY);
    if (fd >= 0)
    {
        close(fd);
        return 0;
    }
    return -1;
}

/* covers: W-15.21a.5-2 */
static void test_good_file_opens(void **state)
{
    (void)state;
    tp_assert_ok(open_path(base, "/good.pool"));
    /* a path that wanders but resolves inside is judged by its canonical form */
    tp_assert_ok(open_path(base, "/../base/./good.pool"));
}

/* covers: W-15.21a.5-1, W-15.21a.5-4, W-15.21a.5-8, W-15.21a.5-9 */
static void test_escapes_are_refused(void **state)
{
    (void)state;
    tp_assert_fails_with(open_path(base, "/../outside.pool"), "outside every allowed base directory");
    assert_int_equal(tp_errcode(), TP_E_CONTAINMENT);
    /* "/x/base2" starts with "/x/base" as a string but is not inside it */
    tp_assert_fails_with(open_path(base, "2/sibling.pool"), "outside every allowed base directory");
    tp_assert_fails_with(open_path("relative/good.pool", ""), "not absolute");
    tp_assert_fails_with(open_path(base, "/missing.pool"), "cannot be resolved");
    /* the base itself is not a region */
    tp_assert_fails_with(open_path(base, ""), "outside every allowed base directory");
    /* a symlink inside the base pointing out */
    char link[1024];
    char target[1024];
    snprintf(link, sizeof(link), "%s/escape.pool", base);
    snprintf(target, sizeof(target), "%s/outside.pool", root);
    assert_int_equal(symlink(target, link), 0);
    tp_assert_fails_with(open_path(base, "/escape.pool"), "outside every allowed base directory");
}

/* covers: W-15.21a.5-5, W-15.21a.5-8 */
static void test_special_files_are_refused(void **state)
{
    (void)state;
    char p[1024];
    snprintf(p, sizeof(p), "%s/fifo.pool", base);
    assert_int_equal(mkfifo(p, 0600), 0);
    tp_assert_fails_with(open_path(base, "/fifo.pool"), "is a FIFO");
    snprintf(p, sizeof(p), "%s/dir.pool", base);
    mkdir(p, 0700);
    tp_assert_fails_with(open_path(base, "/dir.pool"), "is a directory");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/sock.pool", base);
    if (n > 0 && (size_t)n < sizeof(addr.sun_path) && bind(s, (struct sockaddr *)&addr, sizeof(addr)) == 0)
    {
        tp_assert_fails_with(open_path(base, "/sock.pool"), "is a socket");
    }
    close(s);
    /* a character device, with /dev as the allowed base */
    tp_shm_allowed_dirs_t dev;
    const char *dirs[] = { "/dev" };
    tp_assert_ok(tp_shm_allowed_dirs_init(&dev, dirs, 1));
    tp_assert_fails_with(tp_shm_open_contained(&dev, "/dev/null", O_RDONLY), "character device");
    tp_shm_allowed_dirs_fini(&dev);
}

/* covers: W-15.21a.5-6 */
static void test_symlink_swapped_in_after_validation(void **state)
{
    (void)state;
    char p[1024];
    char canonical[TP_PATH_MAX];
    struct stat st;
    touch(base, "swap.pool");
    snprintf(p, sizeof(p), "%s/swap.pool", base);
    tp_assert_ok(tp_shm_path_check(&allowed, p, canonical, &st));
    /* between the check and the open, an attacker replaces the file by a symlink to a file outside */
    char tmp[1024];
    char target[1024];
    snprintf(tmp, sizeof(tmp), "%s/swap.tmp", base);
    snprintf(target, sizeof(target), "%s/outside.pool", root);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, p), 0);
    tp_assert_fails_with(tp_shm_open_validated(canonical, &st, O_RDONLY), "symlink appeared");
    assert_int_equal(tp_errcode(), TP_E_CONTAINMENT);
}

/* covers: W-15.21a.5-6 */
static void test_file_replaced_after_validation(void **state)
{
    (void)state;
    char p[1024];
    char canonical[TP_PATH_MAX];
    struct stat st;
    touch(base, "replace.pool");
    snprintf(p, sizeof(p), "%s/replace.pool", base);
    tp_assert_ok(tp_shm_path_check(&allowed, p, canonical, &st));
    touch(base, "replace.tmp");
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s/replace.tmp", base);
    assert_int_equal(rename(tmp, p), 0); /* same name, different inode */
    tp_assert_fails_with(tp_shm_open_validated(canonical, &st, O_RDONLY), "changed between validation and open");
}

/* covers: W-15.21a.5-6, W-15.21a.5-7 */
static void test_symlink_in_a_parent_is_not_followed_at_open(void **state)
{
    (void)state;
    /* The canonical path has no symlinks; if a directory on it becomes one, the no-follow open refuses it. */
    char dir[1024];
    char p[2048];
    char canonical[TP_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/sub", base);
    mkdir(dir, 0700);
    touch(dir, "x.pool");
    snprintf(p, sizeof(p), "%s/x.pool", dir);
    tp_assert_ok(tp_shm_path_check(&allowed, p, canonical, &st));
    char moved[2048];
    snprintf(moved, sizeof(moved), "%s/sub.real", base);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(symlink(moved, dir), 0);
    int fd = tp_shm_open_validated(canonical, &st, O_RDONLY);
    if (fd >= 0)
    {
        /* Kernels without openat2 only refuse a symlink in the last component; the identity check still holds
         * (same inode), so the file opened is the validated one. */
        struct stat opened;
        fstat(fd, &opened);
        assert_true(opened.st_ino == st.st_ino);
        close(fd);
    }
    else
    {
        tp_test_assert_contains(tp_errmsg(), "symlink");
    }
}

/* covers: W-15.21a.5-3 */
static void test_allowed_dirs_are_canonical(void **state)
{
    (void)state;
    tp_shm_allowed_dirs_t a;
    const char *relative[] = { "relative/dir" };
    tp_assert_fails_with(tp_shm_allowed_dirs_init(&a, relative, 1), "not an absolute path");
    const char *missing[] = { "/nonexistent/tp-base" };
    tp_assert_fails_with(tp_shm_allowed_dirs_init(&a, missing, 1), "cannot be resolved");
    char link[1024];
    snprintf(link, sizeof(link), "%s/base-link", root);
    assert_int_equal(symlink(base, link), 0);
    const char *linked[] = { link };
    tp_assert_ok(tp_shm_allowed_dirs_init(&a, linked, 1));
    char resolved[TP_PATH_MAX];
    assert_non_null(realpath(base, resolved));
    assert_string_equal(a.dirs[0], resolved); /* resolved once, at init */
    tp_shm_allowed_dirs_fini(&a);
    tp_shm_allowed_dirs_t none = { 0 };
    tp_assert_fails_with(tp_shm_open_contained(&none, "/dev/shm/x", O_RDONLY), "no allowed base directory");
}

/* covers: W-15.22-5 */
static void test_hugetlbfs_required(void **state)
{
    (void)state;
    char p[1024];
    snprintf(p, sizeof(p), "%s/good.pool", base);
    int fd = tp_shm_open_contained(&allowed, p, O_RDONLY);
    assert_true(fd >= 0);
    tp_assert_fails_with(tp_shm_fd_is_hugetlbfs(fd), "not on hugetlbfs");
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file_opens),
        cmocka_unit_test(test_escapes_are_refused),
        cmocka_unit_test(test_special_files_are_refused),
        cmocka_unit_test(test_symlink_swapped_in_after_validation),
        cmocka_unit_test(test_file_replaced_after_validation),
        cmocka_unit_test(test_symlink_in_a_parent_is_not_followed_at_open),
        cmocka_unit_test(test_allowed_dirs_are_canonical),
        cmocka_unit_test(test_hugetlbfs_required),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
