/*
 * Rate limiter configuration: required keys, forwarding never enabled with zero stream ids, rate inheritance.
 */
#include <stdio.h>
#include <string.h>

#include "ratelimit/tp_ratelimit_config.h"
#include "tp_test_util.h"

static tp_ratelimit_config_t config;
static const char *base = "[rate_limiter]\ninstance_id = \"r\"\ndescriptor_channel = \"aeron:ipc\"\n"
                          "descriptor_stream_id = 1100\n";

static int load_config(void *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    return tp_ratelimit_config_load(c, doc, r);
}

static int load(const char *text, tp_config_report_t *r)
{
    return tp_test_config_load(load_config, &config, "r.toml", text, r);
}

static void expect_error(const char *text, const char *needle)
{
    tp_test_config_expect_error(load_config, &config, "r.toml", text, needle);
}

/* covers: R-8-1, R-8-2, R-8-3, R-8-4 */
static void test_required_and_forwarding(void **state)
{
    (void)state;
    expect_error("[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", "rate_limiter.instance_id: is required");
    expect_error("[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n",
        "rate_limiter.descriptor_stream_id: is required");
    expect_error(base, "at least one [[mappings]] entry is required");
    char text[2048];
    snprintf(text, sizeof(text), "%sforward_progress = true\nsource_control_stream_id = 1000\n[[mappings]]\n"
        "source_stream_id = 1\ndest_stream_id = 2\n", base);
    expect_error(text, "forward_progress: needs non-zero");
    snprintf(text, sizeof(text), "%sforward_qos = true\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n",
        base);
    expect_error(text, "forward_qos: needs non-zero");
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 7\ndest_stream_id = 7\n", base);
    expect_error(text, "source and destination are the same stream 7");
}

/* covers: R-8-5s, R-8-7s */
static void test_defaults_and_inheritance(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text), "%smax_rate_hz = 15\ncontrol_stream_id = 1007\n[[mappings]]\nsource_stream_id = 1\n"
        "dest_stream_id = 2\n[[mappings]]\nsource_stream_id = 3\ndest_stream_id = 4\nmax_rate_hz = 30\n", base);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_true(config.forward_metadata);
    assert_false(config.forward_progress);
    assert_false(config.forward_qos);
    assert_string_equal(config.control_channel, "aeron:ipc?term-length=1m");
    assert_string_equal(config.qos_channel, "aeron:ipc?term-length=1m");
    assert_int_equal(config.source_control_stream_id, 0);
    assert_int_equal(config.dest_control_stream_id, 0);
    assert_int_equal(config.source_qos_stream_id, 0);
    assert_int_equal(config.dest_qos_stream_id, 0);
    assert_string_equal(config.shm_base_dir, "/dev/shm");
    assert_int_equal(config.driver_control_stream_id, 1007); /* defaults to rate_limiter.control_stream_id */
    assert_int_equal(config.mappings[0].max_rate_hz, 15); /* inherits rate_limiter.max_rate_hz */
    assert_int_equal(config.mappings[1].max_rate_hz, 30);
    assert_int_equal(config.mappings[0].metadata_stream_id, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required_and_forwarding),
        cmocka_unit_test(test_defaults_and_inheritance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
