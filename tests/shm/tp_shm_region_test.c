/*
 * Regions: canonical layout, creation with modes, superblock contents, mapping with validation, hostile files.
 */
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_fs.h"
#include "shm/tp_shm_layout.h"
#include "shm/tp_shm_region.h"
#include "tp_test_util.h"

static char root[512];
static tp_shm_allowed_dirs_t allowed;

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(root, sizeof(root), "region");
    const char *dirs[] = { root };
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

static tp_superblock_t ring_sb(uint64_t epoch, uint32_t nslots)
{
    tp_superblock_t sb = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION, .epoch = epoch,
        .stream_id = 10000, .region_type = TP_REGION_HEADER_RING, .pool_id = 0, .nslots = nslots,
        .slot_bytes = TP_HEADER_SLOT_BYTES, .stride_bytes = 0 };
    return sb;
}

static tp_superblock_t pool_sb(uint64_t epoch, uint16_t pool_id, uint32_t nslots, uint32_t stride)
{
    tp_superblock_t sb = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION, .epoch = epoch,
        .stream_id = 10000, .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = pool_id, .nslots = nslots,
        .slot_bytes = stride, .stride_bytes = stride };
    return sb;
}

static void uri_for(tp_region_uri_t *u, const char *path)
{
    char text[TP_PATH_MAX + 64];
    tp_assert_ok(tp_region_uri_format(text, sizeof(text), path, false));
    tp_assert_ok(tp_region_uri_parse(u, text, strlen(text)));
}

/* covers: W-15.21a.3-1, W-15.21a.3-2, W-15.21a.3-3, W-15.21a.3-5 */
static void test_canonical_layout(void **state)
{
    (void)state;
    char dir[TP_PATH_MAX];
    tp_assert_ok(tp_shm_layout_epoch_dir(dir, sizeof(dir), "/dev/shm/", "lab1", 10000, 7));
    char user[300];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    struct passwd *pw = getpwuid(geteuid());
    char expect_user[300];
    snprintf(expect_user, sizeof(expect_user), "tensorpool-%s", pw != NULL ? pw->pw_name : "");
    if (pw != NULL)
    {
        assert_string_equal(user, expect_user); /* the effective user name */
    }
    char expect[TP_PATH_MAX];
    snprintf(expect, sizeof(expect), "/dev/shm/%s/lab1/10000/7", user);
    assert_string_equal(dir, expect);
    char p[TP_PATH_MAX];
    tp_assert_ok(tp_shm_layout_header_path(p, sizeof(p), dir));
    snprintf(expect, sizeof(expect), "/dev/shm/%s/lab1/10000/7/header.ring", user);
    assert_string_equal(p, expect);
    tp_assert_ok(tp_shm_layout_pool_path(p, sizeof(p), dir, 3));
    snprintf(expect, sizeof(expect), "/dev/shm/%s/lab1/10000/7/3.pool", user);
    assert_string_equal(p, expect);
    tp_assert_fails_with(tp_shm_layout_epoch_dir(dir, sizeof(dir), "/dev/shm", "../etc", 1, 1), "namespace");
    tp_assert_fails_with(tp_shm_layout_epoch_dir(dir, sizeof(dir), "/dev/shm", "a/b", 1, 1), "namespace");
    tp_assert_fails_with(tp_shm_layout_epoch_dir(dir, sizeof(dir), "dev/shm", "ok", 1, 1), "not absolute");
    /* user names are sanitised so they cannot leave the base directory */
    char out[64];
    tp_fs_sanitize_component("../../etc", out, sizeof(out));
    assert_null(strchr(out, '/'));
    tp_fs_sanitize_component("..", out, sizeof(out));
    assert_string_equal(out, "_");
    tp_fs_sanitize_component("al ice\n", out, sizeof(out));
    assert_string_equal(out, "al_ice_");
}

/* covers: W-7.1-1, W-7.1-5, W-7.1-8, W-6-1, W-8.1-1 */
static void test_create_writes_superblock_and_modes(void **state)
{
    (void)state;
    char dir[TP_PATH_MAX];
    tp_assert_ok(tp_shm_layout_epoch_dir(dir, sizeof(dir), root, "default", 10000, 1));
    tp_assert_ok(tp_fs_mkdirs(root, dir, 0750));
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    char path[TP_PATH_MAX];
    tp_assert_ok(tp_shm_layout_header_path(path, sizeof(path), dir));
    tp_superblock_t sb = ring_sb(1, 8);
    tp_shm_region_t r;
    tp_shm_create_opts_t opts = { .file_mode = 0640, .prefault = true };
    tp_assert_ok(tp_shm_region_create(&r, path, &sb, &opts));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_size, 64 + 8 * 256);
    assert_memory_equal(r.base, "1MHSLPOT", 8); /* the u64 magic, little-endian */
    tp_superblock_t back;
    tp_superblock_read(r.base, &back);
    assert_int_equal(back.epoch, 1);
    assert_int_equal(back.pool_id, 0);
    assert_int_equal(back.pid, (uint64_t)getpid());
    assert_true(back.start_timestamp_ns > 0);
    tp_superblock_set_activity(r.base, 12345);
    assert_int_equal(tp_superblock_activity(r.base), 12345);
    /* existing files are never clobbered unless asked */
    tp_shm_region_t again;
    tp_assert_fails_with(tp_shm_region_create(&again, path, &sb, &opts), "File exists");
    opts.replace_existing = true;
    tp_assert_ok(tp_shm_region_create(&again, path, &sb, &opts));
    tp_shm_region_close(&again);
    tp_shm_region_close(&r);
    tp_shm_region_close(&r); /* closing twice is harmless */
}

