#include "tp_client_fixture.h"

#include <stdio.h>
#include <sys/stat.h>

#include "tp_test_util.h"

void client_fixture_prepare(client_fixture_t *f, const char *name)
{
    tp_test_make_dir(f->dir, sizeof(f->dir), name);
    snprintf(f->bus, sizeof(f->bus), "%s/bus", f->dir);
    snprintf(f->shm, sizeof(f->shm), "%s/shm", f->dir);
    assert_int_equal(mkdir(f->shm, 0700), 0);
    f->driver = NULL;
    tp_assert_ok(tp_driver_context_init(&f->dctx));
    tp_assert_ok(tp_driver_context_set(f->dctx, "driver.bus_dir", f->bus));
    tp_assert_ok(tp_driver_context_set(f->dctx, "shm.base_dir", f->shm));
    tp_assert_ok(tp_driver_context_set(f->dctx, "policies.prefault_shm", "false"));
    tp_assert_ok(tp_client_context_init(&f->cctx));
    tp_assert_ok(tp_client_context_set(f->cctx, "client.bus_dir", f->bus));
    tp_assert_ok(tp_client_context_set(f->cctx, "client.allowed_base_dirs", f->shm));
}

void client_fixture_add_stream(client_fixture_t *f, const char *stream, uint32_t stream_id, const char *profile,
    uint32_t nslots, uint32_t stride)
{
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { stride };
    tp_assert_ok(tp_driver_context_add_profile(f->dctx, profile, nslots, ids, strides, 1));
    tp_assert_ok(tp_driver_context_add_stream(f->dctx, stream, stream_id, profile));
}

void client_fixture_start(client_fixture_t *f)
{
    tp_assert_ok(tp_driver_init(&f->driver, f->dctx));
    tp_assert_ok(tp_driver_start(f->driver));
}

void client_fixture_start_discovery(client_fixture_t *f, const char *name)
{
    client_fixture_prepare(f, name);
    tp_assert_ok(tp_driver_context_set(f->dctx, "driver.instance_id", "driver-a"));
    tp_assert_ok(tp_driver_context_set(f->dctx, "policies.announce_period_ms", "100"));
    client_fixture_add_stream(f, "cam", 10, "small", 16, 4096);
    tp_assert_ok(tp_driver_context_add_stream(f->dctx, "lidar", 11, "small"));
    client_fixture_start(f);
    tp_assert_ok(tp_client_context_set(f->cctx, "client.metadata_period_ms", "50"));
}

void client_fixture_close(client_fixture_t *f)
{
    tp_client_context_close(f->cctx);
    tp_driver_close(f->driver);
    f->driver = NULL;
    tp_driver_context_close(f->dctx);
    tp_test_remove_dir(f->dir);
}
