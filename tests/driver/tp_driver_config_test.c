/*
 * Driver configuration: every key's default, TOML and environment precedence, and one bad configuration for each
 * validation rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/tp_driver_config.h"
#include "tp_test_util.h"

static const char *base_profile = "[profiles.p]\nheader_nslots = 64\n"
                                  "payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                                  "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n";

static tp_driver_config_t config;

static int load_config(void *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    return tp_driver_config_load(c, doc, r);
}

static int load(const char *text, tp_config_report_t *r)
{
    return tp_test_config_load(load_config, &config, "d.toml", text, r);
}

static void expect_error(const char *text, const char *needle)
{
    tp_test_config_expect_error(load_config, &config, "d.toml", text, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    /* The canonical key names (the TOML above and every key below) with the spec's defaults, explicit default
     * channel and stream ids, and the 1 Hz announce and activity refresh.
     * covers: D-17-9s, D-17-11s, D-17-12s, D-4.4-5s, W-15.21a.2-1s, D-17-1s, W-14-1s, W-15.11-1s */
    tp_config_report_t r;
    tp_assert_ok(load(base_profile, &r));
    assert_string_equal(config.instance_id, "driver-01");
    assert_string_equal(config.control_channel, "aeron:ipc?term-length=4m");
    assert_int_equal(config.control_stream_id, 1000);
    assert_string_equal(config.announce_channel, config.control_channel); /* derived */
    assert_int_equal(config.announce_stream_id, 1000);
    assert_int_equal(config.qos_stream_id, 1200);
    assert_string_equal(config.base_dir, "/dev/shm");
    assert_string_equal(config.name_space, "default");
    assert_int_equal(config.permissions_mode, 0660);
    assert_int_equal(config.allowed_base_dirs.count, 1);
    assert_string_equal(config.allowed_base_dirs.items[0], "/dev/shm");
    assert_false(config.allow_dynamic_streams);
    assert_string_equal(config.default_profile, "p"); /* the first profile */
    assert_int_equal(config.announce_period_ms, 1000);
    assert_int_equal(config.lease_keepalive_interval_ms, 1000);
    assert_int_equal(config.lease_expiry_grace_intervals, 3);
    assert_true(config.prefault_shm);
    assert_false(config.mlock_shm);
    assert_true(config.epoch_gc_enabled);
    assert_int_equal(config.epoch_gc_keep, 2);
    assert_true(config.epoch_gc_min_age_ns == 3000000000ull); /* 3 x announce period */
    assert_int_equal(config.shutdown_timeout_ms, 2000);
    assert_string_equal(config.shutdown_token, "");
    assert_false(config.epoch_gc_on_startup);
    assert_string_equal(config.qos_channel, "aeron:ipc?term-length=4m");
    assert_false(config.stream_id_range.is_set);
    assert_false(config.descriptor_stream_id_range.is_set);
    assert_false(config.control_stream_id_range.is_set);
    assert_int_equal(config.profiles[0].header_nslots, 64);
    assert_int_equal(r.error_count, 0);
    assert_int_equal(r.warning_count, 0);
    tp_config_report_fini(&r);
}

static void test_environment_wins(void **state)
{
    (void)state;
    /* covers: D-17-3, D-17-2s */
    char text[1024];
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id = 1100\ndescriptor_stream_id_range = [31000, 31999]\n%s",
        base_profile);
    setenv("TP_DRIVER_CONTROL_STREAM_ID", "1500", 1);
    setenv("TP_POLICIES_ANNOUNCE_PERIOD_MS", "250", 1);
    setenv("TP_SHM_ALLOWED_BASE_DIRS", "/dev/shm,/tmp", 1);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    assert_int_equal(config.control_stream_id, 1500);
    assert_int_equal(config.announce_stream_id, 1500); /* derived from the overridden value */
    assert_true(config.epoch_gc_min_age_ns == 750000000ull);
    assert_int_equal(config.allowed_base_dirs.count, 2);
    assert_string_equal(config.allowed_base_dirs.items[1], "/tmp");
    assert_true(config.descriptor_stream_id_range.is_set);
    assert_int_equal(config.descriptor_stream_id_range.start, 31000);
    assert_int_equal(r.warning_count, 0);
    tp_config_report_fini(&r);
    setenv("TP_DRIVER_CONTROL_STREAM_ID", "abc", 1);
    expect_error(text, "environment TP_DRIVER_CONTROL_STREAM_ID='abc' is not a non-negative integer");
    unsetenv("TP_DRIVER_CONTROL_STREAM_ID");
    unsetenv("TP_POLICIES_ANNOUNCE_PERIOD_MS");
    unsetenv("TP_SHM_ALLOWED_BASE_DIRS");
}

