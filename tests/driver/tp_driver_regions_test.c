/*
 * The driver's regions on disk, with the embedded-driver fixture: canonical paths and modes, one driver per control
 * stream and namespace, activity timestamps, epoch GC (newest kept, mapped epochs spared, stale streams trimmed at
 * startup), restarts above old epochs, and region failures answered INTERNAL_ERROR with capped messages.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_layout.h"
#include "shm/tp_shm_path.h"
#include "tp_driver_fixture.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

/* Squat on the directory names of the stream's next `count` epochs with files. */
static void squat_next_epochs(const char *base_dir, const char *name_space, uint64_t epoch, int count)
{
    char user[128], squat[2048];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    for (int i = 1; i <= count; i++)
    {
        snprintf(squat, sizeof(squat), "%s/%s/%s/%d/%llu", base_dir, user, name_space, CAM,
            (unsigned long long)(epoch + (uint64_t)i));
        FILE *f = fopen(squat, "w");
        assert_non_null(f);
        fclose(f);
    }
}

static void test_squatted_epoch_names_are_skipped(void **state)
{
    (void)state;
    /* A file on the next epoch's name (anyone who can write the stream directory can leave one) used to block every
     * producer attach of the stream. It is skipped, never opened or followed, and left as it was. */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    squat_next_epochs(F.shm_dir, "default", rc.epoch, 3);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    assert_int_equal(r.epoch, rc.epoch + 4);
    char user[128], squat[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(squat, sizeof(squat), "%s/%s/default/%d/%llu", F.shm_dir, user, CAM, (unsigned long long)rc.epoch + 1);
    struct stat st;
    tp_assert_ok(lstat(squat, &st));
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 0);
}

static void test_internal_error_when_regions_cannot_be_made(void **state)
{
    (void)state;
    /* covers: D-4.6-5 */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    squat_next_epochs(F.shm_dir, "default", rc.epoch, 64); /* more than the driver skips */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach(&p, &r);
    assert_int_equal(r.code, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR);
    tp_test_assert_contains(r.error_message, "new epoch");
    assert_false(r.has_lease_id);
    /* Nothing was half-granted: once a name is free the producer gets the stream. */
    char user[128], squat[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(squat, sizeof(squat), "%s/%s/default/%d/%llu", F.shm_dir, user, CAM, (unsigned long long)rc.epoch + 9);
    unlink(squat);
    p.client_id = F.next_client_id++;
    attach_ok(&p, &r);
    assert_int_equal(r.epoch, rc.epoch + 9);
}

static void test_long_error_messages_are_capped(void **state)
{
    (void)state;
    /* The INTERNAL_ERROR above quotes the failure's trail, which names the epoch directory more than once: with a
     * long base directory and namespace it passes 1024 bytes. covers: D-4.2-27, D-4.2-28s */
    teardown(NULL);
    fixture_context("long");
    char deep[1024];
    snprintf(deep, sizeof(deep), "%s", F.shm_dir);
    while (strlen(deep) < 240)
    {
        strcat(deep, "/a-long-directory-name");
    }
    tp_assert_ok(tp_fs_mkdirs(F.shm_dir, deep, 0700));
    char name_space[256];
    memset(name_space, 'n', 250);
    name_space[250] = '\0';
    set("shm.base_dir", deep);
    set("shm.namespace", name_space);
    fixture_start();
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    /* Every epoch name the driver would try is taken: the failure and its context both name long paths. */
    squat_next_epochs(deep, name_space, rc.epoch, 64);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach(&p, &r);
    assert_int_equal(r.code, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR);
    assert_int_equal(r.error_message_length, 1024);
}

static void test_activity_timestamps_are_refreshed(void **state)
{
    (void)state;
    /* covers: D-3-5, W-7.1-3 (the driver refreshes it for the regions it owns) */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    tp_region_uri_t uri;
    tp_assert_ok(tp_region_uri_parse(&uri, rc.pools[0].region_uri, strlen(rc.pools[0].region_uri)));
    const char *dirs[] = { F.shm_dir };
    tp_shm_allowed_dirs_t allowed;
    tp_assert_ok(tp_shm_allowed_dirs_init(&allowed, dirs, 1));
    tp_superblock_t expected = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION,
        .epoch = rc.epoch, .stream_id = CAM, .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = 1, .nslots = 8,
        .slot_bytes = 4096, .stride_bytes = 4096 };
    tp_shm_region_t region;
    memset(&region, 0, sizeof(region));
    tp_assert_ok(tp_shm_region_map(&region, &allowed, &uri, &expected, false));
    uint64_t first = tp_superblock_activity(region.base);
    /* Two announces later (100 ms period) the timestamp has moved on. */
    size_t from = tp_driver_proxy_event_count(F.proxy);
    for (int i = 0; i < 2; i++)
    {
        tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, CAM, &from, NULL, TIMEOUT_NS));
    }
    uint64_t later = tp_superblock_activity(region.base);
    assert_true(later > first);
    assert_true(later <= (uint64_t)tp_clock_monotonic_ns());
    tp_shm_region_close(&region);
    tp_shm_allowed_dirs_fini(&allowed);
}

