/*
 * Bridge configuration: required keys, the effective chunk size, mapping defaults, range rules.
 * covers: B-10-2, B-10-3, B-10-4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/tp_bridge_config.h"
#include "tp_test_util.h"

static tp_bridge_config_t config;

static const char *base = "[bridge]\ninstance_id = \"b\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40456\"\n"
                          "payload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:40457\"\n"
                          "control_stream_id = 3001\n";

static int load_config(void *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    return tp_bridge_config_load(c, doc, r);
}

static int load(const char *text, tp_config_report_t *r)
{
    return tp_test_config_load(load_config, &config, "b.toml", text, r);
}

static void expect_error(const char *text, const char *needle)
{
    tp_test_config_expect_error(load_config, &config, "b.toml", text, needle);
}

static void test_required_keys(void **state)
{
    (void)state;
    expect_error("[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", "bridge.instance_id: is required");
    expect_error("[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", "bridge.payload_channel: is required");
    expect_error("[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", "bridge.control_stream_id: is required");
    expect_error(base, "at least one [[mappings]] entry is required");
    char text[2048];
    snprintf(text, sizeof(text), "%s[[mappings]]\ndest_stream_id = 2\n", base);
    expect_error(text, "mappings[0].source_stream_id: is required");
}

static void test_defaults_and_chunk_size(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 20000\n", base);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_int_equal(config.max_chunk_bytes, 65535);
    assert_int_equal(config.max_payload_bytes, 1073741824);
    assert_false(config.integrity_crc32c);
    assert_true(config.forward_metadata);
    assert_false(config.forward_tracelink);
    assert_false(config.forward_qos);
    assert_false(config.forward_progress);
    assert_int_equal(config.assembly_timeout_ms, 250);
    assert_int_equal(config.mappings[0].metadata_stream_id, 20000); /* defaults to dest_stream_id */
    assert_int_equal(config.mappings[0].source_control_stream_id, 0);
    assert_int_equal(tp_bridge_config_chunk_bytes(&config), 1408 - 128); /* unset: mtu - 128 */
    config.chunk_bytes = 1000;
    assert_int_equal(tp_bridge_config_chunk_bytes(&config), 1000);
    config.chunk_bytes = 5000;
    assert_int_equal(tp_bridge_config_chunk_bytes(&config), 1280); /* min(chunk, mtu - 128) */
    config.mtu_bytes = 65504;
    config.chunk_bytes = 0;
    config.max_chunk_bytes = 8192;
    assert_int_equal(tp_bridge_config_chunk_bytes(&config), 8192); /* never above max_chunk_bytes */
}

static void test_ranges_and_mappings(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text),
        "%sdest_stream_id_range = \"2990-3010\"\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", base);
    expect_error(text, "2990-3010 contains control/metadata stream id 3000");
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 0\n", base);
    expect_error(text, "dest_stream_id 0 needs bridge.dest_stream_id_range");
    snprintf(text, sizeof(text), "%smtu_bytes = 100\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", base);
    expect_error(text, "100 is outside 256..65504");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_defaults_and_chunk_size),
        cmocka_unit_test(test_ranges_and_mappings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