/* The spec's example names (no TP_) still work, with a warning naming the new one; the TP_ name wins over them. */
static void test_environment_old_names(void **state)
{
    (void)state;
    /* covers: D-17-2s */
    char text[1024];
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id = 1100\n%s", base_profile);
    setenv("DRIVER_CONTROL_STREAM_ID", "1500", 1);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    assert_int_equal(config.control_stream_id, 1500);
    assert_int_equal(r.warning_count, 1);
    tp_test_assert_contains(tp_strbuf_cstr(&r.warnings),
        "environment DRIVER_CONTROL_STREAM_ID is the old name of TP_DRIVER_CONTROL_STREAM_ID");
    tp_config_report_fini(&r);
    setenv("TP_DRIVER_CONTROL_STREAM_ID", "1600", 1);
    tp_assert_ok(load(text, &r));
    assert_int_equal(config.control_stream_id, 1600);
    assert_int_equal(r.warning_count, 0);
    tp_config_report_fini(&r);
    setenv("DRIVER_CONTROL_STREAM_ID", "abc", 1);
    unsetenv("TP_DRIVER_CONTROL_STREAM_ID");
    expect_error(text, "environment DRIVER_CONTROL_STREAM_ID='abc' is not a non-negative integer");
    unsetenv("DRIVER_CONTROL_STREAM_ID");
}