/* covers: W-8.1-2, W-15.22-7, W-15.22-8, W-7.1-8 */
static void test_invalid_shapes_are_refused(void **state)
{
    (void)state;
    char path[TP_PATH_MAX];
    snprintf(path, sizeof(path), "%s/bad.pool", root);
    tp_shm_region_t r;
    tp_shm_create_opts_t opts = { .file_mode = 0600 };
    tp_superblock_t sb = pool_sb(1, 1, 6, 4096);
    tp_assert_fails_with(tp_shm_region_create(&r, path, &sb, &opts), "nslots 6");
    sb = pool_sb(1, 1, 8, 96);
    tp_assert_fails_with(tp_shm_region_create(&r, path, &sb, &opts), "stride_bytes 96");
    sb = pool_sb(1, 1, 8, 32);
    tp_assert_fails_with(tp_shm_region_create(&r, path, &sb, &opts), "stride_bytes 32");
    sb = ring_sb(1, 8);
    sb.pool_id = 2;
    tp_assert_fails_with(tp_shm_region_create(&r, path, &sb, &opts), "pool_id 0");
    assert_true(tp_shm_stride_is_valid(64));
    assert_true(tp_shm_stride_is_valid(4u << 20));
    assert_false(tp_shm_stride_is_valid(192));
    assert_false(tp_shm_nslots_is_valid(0));
}

/* covers: W-7.1-2, W-7.1-6, W-7.1-9, W-15.1-1, W-15.1-2, W-15.22-10, W-9-1 */
static void test_map_validates_every_field(void **state)
{
    (void)state;
    char path[TP_PATH_MAX];
    snprintf(path, sizeof(path), "%s/1.pool", root);
    tp_superblock_t sb = pool_sb(5, 1, 4, 1024);
    tp_shm_region_t w;
    tp_shm_create_opts_t opts = { .file_mode = 0600, .replace_existing = true };
    tp_assert_ok(tp_shm_region_create(&w, path, &sb, &opts));
    tp_region_uri_t uri;
    uri_for(&uri, path);
    tp_shm_region_t r;
    tp_assert_ok(tp_shm_region_map(&r, &allowed, &uri, &sb, false));
    assert_int_equal(r.length_bytes, 64 + 4 * 1024);
    /* slot k is at 64 + k * stride, in both mappings */
    w.base[64 + 3 * 1024] = 0x5A;
    assert_int_equal(r.base[64 + 3 * 1024], 0x5A);
    tp_shm_region_close(&r);

    struct
    {
        const char *field;
        tp_superblock_t expect;
    } cases[] = {
        { "epoch", pool_sb(6, 1, 4, 1024) },
        { "pool_id", pool_sb(5, 2, 4, 1024) },
        { "nslots", pool_sb(5, 1, 2, 1024) },
        { "slot_bytes", pool_sb(5, 1, 4, 512) },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &cases[i].expect, false), cases[i].field);
        assert_null(r.base); /* nothing stays mapped */
    }
    tp_superblock_t e = sb;
    e.stride_bytes = 512;
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &e, false), "stride_bytes");
    e = sb;
    e.stream_id = 10001;
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &e, false), "stream_id");
    e = sb;
    e.layout_version = 2;
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &e, false), "layout_version");
    e = sb;
    e.region_type = TP_REGION_HEADER_RING;
    e.slot_bytes = 256;
    e.pool_id = 0;
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &e, false), "region_type");

    /* wrong magic: e.g. the ASCII string written instead of the u64 */
    memcpy(w.base, "TPOLSHM1", 8);
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &sb, false), "magic");
    tp_shm_region_close(&w);
}

/* covers: W-15.22-10, W-15.22-7 */
static void test_short_file_is_refused(void **state)
{
    (void)state;
    char path[TP_PATH_MAX];
    snprintf(path, sizeof(path), "%s/short.pool", root);
    tp_superblock_t sb = pool_sb(1, 1, 8, 4096);
    tp_shm_region_t w;
    tp_shm_create_opts_t opts = { .file_mode = 0600, .replace_existing = true };
    tp_assert_ok(tp_shm_region_create(&w, path, &sb, &opts));
    tp_shm_region_close(&w);
    assert_int_equal(truncate(path, 64 + 4096 * 7), 0);
    tp_region_uri_t uri;
    uri_for(&uri, path);
    tp_shm_region_t r;
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &sb, false), "shorter than the");
    assert_int_equal(truncate(path, 10), 0);
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &sb, false), "shorter than the");
    /* and an announce promising an impossible layout is refused before anything is opened */
    tp_superblock_t bad = pool_sb(1, 1, 8, 100);
    tp_assert_fails_with(tp_shm_region_map(&r, &allowed, &uri, &bad, false), "stride_bytes 100");
}

static void test_mkdirs_refuses_symlinked_components(void **state)
{
    (void)state;
    char link[TP_PATH_MAX];
    snprintf(link, sizeof(link), "%s/linked", root);
    assert_int_equal(symlink("/tmp", link), 0);
    char target[TP_PATH_MAX];
    snprintf(target, sizeof(target), "%s/linked/tp-should-not-exist", root);
    tp_assert_fails_with(tp_fs_mkdirs(root, target, 0700), "symlink");
    tp_assert_fails_with(tp_fs_mkdirs(root, "/etc/tp-x", 0700), "not below base directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_layout),
        cmocka_unit_test(test_create_writes_superblock_and_modes),
        cmocka_unit_test(test_invalid_shapes_are_refused),
        cmocka_unit_test(test_map_validates_every_field),
        cmocka_unit_test(test_short_file_is_refused),
        cmocka_unit_test(test_mkdirs_refuses_symlinked_components),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
