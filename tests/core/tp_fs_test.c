/*
 * Directories we keep files in (wire spec 15.21a: paths and permissions): a directory another user made first, one
 * every user can write, or a symlink where a directory should be is refused with a reason; a tree is removed only
 * inside itself, even when a directory on the way was swapped for a symlink to somewhere else.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_fs.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

static char dir[512];

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "fs");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_test_remove_dir(dir);
    return 0;
}

static void test_squatted_directories_are_refused(void **state)
{
    (void)state;
    /* A pre-created tensorpool-$USER that every user can write: whoever made it controls what lives in it. */
    char squat[700], below[800];
    snprintf(squat, sizeof(squat), "%s/tensorpool-me", dir);
    snprintf(below, sizeof(below), "%s/default", squat);
    tp_assert_ok(mkdir(squat, 0700));
    tp_assert_ok(chmod(squat, 0777));
    tp_assert_fails_with(tp_fs_mkdirs(dir, below, 0700), "is writable by every user");
    /* Owned by another user (even with no write bits for others): not ours to use; the bus refuses it too. */
    tp_assert_ok(chmod(squat, 0755));
    if (geteuid() == 0)
    {
        char bus_dir[800];
        snprintf(bus_dir, sizeof(bus_dir), "%s/bus", squat);
        tp_assert_ok(mkdir(bus_dir, 0700));
        tp_assert_ok(chown(squat, 65534, 65534));
        tp_assert_ok(chown(bus_dir, 65534, 65534));
        tp_assert_fails_with(tp_fs_mkdirs(dir, below, 0700), "belongs to uid 65534");
        tp_bus_t *bus = NULL;
        tp_assert_fails_with(tp_bus_init(&bus, bus_dir), "belongs to uid 65534");
        tp_assert_ok(chown(squat, 0, 0));
    }
    else
    {
        print_message("the other-owner case needs root (chown); skipped\n");
    }
    /* A symlink where a directory should be. */
    char link_path[600];
    snprintf(link_path, sizeof(link_path), "%s/link", dir);
    tp_assert_ok(symlink(squat, link_path));
    snprintf(below, sizeof(below), "%s/default", link_path);
    tp_assert_fails_with(tp_fs_mkdirs(dir, below, 0700), "is a symlink");
    /* Ours, 0700 or group-shared 2770: fine. */
    snprintf(below, sizeof(below), "%s/default", squat);
    tp_assert_ok(tp_fs_mkdirs(dir, below, 02770));
}

static void test_removal_never_leaves_its_tree(void **state)
{
    (void)state;
    /* The driver's clean-up removes <base>/tensorpool-me/ns/10. Someone swapped ns for a symlink to a victim's
     * directory that also holds a 10: it must survive. */
    char victim[700], victim_file[800], ns[700], target[800], file[900];
    snprintf(victim, sizeof(victim), "%s/victim/10", dir);
    tp_assert_ok(tp_fs_mkdirs(dir, victim, 0700));
    snprintf(victim_file, sizeof(victim_file), "%s/precious", victim);
    FILE *f = fopen(victim_file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(ns, sizeof(ns), "%s/tensorpool-me/ns", dir);
    snprintf(target, sizeof(target), "%s/10", ns);
    tp_assert_ok(tp_fs_mkdirs(dir, target, 0700));
    tp_assert_ok(rmdir(target));
    tp_assert_ok(rmdir(ns));
    char victim_dir[700];
    snprintf(victim_dir, sizeof(victim_dir), "%s/victim", dir);
    tp_assert_ok(symlink(victim_dir, ns));
    tp_assert_fails_with(tp_fs_remove_tree_below(dir, target), "is not a plain directory");
    assert_int_equal(access(victim_file, F_OK), 0);
    /* A real tree below the root goes, whole. */
    tp_assert_ok(unlink(ns));
    tp_assert_ok(tp_fs_mkdirs(dir, target, 0700));
    snprintf(file, sizeof(file), "%s/header.ring", target);
    f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    tp_assert_ok(tp_fs_remove_tree_below(dir, target));
    assert_int_not_equal(access(target, F_OK), 0);
    assert_int_equal(access(ns, F_OK), 0);
    tp_assert_fails_with(tp_fs_remove_tree_below(ns, victim), "is not below");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_squatted_directories_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_never_leaves_its_tree, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