static void test_profile_rules(void **state)
{
    (void)state;
    /* covers: D-17-4, D-17-13 */
    expect_error("[streams.s]\nstream_id = 1\nprofile = \"p\"\n", "at least one profile is required");
    expect_error("[profiles.p]\nheader_nslots = 64\n[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "payload_pools is required");
    expect_error("[profiles.p]\nheader_nslots = 64\npayload_pools = []\n"
                 "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "d.toml:1: profiles.p: payload_pools needs at least one pool");
    expect_error("[profiles.p]\nheader_nslots = 1000\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                 "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "d.toml:1: profiles.p: header_nslots 1000 is not a power of two");
    expect_error("[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 4000 }]\n"
                 "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "stride_bytes 4000 is not a power-of-two multiple of 64");
    expect_error("[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 32 }]\n"
                 "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "stride_bytes 32");
    expect_error("[profiles.p]\n"
                 "payload_pools = [{ pool_id = 1, stride_bytes = 4096 }, { pool_id = 1, stride_bytes = 8192 }]\n"
                 "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
        "pool_id 1 appears twice");
    expect_error("[profiles.p]\npayload_pools = [{ pool_id = 70000, stride_bytes = 4096 }]\n",
        "70000 is outside 0..65535");
}

static void test_stream_rules(void **state)
{
    (void)state;
    /* covers: D-17-5 */
    char text[2048];
    snprintf(text, sizeof(text), "%s[streams.t]\nstream_id = 10001\nprofile = \"nope\"\n", base_profile);
    expect_error(text, "d.toml:7: streams.t: profile 'nope' is not defined");
    snprintf(text, sizeof(text), "%s[streams.t]\nstream_id = 10000\nprofile = \"p\"\n", base_profile);
    expect_error(text, "stream_id 10000 is also used by streams.s");
    snprintf(text, sizeof(text), "%s[streams.t]\nstream_id = 1200\nprofile = \"p\"\n", base_profile);
    expect_error(text, "stream_id 1200 is a control-plane stream id");
    expect_error("[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n",
        "no streams are defined and policies.allow_dynamic_streams is false");
    tp_config_report_t r;
    tp_assert_ok(load("[policies]\nallow_dynamic_streams = true\n[driver]\nstream_id_range = \"20000-29999\"\n"
                      "[profiles.p]\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n",
        &r));
    tp_config_report_fini(&r);
    snprintf(text, sizeof(text), "[policies]\ndefault_profile = \"q\"\n%s", base_profile);
    expect_error(text, "policies.default_profile: profile 'q' is not defined");
    /* Discovery tags of a stream. */
    snprintf(text, sizeof(text), "%s[streams.t]\nstream_id = 10001\nprofile = \"p\"\ntags = [\"a,b\"]\n", base_profile);
    expect_error(text, "streams.t.tags: tags are 1-63 printable ASCII characters without commas");
    snprintf(text, sizeof(text), "%s[streams.t]\nstream_id = 10001\nprofile = \"p\"\ntags = [\"front\", \"rgb\"]\n",
        base_profile);
    tp_assert_ok(load(text, &r));
    tp_config_report_fini(&r);
    assert_string_equal(tp_driver_config_stream(&config, 10001)->tags, "front,rgb");
}

static void test_channels_parse(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text), "[driver]\ncontrol_channel = \"ipc\"\n%s", base_profile);
    expect_error(text, "d.toml: driver.control_channel: channel 'ipc' is neither aeron:ipc nor aeron:udp");
    snprintf(text, sizeof(text), "[driver]\nqos_channel = \"aeron:icp?term-length=4m\"\n%s", base_profile);
    expect_error(text, "driver.qos_channel: channel 'aeron:icp?term-length=4m' is neither");
    snprintf(text, sizeof(text), "[driver]\nmetadata_channel = \"aeron:ipc?term-lenght=4m\"\n%s", base_profile);
    expect_error(text, "driver.metadata_channel: unsupported parameter 'term-lenght'");
}

static void test_range_rules(void **state)
{
    (void)state;
    /* covers: D-11-6, D-11-7, D-11-8 */
    char text[2048];
    snprintf(text, sizeof(text), "[driver]\nstream_id_range = \"300-200\"\n%s", base_profile);
    expect_error(text, "d.toml:2: driver.stream_id_range: has start > end");
    snprintf(text, sizeof(text), "[driver]\nstream_id_range = [300, 200]\n%s", base_profile);
    expect_error(text, "has start > end");
    snprintf(text, sizeof(text),
        "[driver]\nstream_id_range = \"20000-30999\"\ndescriptor_stream_id_range = \"30000-31999\"\n%s", base_profile);
    expect_error(text, "driver.descriptor_stream_id_range: 30000-31999 overlaps driver.stream_id_range");
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id_range = \"9000-10500\"\n%s", base_profile);
    expect_error(text, "9000-10500 contains streams.s (stream_id 10000)");
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id_range = \"900-1100\"\n%s", base_profile);
    expect_error(text, "contains control-plane stream id 1000");
    snprintf(text, sizeof(text), "[driver]\nstream_id_range = \"abc\"\n%s", base_profile);
    expect_error(text, "must be an inclusive range");
    snprintf(text, sizeof(text), "[driver]\nstream_id_range = [1]\n%s", base_profile);
    expect_error(text, "expected a range");
}

