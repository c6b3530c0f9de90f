/*
 * Fuzz: the driver's handling of control messages (attach, detach, keepalive, shutdown request, ConsumerHello
 * and anything else), straight into its dispatcher. One driver lives for the whole run in a private directory, with
 * leases that expire after 10 ms so the lease table keeps turning over; every input is followed by a duty cycle.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_fs.h"
#include "driver/tp_driver_internal.h"
#include "tp_fuzz.h"

static tp_driver_t *driver;
static char dir[256];

static void fuzz_cleanup(void)
{
    tp_driver_close(driver);
    driver = NULL;
    tp_fs_remove_tree(dir);
}

static void fuzz_init(void)
{
    snprintf(dir, sizeof(dir), "%s/tp-fuzz-control-%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
        (int)getpid());
    char bus[300], shm[300];
    snprintf(bus, sizeof(bus), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    tp_driver_context_t *ctx = NULL;
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { 4096 };
    if (mkdir(dir, 0700) < 0 || mkdir(shm, 0700) < 0 || tp_driver_context_init(&ctx) < 0 ||
        tp_driver_context_set(ctx, "driver.bus_dir", bus) < 0 || tp_driver_context_set(ctx, "shm.base_dir", shm) < 0 ||
        tp_driver_context_set(ctx, "policies.prefault_shm", "false") < 0 ||
        tp_driver_context_set(ctx, "policies.allow_dynamic_streams", "true") < 0 ||
        tp_driver_context_set(ctx, "driver.stream_id_range", "20000-20003") < 0 ||
        tp_driver_context_set(ctx, "driver.descriptor_stream_id_range", "31000-31002") < 0 ||
        tp_driver_context_set(ctx, "driver.control_stream_id_range", "32000-32002") < 0 ||
        tp_driver_context_set(ctx, "policies.lease_keepalive_interval_ms", "10") < 0 ||
        tp_driver_context_set(ctx, "policies.lease_expiry_grace_intervals", "1") < 0 ||
        tp_driver_context_set(ctx, "policies.epoch_gc_keep", "1") < 0 ||
        tp_driver_context_set(ctx, "policies.epoch_gc_min_age_ns", "0") < 0 ||
        tp_driver_context_set(ctx, "policies.shutdown_token", "fuzz-token") < 0 ||
        tp_driver_context_set(ctx, "policies.shutdown_timeout_ms", "0") < 0 ||
        tp_driver_context_add_profile(ctx, "p", 4, ids, strides, 1) < 0 ||
        tp_driver_context_add_stream(ctx, "s", 10, "p") < 0 || tp_driver_init(&driver, ctx) < 0)
    {
        fprintf(stderr, "tp_fuzz_control: cannot start the driver: %s\n", tp_errmsg());
        tp_fs_remove_tree(dir);
        exit(1);
    }
    tp_driver_context_close(ctx);
    static bool has_atexit;
    if (!has_atexit)
    {
        atexit(fuzz_cleanup);
        has_atexit = true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (driver == NULL)
    {
        fuzz_init();
    }
    tp_driver_on_message(driver, data, size);
    if (tp_driver_do_work(driver) < 0)
    {
        abort();
    }
    if (tp_driver_is_shutdown(driver))
    {
        /* A valid shutdown request got through: start over with a fresh driver. */
        fuzz_cleanup();
    }
    return 0;
}
