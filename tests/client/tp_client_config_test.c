/*
 * The client's configuration: explicit default endpoints and 1 Hz cadences, and client.mlock_shm pinning the
 * regions the client maps (with an embedded driver that pins nothing itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static void test_defaults(void **state)
{
    (void)state;
    /* Every endpoint has an explicit default, and the client's periodic messages (QosProducer, QosConsumer,
     * DataSourceAnnounce) go out at 1 Hz unless configured; the driver's announces and activity refresh are 1 Hz
     * too (tp_driver_config_test). covers: W-14-1s, W-15.11-1s */
    tp_client_context_t *ctx = NULL;
    tp_assert_ok(tp_client_context_init(&ctx));
    const tp_client_config_t *k = &ctx->config;
    assert_string_equal(k->control_channel, "aeron:ipc?term-length=4m");
    assert_int_equal(k->control_stream_id, 1000);
    assert_string_equal(k->descriptor_channel, "aeron:ipc?term-length=4m");
    assert_int_equal(k->descriptor_stream_id, 1100);
    assert_int_equal(k->qos_stream_id, 1200);
    assert_int_equal(k->metadata_stream_id, 1300);
    assert_int_equal(k->discovery_stream_id, 7000);
    assert_int_equal(k->discovery_response_stream_id, 7004);
    assert_int_equal(k->qos_period_ms, 1000);
    assert_int_equal(k->metadata_period_ms, 1000);
    assert_int_equal(k->announce_period_ms, 1000);
    assert_false(k->mlock_shm);
    tp_client_context_close(ctx);
}

/* This process's locked memory (VmLck), in bytes. */
static long locked_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
    {
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
        {
            break;
        }
    }
    fclose(f);
    assert_true(kb >= 0);
    return kb * 1024;
}

static void test_mlock_pins_the_client_mappings(void **state)
{
    (void)state;
    /* With client.mlock_shm the consumer's header ring and pool are locked while mapped (16 x 256 B + 16 x 4 KiB
     * and their superblocks), and unlocked with the mapping. covers: D-17-7s */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    print_message("skipped: the sanitizers make mlock a no-op, so nothing is locked to observe\n");
    return;
#endif
    client_fixture_t F;
    client_fixture_prepare(&F, "client-mlock");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 16, 4096);
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.mlock_shm", "true"));
    tp_client_t *client = NULL;
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    long before = locked_bytes();
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    long during = locked_bytes();
    assert_true(during - before >= 16 * 256 + 16 * 4096);
    tp_consumer_close(c);
    assert_true(locked_bytes() <= before);
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_mlock_pins_the_client_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