static void test_value_rules(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text), "[shm]\npermissions_mode = \"rw-rw----\"\n%s", base_profile);
    expect_error(text, "octal permission string");
    snprintf(text, sizeof(text), "[shm]\npermissions_mode = \"060\"\n%s", base_profile);
    expect_error(text, "outside");
    snprintf(text, sizeof(text), "[shm]\nbase_dir = \"dev/shm\"\n%s", base_profile);
    expect_error(text, "shm.base_dir: 'dev/shm' is not an absolute path");
    snprintf(text, sizeof(text), "[shm]\nallowed_base_dirs = [\"/dev/shm\", \"relative\"]\n%s", base_profile);
    expect_error(text, "'relative' is not an absolute path");
    snprintf(text, sizeof(text), "[shm]\nnamespace = \"../x\"\n%s", base_profile);
    expect_error(text, "shm.namespace");
    snprintf(text, sizeof(text), "[policies]\nannounce_period_ms = 5\n%s", base_profile);
    expect_error(text, "policies.announce_period_ms: 5 is outside 10..60000");
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id = \"1000\"\n%s", base_profile);
    expect_error(text, "driver.control_stream_id: expected an integer, found a string");
    snprintf(text, sizeof(text), "[driver]\ncontrol_stream_id = -4\n%s", base_profile);
    expect_error(text, "must not be negative");
    snprintf(text, sizeof(text), "[policies]\nprefault_shm = \"yes\"\n%s", base_profile);
    expect_error(text, "expected a boolean");
}

static void test_unknown_keys_warn_with_line(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text),
        "[driver]\ncontrol_stream_idd = 1000\n[polices]\nx = 1\n%s[streams.s2]\nstream_id = 10002\n"
        "profile = \"p\"\nprofil = \"p\"\n", base_profile);
    tp_config_report_t r;
    tp_assert_ok(load(text, &r));
    const char *w = tp_strbuf_cstr(&r.warnings);
    tp_test_assert_contains(w, "d.toml:2: driver.control_stream_idd: unknown key");
    tp_test_assert_contains(w, "d.toml:3: polices: unknown key");
    tp_test_assert_contains(w, "streams.s2.profil: unknown key");
    assert_int_equal(r.warning_count, 3);
    tp_config_report_fini(&r);
}

static void test_fallback_uris_are_channels(void **state)
{
    (void)state;
    /* A supervisor rule's payload_fallback_uri is a channel or bridge://ID; anything else loads with a warning
     * that says consumers will ignore it. covers: W-10.1.3-1s */
    const char *good[] = { "aeron:udp?endpoint=10.0.0.7:40123", "aeron:ipc?term-length=4m", "bridge://cam-1" };
    for (size_t i = 0; i < 3; i++)
    {
        char text[2048];
        snprintf(text, sizeof(text), "%s[[supervisor_rules]]\nmode = \"STREAM\"\npayload_fallback_uri = \"%s\"\n",
            base_profile, good[i]);
        tp_config_report_t r;
        tp_assert_ok(load(text, &r));
        assert_int_equal(r.warning_count, 0);
        tp_config_report_fini(&r);
    }
    const char *odd[] = { "bogus://nowhere", "bridge://", "http://10.0.0.7/cam" };
    for (size_t i = 0; i < 3; i++)
    {
        char text[2048];
        snprintf(text, sizeof(text), "%s[[supervisor_rules]]\nmode = \"STREAM\"\npayload_fallback_uri = \"%s\"\n",
            base_profile, odd[i]);
        tp_config_report_t r;
        tp_assert_ok(load(text, &r));
        assert_int_equal(r.warning_count, 1);
        tp_test_assert_contains(tp_strbuf_cstr(&r.warnings), "supervisor_rules[0].payload_fallback_uri");
        tp_test_assert_contains(tp_strbuf_cstr(&r.warnings), "consumers will ignore it");
        tp_config_report_fini(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fallback_uris_are_channels),
        cmocka_unit_test(test_environment_wins),
        cmocka_unit_test(test_environment_old_names),
        cmocka_unit_test(test_profile_rules),
        cmocka_unit_test(test_stream_rules),
        cmocka_unit_test(test_range_rules),
        cmocka_unit_test(test_channels_parse),
        cmocka_unit_test(test_value_rules),
        cmocka_unit_test(test_unknown_keys_warn_with_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
