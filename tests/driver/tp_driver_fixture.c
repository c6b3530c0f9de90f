/* The embedded-driver fixture; see tp_driver_fixture.h. */
#include "tp_driver_fixture.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"
#include "tp_sbe_driver.h"
#include "tp_test_util.h"

fixture_t F;

void set(const char *key, const char *value)
{
    tp_assert_ok(tp_driver_context_set(F.ctx, key, value));
}

/* A context for a driver in F.dir: two static streams, dynamic ids 20000-20001, token "tok". */
void fixture_context(const char *name)
{
    memset(&F, 0, sizeof(F));
    tp_test_make_dir(F.dir, sizeof(F.dir), name);
    snprintf(F.bus_dir, sizeof(F.bus_dir), "%s/bus", F.dir);
    snprintf(F.shm_dir, sizeof(F.shm_dir), "%s/shm", F.dir);
    assert_int_equal(mkdir(F.shm_dir, 0700), 0);
    tp_assert_ok(tp_driver_context_init(&F.ctx));
    set("driver.bus_dir", F.bus_dir);
    set("shm.base_dir", F.shm_dir);
    set("driver.stream_id_range", "20000-20001");
    set("policies.allow_dynamic_streams", "true");
    set("policies.announce_period_ms", "100");
    set("policies.shutdown_token", "tok");
    set("policies.shutdown_timeout_ms", "50");
    const uint16_t ids[] = { 1, 2 };
    const uint32_t strides[] = { 4096, 65536 };
    tp_assert_ok(tp_driver_context_add_profile(F.ctx, "small", 8, ids, strides, 2));
    tp_assert_ok(tp_driver_context_add_stream(F.ctx, "cam", CAM, "small"));
    tp_assert_ok(tp_driver_context_add_stream(F.ctx, "imu", IMU, "small"));
    F.next_client_id = 100;
}

void fixture_start(void)
{
    tp_assert_ok(tp_driver_init(&F.driver, F.ctx));
    tp_assert_ok(tp_driver_start(F.driver));
    tp_assert_ok(tp_bus_init(&F.bus, F.bus_dir));
    tp_assert_ok(tp_driver_proxy_open(&F.proxy, F.bus, "aeron:ipc", 1000));
}

int setup(void **state)
{
    (void)state;
    fixture_context("driver");
    fixture_start();
    return 0;
}

int teardown(void **state)
{
    (void)state;
    tp_driver_proxy_close(F.proxy);
    tp_driver_close(F.driver);
    tp_bus_close(F.bus);
    tp_driver_context_close(F.ctx);
    tp_test_remove_dir(F.dir);
    return 0;
}

tp_attach_params_t params(uint32_t stream_id, uint8_t role)
{
    tp_attach_params_t p = { .stream_id = stream_id, .client_id = F.next_client_id++, .role = role,
        .expected_layout_version = 0, .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING,
        .require_hugepages = TP_DRIVER_HUGEPAGES_POLICY_UNSPECIFIED };
    return p;
}

void attach(const tp_attach_params_t *p, tp_attach_result_t *r)
{
    tp_assert_ok(tp_driver_proxy_attach(F.proxy, p, r, TIMEOUT_NS));
}

void attach_ok(const tp_attach_params_t *p, tp_attach_result_t *r)
{
    attach(p, r);
    if (r->code != TP_DRIVER_RESPONSE_CODE_OK)
    {
        print_error("attach refused (%d): %s\n", r->code, r->error_message);
    }
    assert_int_equal(r->code, TP_DRIVER_RESPONSE_CODE_OK);
}

void attach_refused(const tp_attach_params_t *p, int32_t code, const char *why)
{
    tp_attach_result_t r;
    attach(p, &r);
    assert_int_equal(r.code, code);
    /* covers: D-4.2-10, D-4.2-14s, D-4.2-3, D-4.2-11s */
    assert_false(r.has_lease_id || r.has_stream_id || r.has_epoch || r.has_layout_version || r.has_header_nslots ||
        r.has_header_slot_bytes || r.has_node_id || r.has_lease_expiry);
    assert_int_equal(r.pool_count, 0);
    assert_true(r.error_message_length > 0 && r.error_message_length <= 1024);
    tp_test_assert_contains(r.error_message, why);
}

tp_driver_t *driver_stopped(void)
{
    tp_assert_ok(tp_driver_stop(F.driver)); /* the counters are read while nothing runs */
    return F.driver;
}

/* Map a region the way a client must: through the containment rules, validating the superblock. */
void map_region(const char *uri_text, const tp_superblock_t *expected)
{
    tp_region_uri_t uri;
    tp_assert_ok(tp_region_uri_parse(&uri, uri_text, strlen(uri_text)));
    const char *dirs[] = { F.shm_dir };
    tp_shm_allowed_dirs_t allowed;
    tp_assert_ok(tp_shm_allowed_dirs_init(&allowed, dirs, 1));
    tp_shm_region_t region;
    memset(&region, 0, sizeof(region));
    tp_assert_ok(tp_shm_region_map(&region, &allowed, &uri, expected, false));
    tp_shm_region_close(&region);
    tp_shm_allowed_dirs_fini(&allowed);
}

uint64_t wait_announce_epoch_above(uint32_t stream_id, uint64_t epoch, size_t *from, uint32_t *producer_id)
{
    tp_control_event_t e;
    for (;;)
    {
        tp_assert_ok(tp_driver_proxy_await_event(F.proxy, TP_CONTROL_EVENT_ANNOUNCE, 0, stream_id, from, &e,
            TIMEOUT_NS));
        if (e.epoch > epoch)
        {
            if (producer_id != NULL)
            {
                *producer_id = e.client_id;
            }
            return e.epoch;
        }
    }
}
