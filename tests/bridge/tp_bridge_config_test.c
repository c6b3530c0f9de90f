/*
 * Bridge configuration: required keys, the effective chunk size, mapping defaults, range rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/tp_bridge_config.h"
#include "tp_test_util.h"

static tp_bridge_config_t config;

static const char *base = "[bridge]\ninstance_id = \"b\"\ndirection = \"send\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:40456\"\n"
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

/* covers: B-10-2 */
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

/* covers: B-10-5s, B-10-6s, B-10-3 */
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

/* covers: B-10-4 */
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

/* Which end runs here, and the ids of a bidirectional instance: no source twice, no destination received twice, no
 * stream received here and sent back.
 * covers: B-2.3-1, B-2.3-3, B-2.3-2s, B-4-5 */
static void test_directions_and_ids(void **state)
{
    (void)state;
    char text[4096];
    const char *no_direction = "[bridge]\ninstance_id = \"b\"\npayload_channel = \"aeron:udp?endpoint=127.0.0.1:1\"\n"
                               "payload_stream_id = 3000\ncontrol_channel = \"aeron:udp?endpoint=127.0.0.1:2\"\n"
                               "control_stream_id = 3001\n";
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", no_direction);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r)); /* a file both hosts share: the direction comes at run time */
    tp_config_report_fini(&r);
    assert_int_equal(tp_bridge_config_check_directions(&config), -1);
    tp_test_assert_contains(tp_errmsg(), "mapping 1 -> 2: which end runs here?");
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\ndirection = \"up\"\n",
        no_direction);
    expect_error(text, "direction is 'up'");
    /* a mapping's own direction wins over bridge.direction */
    snprintf(text, sizeof(text),
        "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n[[mappings]]\nsource_stream_id = 5\n"
        "dest_stream_id = 6\ndirection = \"receive\"\n",
        base);
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_int_equal(tp_bridge_config_check_directions(&config), 0);
    assert_true(config.mappings[0].is_sender);
    assert_false(config.mappings[1].is_sender);
    snprintf(text, sizeof(text),
        "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n[[mappings]]\nsource_stream_id = 1\n"
        "dest_stream_id = 3\n",
        base);
    expect_error(text, "source_stream_id 1 is in two mappings");
    snprintf(text, sizeof(text),
        "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\ndirection = \"receive\"\n[[mappings]]\n"
        "source_stream_id = 4\ndest_stream_id = 2\ndirection = \"receive\"\n",
        base);
    expect_error(text, "dest_stream_id 2 is received by two mappings");
    /* 10 -> 20 sent from here, and 20 -> 10 received here: what arrives as 10 would be sent again */
    snprintf(text, sizeof(text),
        "%s[[mappings]]\nsource_stream_id = 10\ndest_stream_id = 20\n[[mappings]]\nsource_stream_id = 20\n"
        "dest_stream_id = 10\ndirection = \"receive\"\n",
        base);
    expect_error(text, "stream 10 is received here (from 20) and sent from here: a feedback loop");
    snprintf(text, sizeof(text),
        "%sdest_stream_id_range = \"50000-50010\"\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 50004\n",
        base);
    expect_error(text, "50000-50010 contains stream id 50004 configured for mapping 1");
}

/* forward_metadata defaults to true but metadata_channel to empty: the default forwards nothing (a warning); asking
 * for it, or for TraceLinkSet, without a channel fails; progress forwarding needs both control ids of every mapping.
 * covers: B-7.1-6, B-7.1-7s, B-7.1-10, B-7.1-11s, B-9-9, B-9-10, B-9-11s */
static void test_forwarding_rules(void **state)
{
    (void)state;
    char text[4096];
    const char *mapping = "[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n";
    snprintf(text, sizeof(text), "%s%s", base, mapping);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    assert_true(config.forward_metadata);
    assert_false(config.is_metadata_forwarded);
    assert_int_equal(r.warning_count, 1);
    tp_config_report_fini(&r);
    snprintf(text, sizeof(text), "%sforward_metadata = true\n%s", base, mapping);
    expect_error(text, "bridge.forward_metadata: is true but bridge.metadata_channel is empty");
    snprintf(text, sizeof(text), "%sforward_tracelink = true\n%s", base, mapping);
    expect_error(text, "bridge.forward_tracelink: is true but bridge.metadata_channel is empty");
    snprintf(text, sizeof(text), "%smetadata_channel = \"aeron:udp?endpoint=127.0.0.1:3\"\nforward_tracelink = true\n%s",
        base, mapping);
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_true(config.is_metadata_forwarded);
    assert_true(config.is_tracelink_forwarded);
    snprintf(text, sizeof(text), "%sforward_progress = true\n%ssource_control_stream_id = 1000\n", base, mapping);
    expect_error(text, "forward_progress needs nonzero source_control_stream_id and dest_control_stream_id");
    snprintf(text, sizeof(text), "%sforward_progress = true\n%ssource_control_stream_id = 1000\n"
        "dest_control_stream_id = 1000\n", base, mapping);
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_int_equal(config.mappings[0].source_qos_stream_id, 1000); /* QoS rides the control ids unless told */
}

static void test_bridge_ids_apart_from_local_ones(void **state)
{
    (void)state;
    /* The bridge is configured on its own (its file, its keys; nothing read from the driver's), and its stream ids
     * are kept apart from the local control plane's: one that is also the driver's control stream loads with a
     * warning that says so. covers: B-4-1s, B-10-1s */
    tp_config_report_t r;
    char text[2048];
    snprintf(text, sizeof(text), "%s[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n", base);
    tp_assert_ok(load(text, &r));
    size_t baseline = r.warning_count; /* metadata not forwarded without a channel */
    assert_null(strstr(tp_strbuf_cstr(&r.warnings), "control-plane"));
    tp_config_report_fini(&r);
    const char *shared = "[bridge]\ninstance_id = \"b\"\ndirection = \"send\"\n"
                         "payload_channel = \"aeron:udp?endpoint=127.0.0.1:40456\"\npayload_stream_id = 1000\n"
                         "control_channel = \"aeron:udp?endpoint=127.0.0.1:40457\"\ncontrol_stream_id = 1200\n"
                         "[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\n";
    tp_assert_ok(load(shared, &r));
    assert_int_equal(r.warning_count, baseline + 2);
    tp_test_assert_contains(tp_strbuf_cstr(&r.warnings), "bridge.payload_stream_id: 1000 is also a local control-plane");
    tp_test_assert_contains(tp_strbuf_cstr(&r.warnings), "bridge.control_stream_id: 1200");
    tp_config_report_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bridge_ids_apart_from_local_ones),
        cmocka_unit_test(test_required_keys),
        cmocka_unit_test(test_defaults_and_chunk_size),
        cmocka_unit_test(test_ranges_and_mappings),
        cmocka_unit_test(test_directions_and_ids),
        cmocka_unit_test(test_forwarding_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