static void test_regions_layout_and_modes(void **state)
{
    (void)state;
    /* The canonical layout of wire spec 15.21a.3, in the configured namespace. covers: D-15-1s, W-15.21a.3-4 */
    teardown(NULL);
    fixture_context("modes");
    set("shm.permissions_mode", "640"); /* covers: W-15.10-1s */
    set("shm.namespace", "lab");
    fixture_start();
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    char user[128], epoch_dir[1024], expected_uri[1200];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(epoch_dir, sizeof(epoch_dir), "%s/%s/lab/%d/%llu", F.shm_dir, user, CAM, (unsigned long long)r.epoch);
    snprintf(expected_uri, sizeof(expected_uri), "shm:file?path=%s/header.ring", epoch_dir);
    assert_string_equal(r.header_region_uri, expected_uri);
    snprintf(expected_uri, sizeof(expected_uri), "shm:file?path=%s/2.pool", epoch_dir);
    assert_string_equal(r.pools[1].region_uri, expected_uri);
    struct stat st;
    char path[1100];
    snprintf(path, sizeof(path), "%s/header.ring", epoch_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(stat(epoch_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
    /* A second driver on the same control stream and bus refuses to start. covers: D-2.1-1 */
    tp_driver_t *second = NULL;
    tp_assert_fails_with(tp_driver_init(&second, F.ctx), "already serves control stream 1000");
    assert_null(second);
    /* ... and so does one on another control stream that would manage the same SHM namespace. */
    set("driver.control_stream_id", "1500");
    tp_assert_fails_with(tp_driver_init(&second, F.ctx), "already serves SHM namespace 'lab'");
    assert_null(second);
    /* Drivers sharing a host keep apart by control stream and namespace (or base directory): a second one with
     * both its own serves beside the first. covers: D-15-2s */
    set("shm.namespace", "lab2");
    tp_assert_ok(tp_driver_init(&second, F.ctx));
    tp_driver_close(second);
}

static void test_default_modes_keep_other_users_out(void **state)
{
    (void)state;
    /* With the default modes nobody but the user (and, for the files, the user's group) gets in: the per-user
     * directory, the stream and epoch directories and the region files give other users nothing, and the per-user
     * directory not even to the group. covers: W-15.21a.6-1s */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    char user[128], path[1200];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", F.shm_dir, user);
    tp_assert_ok(stat(path, &st));
    assert_int_equal(st.st_mode & 0077, 0);
    const char *below[] = { "default", "default/10", NULL };
    for (int i = 0; below[i] != NULL; i++)
    {
        snprintf(path, sizeof(path), "%s/%s/%s", F.shm_dir, user, below[i]);
        tp_assert_ok(stat(path, &st));
        assert_int_equal(st.st_mode & 0007, 0);
    }
    snprintf(path, sizeof(path), "%s/%s/default/%d/%llu/header.ring", F.shm_dir, user, CAM,
        (unsigned long long)r.epoch);
    tp_assert_ok(stat(path, &st));
    assert_int_equal(st.st_mode & 0007, 0);
}

static int count_epoch_dirs(uint32_t stream_id)
{
    char user[128], dir[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(dir, sizeof(dir), "%s/%s/default/%u", F.shm_dir, user, stream_id);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
    {
        n += e->d_name[0] != '.';
    }
    closedir(dp);
    return n;
}

static void test_epoch_gc_keeps_the_newest(void **state)
{
    (void)state;
    teardown(NULL);
    fixture_context("gc");
    set("policies.epoch_gc_enabled", "true");
    set("policies.epoch_gc_keep", "2");
    set("policies.epoch_gc_min_age_ns", "0");
    fixture_start();
    uint64_t last_epoch = 0;
    for (int i = 0; i < 5; i++)
    {
        tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
        tp_attach_result_t r;
        attach_ok(&p, &r);
        assert_true(r.epoch > last_epoch);
        last_epoch = r.epoch;
        int32_t code;
        tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code,
            NULL, 0, TIMEOUT_NS));
        assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
    }
    driver_stopped();
    assert_int_equal(count_epoch_dirs(CAM), 2);
    assert_int_equal(count_epoch_dirs(IMU), 1);
}

static bool epoch_dir_exists(uint32_t stream_id, uint64_t epoch)
{
    char user[128], dir[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(dir, sizeof(dir), "%s/%s/default/%u/%llu", F.shm_dir, user, stream_id, (unsigned long long)epoch);
    return access(dir, F_OK) == 0;
}

static void producer_cycle(void)
{
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    int32_t code;
    tp_assert_ok(tp_driver_proxy_detach(F.proxy, r.lease_id, CAM, p.client_id, TP_DRIVER_ROLE_PRODUCER, &code, NULL,
        0, TIMEOUT_NS));
    assert_int_equal(code, TP_DRIVER_RESPONSE_CODE_OK);
}

/* Map the header ring of an attach answer read-only, as a consumer does. */
static void map_header_of(const tp_attach_result_t *rc, tp_shm_region_t *region)
{
    tp_region_uri_t uri;
    tp_assert_ok(tp_region_uri_parse(&uri, rc->header_region_uri, strlen(rc->header_region_uri)));
    const char *dirs[] = { F.shm_dir };
    tp_shm_allowed_dirs_t allowed;
    tp_assert_ok(tp_shm_allowed_dirs_init(&allowed, dirs, 1));
    tp_superblock_t expected = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION,
        .epoch = rc->epoch, .stream_id = CAM, .region_type = TP_REGION_HEADER_RING, .nslots = 8, .slot_bytes = 256 };
    memset(region, 0, sizeof(*region));
    tp_assert_ok(tp_shm_region_map(region, &allowed, &uri, &expected, false));
    tp_shm_allowed_dirs_fini(&allowed);
}

static void test_epoch_gc_spares_mapped_epochs(void **state)
{
    (void)state;
    teardown(NULL);
    fixture_context("gc-mapped");
    set("policies.epoch_gc_keep", "1");
    set("policies.epoch_gc_min_age_ns", "0");
    fixture_start();
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    /* This process maps the consumer's epoch, as a consumer that has not remapped yet would. */
    tp_shm_region_t region;
    map_header_of(&rc, &region);
    producer_cycle();
    producer_cycle();
    assert_true(epoch_dir_exists(CAM, rc.epoch)); /* mapped: kept beyond epoch_gc_keep */
    assert_false(epoch_dir_exists(CAM, rc.epoch + 1)); /* not mapped: removed */
    tp_shm_region_close(&region);
    producer_cycle();
    assert_false(epoch_dir_exists(CAM, rc.epoch));
}

static int64_t gc_now_ns;

static int64_t gc_clock(void *clientd)
{
    (void)clientd;
    return tp_load_acquire_i64(&gc_now_ns);
}

static void test_epoch_gc_sweeps_periodically(void **state)
{
    (void)state;
    /* An old epoch still mapped when the stream moved on is swept once nobody maps it, at the next periodic sweep
     * (policies.epoch_gc_interval_ms on the driver's clock), with no further epoch change. Removed only when no
     * live process maps it: stronger than "its activity is stale and its PIDs are gone".
     * covers: W-15.21a.7-1s */
    teardown(NULL);
    fixture_context("gc-sweep");
    set("policies.epoch_gc_keep", "1");
    set("policies.epoch_gc_min_age_ns", "0");
    set("policies.epoch_gc_interval_ms", "1000");
    tp_store_release_i64(&gc_now_ns, tp_clock_monotonic_ns());
    tp_assert_ok(tp_driver_context_set_clock(F.ctx, gc_clock, NULL));
    fixture_start();
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    tp_shm_region_t region;
    map_header_of(&rc, &region);
    producer_cycle();
    assert_true(epoch_dir_exists(CAM, rc.epoch)); /* mapped at the change: kept */
    tp_shm_region_close(&region);
    tp_store_release_i64(&gc_now_ns, tp_load_acquire_i64(&gc_now_ns) + 999 * TP_NS_PER_MS);
    usleep(100 * 1000); /* duty cycles run: no sweep is due yet */
    assert_true(epoch_dir_exists(CAM, rc.epoch));
    tp_store_release_i64(&gc_now_ns, tp_load_acquire_i64(&gc_now_ns) + TP_NS_PER_MS);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (epoch_dir_exists(CAM, rc.epoch))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(1000);
    }
}

static void test_startup_gc_trims_stale_streams(void **state)
{
    (void)state;
    /* An earlier run left five epochs of a dynamic stream 20001; GC on startup keeps the newest two. */
    teardown(NULL);
    fixture_context("gc-startup");
    set("policies.epoch_gc_on_startup", "true");
    char user[128], dir[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    for (int epoch = 1; epoch <= 5; epoch++)
    {
        snprintf(dir, sizeof(dir), "%s/%s/default/20001/%d", F.shm_dir, user, epoch);
        tp_assert_ok(tp_fs_mkdirs(F.shm_dir, dir, 0700));
    }
    fixture_start();
    for (int epoch = 1; epoch <= 5; epoch++)
    {
        assert_true(epoch_dir_exists(20001, (uint64_t)epoch) == (epoch >= 4));
    }
    /* When the stream comes back, its epochs continue above the kept ones. covers: D-10-3 */
    tp_attach_params_t a = params(20001, TP_DRIVER_ROLE_CONSUMER);
    a.publish_mode = TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE;
    tp_attach_result_t r;
    attach_ok(&a, &r);
    assert_int_equal(r.epoch, 6);
}

static void test_restart_starts_above_old_epochs(void **state)
{
    (void)state;
    /* A restart recreates the files, here with a changed layout (16 slots instead of 8): new epoch, new layout.
     * covers: D-10-3, D-6-3, D-6-4, W-15.2-1, D-14-1 (recreated, not reused: policies.reuse_existing_shm false) */
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    tp_driver_proxy_close(F.proxy);
    F.proxy = NULL;
    tp_driver_close(F.driver);
    F.driver = NULL;
    F.ctx->config.profiles[0].header_nslots = 16;
    tp_assert_ok(tp_driver_init(&F.driver, F.ctx));
    tp_assert_ok(tp_driver_start(F.driver));
    tp_assert_ok(tp_driver_proxy_open(&F.proxy, F.bus, "aeron:ipc", 1000));
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    assert_true(rc.epoch > r.epoch);
    assert_int_equal(rc.header_nslots, 16);
}

static int count_files(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)st;
    (void)ftw;
    return flag == FTW_F ? 1 : 0;
}

static void test_cleanup_on_exit_keeps_epochs_rising(void **state)
{
    (void)state;
    /* Files deleted on a clean exit and made again at the next start: nothing of the regions is left in between,
     * and the next driver's epochs still begin above the last one. covers: D-14-1 */
    teardown(NULL);
    fixture_context("cleanup");
    set("policies.cleanup_shm_on_exit", "true");
    fixture_start();
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    tp_driver_proxy_close(F.proxy);
    F.proxy = NULL;
    tp_driver_close(F.driver);
    F.driver = NULL;
    char user[128], ns[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(ns, sizeof(ns), "%s/%s/default/%d", F.shm_dir, user, CAM);
    assert_int_equal(nftw(ns, count_files, 8, FTW_PHYS), 0); /* no file under the stream: regions gone */
    tp_assert_ok(tp_driver_init(&F.driver, F.ctx));
    tp_assert_ok(tp_driver_start(F.driver));
    tp_assert_ok(tp_driver_proxy_open(&F.proxy, F.bus, "aeron:ipc", 1000));
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    assert_true(rc.epoch > r.epoch);
}

static void test_truncated_region_retires_the_epoch(void **state)
{
    (void)state;
    /* `truncate -s 0 header.ring` under a running driver killed it with SIGBUS in its activity refresh. Now it sees
     * the file shrank, retires the epoch and announces a new one, and keeps serving. */
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    char user[128], path[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(path, sizeof(path), "%s/%s/default/%d/%llu/header.ring", F.shm_dir, user, CAM,
        (unsigned long long)rc.epoch);
    size_t from = tp_driver_proxy_event_count(F.proxy);
    tp_assert_ok(truncate(path, 0));
    uint64_t next = wait_announce_epoch_above(CAM, rc.epoch, &from, NULL);
    assert_true(next > rc.epoch);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t r;
    attach_ok(&p, &r);
    assert_true(r.epoch > next - 1);
    assert_true(driver_stopped()->counters.epochs_damaged >= 1);
}

static void test_full_filesystem_refuses_the_attach(void **state)
{
    (void)state;
    /* With prefault_shm = false the space was never reserved: on a full /dev/shm the producer died writing its
     * first frames and the driver died writing the next epoch's superblock. Now the space is reserved at creation,
     * prefaulted or not, and a full filesystem refuses the attach with what was needed, where. A 1200 KiB tmpfs
     * holds the two streams' first epochs (556 KiB each) and not a third. */
    teardown(NULL);
    fixture_context("full");
    set("policies.prefault_shm", "false");
    if (geteuid() != 0 || mount("tmpfs", F.shm_dir, "tmpfs", 0, "size=1200k,mode=0700") < 0)
    {
        fixture_start();
        print_message("skipped: mounting a small tmpfs needs root (and a kernel that allows it here)\n");
        skip();
    }
    fixture_start();
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    attach_refused(&p, TP_DRIVER_RESPONSE_CODE_INTERNAL_ERROR, "no space left on device: ");
    /* It keeps serving, and the half-made epoch left nothing behind. */
    tp_attach_params_t c = params(IMU, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t r;
    attach_ok(&c, &r);
    assert_false(epoch_dir_exists(CAM, 2));
    umount2(F.shm_dir, MNT_DETACH); /* the driver's mappings keep it alive until teardown closes them */
}

static void test_stray_epoch_names_are_not_epochs(void **state)
{
    (void)state;
    /* Only canonical decimal directory names are epochs: with strtoull, "-1" read as 2^64 - 1 and the next epoch
     * wrapped to 0. The stream's newest real epoch is 3; every stray name beside it is ignored. covers: D-10-3 */
    teardown(NULL);
    fixture_context("stray");
    const char *names[] = { "3", "-1", "+5", "007", "18446744073709551616", "1e3", " 9", "4x" };
    char user[128], dir[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    {
        snprintf(dir, sizeof(dir), "%s/%s/default/%d/%s", F.shm_dir, user, CAM, names[i]);
        tp_assert_ok(tp_fs_mkdirs(F.shm_dir, dir, 0700));
    }
    fixture_start();
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    assert_int_equal(rc.epoch, 4);
}

static void test_epochs_never_wrap(void **state)
{
    (void)state;
    /* An epoch directory 2^64 - 1 on disk: the next epoch would wrap to 0, which nobody could tell from a fresh
     * stream. The stream is refused, with the reason, instead. covers: W-7.1-7 */
    teardown(NULL);
    fixture_context("wrap");
    char user[128], dir[1024];
    tp_assert_ok(tp_fs_user_dir_name(user, sizeof(user)));
    snprintf(dir, sizeof(dir), "%s/%s/default/%d/18446744073709551615", F.shm_dir, user, CAM);
    tp_assert_ok(tp_fs_mkdirs(F.shm_dir, dir, 0700));
    tp_assert_fails_with(tp_driver_init(&F.driver, F.ctx), "stream 10 has used every 64-bit epoch");
    assert_null(F.driver);
}

static void test_parse_number_is_canonical_decimal(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *bad[] = { "", "-1", "+5", "007", "00", "18446744073709551616", "1e3", " 1", "1 ", "0x10" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    {
        assert_int_equal(tp_shm_layout_parse_number(bad[i], &v), -1);
    }
    tp_assert_ok(tp_shm_layout_parse_number("0", &v));
    assert_int_equal(v, 0);
    tp_assert_ok(tp_shm_layout_parse_number("18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
    tp_assert_ok(tp_shm_layout_parse_number("10000", &v));
    assert_int_equal(v, 10000);
}

typedef struct announced
{
    uint64_t epoch_above;
    bool has_it;
    tp_wire_shm_pool_announce_t m;
    uint8_t copy[2048];
} announced_t;

static void on_announce(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    announced_t *a = clientd;
    tp_sbe_header_t h;
    if (a->has_it || length > sizeof(a->copy) || tp_sbe_header_read(&h, buffer, length) < 0 ||
        h.schema_id != TP_WIRE_SCHEMA_ID || h.template_id != TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID)
    {
        return;
    }
    memcpy(a->copy, buffer, length);
    tp_assert_ok(tp_wire_shm_pool_announce_decode(&a->m, a->copy, length));
    a->has_it = tp_wire_shm_pool_announce_stream_id(&a->m) == CAM &&
        tp_wire_shm_pool_announce_epoch(&a->m) > a->epoch_above;
}

static void copy_text(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    size_t n = b.length < capacity - 1 ? b.length : capacity - 1;
    memcpy(out, b.data, n);
    out[n] = '\0';
}

/* With a 60 s announce period, a producer's attach is announced at once (the period alone would take a minute),
 * by the driver, naming initialised regions by absolute paths, 256-byte header slots and the monotonic clock. */
static void test_announce_on_change(void **state)
{
    (void)state;
    /* covers: W-10.1.1-1, W-10.1.1-2, W-10.1.1-10, W-10.1-8, W-15.21a.4-1 */
    teardown(NULL);
    fixture_context("announce");
    set("policies.announce_period_ms", "60000");
    fixture_start();
    tp_bus_subscription_t *sub = NULL;
    tp_assert_ok(tp_bus_subscription_open(&sub, F.bus, F.driver->config.announce_channel,
        (int32_t)F.driver->config.announce_stream_id, NULL, NULL, NULL));
    tp_attach_params_t c = params(CAM, TP_DRIVER_ROLE_CONSUMER);
    tp_attach_result_t rc;
    attach_ok(&c, &rc);
    tp_attach_params_t p = params(CAM, TP_DRIVER_ROLE_PRODUCER);
    tp_attach_result_t rp;
    attach_ok(&p, &rp);
    assert_true(rp.epoch > rc.epoch);
    announced_t a = { .epoch_above = rc.epoch };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!a.has_it)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_bus_poll(sub, on_announce, &a, 16) == 0)
        {
            usleep(1000);
        }
    }
    assert_int_equal(tp_wire_shm_pool_announce_epoch(&a.m), rp.epoch);
    assert_int_equal(tp_wire_shm_pool_announce_header_slot_bytes(&a.m), 256);
    assert_int_equal(tp_wire_shm_pool_announce_announce_clock_domain(&a.m), TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    uint64_t stamp = tp_wire_shm_pool_announce_announce_timestamp_ns(&a.m);
    assert_true(stamp > 0 && stamp <= (uint64_t)tp_clock_monotonic_ns());
    char uri[1100];
    copy_text(uri, sizeof(uri), tp_wire_shm_pool_announce_header_region_uri(&a.m));
    assert_true(strncmp(uri, "shm:file?path=/", 15) == 0);
    tp_superblock_t expected = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION,
        .epoch = rp.epoch, .stream_id = CAM, .region_type = TP_REGION_HEADER_RING, .nslots = 8, .slot_bytes = 256 };
    map_region(uri, &expected);
    tp_wire_shm_pool_announce_payload_pools_t g;
    assert_int_equal(tp_wire_shm_pool_announce_payload_pools(&a.m, &g), 2);
    while (tp_wire_shm_pool_announce_payload_pools_next(&g))
    {
        copy_text(uri, sizeof(uri), tp_wire_shm_pool_announce_payload_pools_region_uri(&g));
        assert_true(strncmp(uri, "shm:file?path=/", 15) == 0);
        uint32_t stride = tp_wire_shm_pool_announce_payload_pools_stride_bytes(&g);
        tp_superblock_t pe = { .magic = TP_SUPERBLOCK_MAGIC, .layout_version = TP_LAYOUT_VERSION, .epoch = rp.epoch,
            .stream_id = CAM, .region_type = TP_REGION_PAYLOAD_POOL,
            .pool_id = tp_wire_shm_pool_announce_payload_pools_pool_id(&g), .nslots = 8, .slot_bytes = stride,
            .stride_bytes = stride };
        map_region(uri, &pe);
    }
    tp_bus_subscription_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_squatted_epoch_names_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_error_when_regions_cannot_be_made, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_error_messages_are_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activity_timestamps_are_refreshed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regions_layout_and_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_modes_keep_other_users_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_gc_keeps_the_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_gc_spares_mapped_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_gc_sweeps_periodically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_gc_trims_stale_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_starts_above_old_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_on_exit_keeps_epochs_rising, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stray_epoch_names_are_not_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_region_retires_the_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_filesystem_refuses_the_attach, setup, teardown),
        cmocka_unit_test(test_parse_number_is_canonical_decimal),
        cmocka_unit_test_setup_teardown(test_epochs_never_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_on_change, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
