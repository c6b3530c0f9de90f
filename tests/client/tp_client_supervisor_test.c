/*
 * The supervisor embedded in the driver (wire spec 10.5): it learns data source names from the metadata stream,
 * hears consumers' hellos and producers' and consumers' QoS, tells consumers matching a rule their mode in a
 * ConsumerConfig (a consumer told RATE_LIMITED then gates itself at its own max_rate_hz), and marks parties
 * stale when they go quiet; its view is in the driver's status file. A bad rule is a configuration error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_status.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_metadata.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define CAM 10
#define OTHER 11
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *pclient;
static tp_client_t *cclient;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-supervisor");
    char config[700], text[4096];
    snprintf(config, sizeof(config), "%s/driver.toml", F.dir);
    snprintf(text, sizeof(text),
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "[supervisor]\nenabled = true\nstale_after_ms = 200\n"
        "[[supervisor_rules]]\nstream_id = %d\ndata_source = \"camera-1\"\nmode = \"RATE_LIMITED\"\n"
        "payload_fallback_uri = \"bogus://nowhere\"\n"
        "[profiles.small]\nheader_nslots = 64\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"small\"\n[streams.other]\nstream_id = %d\nprofile = \"small\"\n",
        F.bus, F.shm, CAM, CAM, OTHER);
    write_file(config, text);
    tp_assert_ok(tp_driver_context_load_file(F.dctx, config));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.qos_period_ms", "20"));
    tp_assert_ok(tp_client_context_set(F.cctx, "client.metadata_period_ms", "20"));
    tp_assert_ok(tp_client_connect(&pclient, F.cctx));
    tp_assert_ok(tp_client_connect(&cclient, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(cclient));
    tp_assert_ok(tp_client_close(pclient));
    client_fixture_close(&F);
    return 0;
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)f;
    (*(int *)clientd)++;
}

static void run(tp_producer_t *p, tp_consumer_t *a, tp_consumer_t *b, int *na, int *nb)
{
    tp_producer_do_work(p);
    if (a != NULL)
    {
        tp_consumer_poll(a, on_frame, na, 64);
    }
    if (b != NULL)
    {
        tp_consumer_poll(b, on_frame, nb, 64);
    }
    usleep(500);
}

/* The driver's status file, once it mentions needle and (when not NULL) also (bounded). The file is rewritten
 * as the supervisor hears from each party: wait for one snapshot that has everything asked for. */
static char *status_with2(tp_producer_t *p, tp_consumer_t *a, tp_consumer_t *b, const char *needle, const char *also)
{
    char path[1024];
    tp_driver_status_path(path, sizeof(path), F.bus, 1000);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    int na = 0, nb = 0;
    for (;;)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        size_t n;
        if (access(path, R_OK) == 0)
        {
            char *text = (char *)tp_test_read_file(path, &n);
            if (strstr(text, needle) != NULL && (also == NULL || strstr(text, also) != NULL))
            {
                return text;
            }
            free(text);
        }
        run(p, a, b, &na, &nb);
    }
}

static char *status_with(tp_producer_t *p, tp_consumer_t *a, tp_consumer_t *b, const char *needle)
{
    return status_with2(p, a, b, needle, NULL);
}

static void test_rules_liveness_and_status(void **state)
{
    (void)state;
    /* covers: W-11-3, W-10.1.3-2 (the rule's fallback URI has an unknown scheme: the consumer goes on
     * reading shared memory) */
    tp_producer_t *p = NULL;
    tp_producer_t *q = NULL;
    tp_assert_ok(tp_producer_attach(&p, pclient, CAM, TIMEOUT_NS));
    tp_assert_ok(tp_producer_attach(&q, pclient, OTHER, TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(p), "camera-1", "front"));
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.max_rate_hz = 1; /* asks for STREAM; its rate counts once it is told RATE_LIMITED */
    tp_consumer_t *c = NULL;
    tp_consumer_t *d = NULL;
    tp_assert_ok(tp_consumer_open(&c, cclient, CAM, &o, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_open(&d, cclient, OTHER, &o, TIMEOUT_NS));
    int nc = 0, nd = 0;
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_consumer_mode(c) != TP_CONSUMER_RATE_LIMITED)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        run(p, c, d, &nc, &nd);
        tp_producer_do_work(q);
    }
    /* The other stream has no matching rule: its consumer keeps its own mode. */
    assert_int_equal(tp_consumer_mode(d), TP_CONSUMER_STREAM);
    /* Told RATE_LIMITED at its own 1 Hz: a burst of 30 lets one frame through. */
    uint8_t frame[32] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    for (int i = 0; i < 30; i++)
    {
        assert_true(tp_producer_offer_frame(p, frame, sizeof(frame), &t, 0, 0) >= 0);
    }
    tp_consumer_counters_t k = { 0 };
    deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    do
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        run(p, c, NULL, &nc, NULL);
        tp_consumer_counters(c, &k);
    } while (k.frames + k.rate_limited < 30);
    assert_int_equal(k.frames, 1);
    assert_int_equal(k.rate_limited, 29);
    /* The status file shows the supervisor's view: the producers from their QoS, the consumers from hello and QoS,
     * the rule applied to the camera's consumer. */
    char *text = status_with2(p, c, d, "\"role\":\"PRODUCER\"", "\"rule\":0}");
    assert_non_null(strstr(text, "\"supervisor\":{\"rules\":1,"));
    assert_non_null(strstr(text, "\"role\":\"CONSUMER\""));
    assert_non_null(strstr(text, "\"rule\":0}"));
    free(text);
    /* and `tp driver status` sums it up. */
    char cmd[1024];
    static char out[1 << 16];
    snprintf(cmd, sizeof(cmd), "%s driver status --bus-dir '%s'", TP_TOOL, F.bus);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    if (strstr(out, "supervisor: 1 rule(s); ") == NULL || strstr(out, "2 consumer(s) (1 under a rule)") == NULL)
    {
        fail_msg("tp driver status printed: %s", out);
    }
    /* A consumer that leaves goes stale after 200 ms of silence. */
    tp_consumer_close(d);
    text = status_with(p, c, NULL, "\"stale\":true");
    free(text);
    tp_consumer_close(c);
    tp_producer_close(q);
    tp_producer_close(p);
}

static void test_bad_rule_is_a_config_error(void **state)
{
    (void)state;
    char d2[512], config[700], text[1024];
    tp_test_make_dir(d2, sizeof(d2), "client-supervisor-bad");
    snprintf(config, sizeof(config), "%s/driver.toml", d2);
    snprintf(text, sizeof(text),
        "[supervisor]\nenabled = true\n[[supervisor_rules]]\nmode = \"FAST\"\n"
        "[profiles.small]\nheader_nslots = 64\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n");
    write_file(config, text);
    tp_driver_context_t *ctx = NULL;
    tp_assert_ok(tp_driver_context_init(&ctx));
    tp_assert_fails_with(tp_driver_context_load_file(ctx, config), "is STREAM or RATE_LIMITED, not 'FAST'");
    tp_driver_context_close(ctx);
    tp_test_remove_dir(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rules_liveness_and_status, setup, teardown),
        cmocka_unit_test(test_bad_rule_is_a_config_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
