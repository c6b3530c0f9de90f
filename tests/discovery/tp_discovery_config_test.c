/* Discovery registry configuration: defaults from the stream-id conventions, drivers required and unique. */
#include <stdio.h>
#include <string.h>

#include "discovery/tp_discovery_config.h"
#include "tp_test_util.h"

static tp_discovery_config_t config;

static int load_config(void *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    return tp_discovery_config_load(c, doc, r);
}

static int load(const char *text, tp_config_report_t *r)
{
    return tp_test_config_load(load_config, &config, "q.toml", text, r);
}

static void test_defaults_and_rules(void **state)
{
    (void)state;
    tp_config_report_t r;
    tp_assert_ok(load("[[drivers]]\ninstance_id = \"d1\"\nannounce_stream_id = 1001\n", &r));
    tp_config_report_fini(&r);
    assert_int_equal(config.stream_id, 7000);
    assert_int_equal(config.max_results, 1000);
    assert_int_equal(config.announce_period_ms, 1000);
    assert_int_equal(config.drivers[0].control_stream_id, 1000);
    assert_int_equal(config.drivers[0].announce_stream_id, 1001);
    assert_string_equal(config.drivers[0].announce_channel, config.drivers[0].control_channel);
    assert_int_equal(load("[discovery]\nstream_id = 7000\n", &r), -1);
    tp_test_assert_contains(tp_strbuf_cstr(&r.errors), "at least one [[drivers]] entry");
    tp_config_report_fini(&r);
    assert_int_equal(load("[[drivers]]\ninstance_id = \"d\"\n[[drivers]]\ninstance_id = \"d\"\n", &r), -1);
    tp_test_assert_contains(tp_strbuf_cstr(&r.errors), "appears twice");
    tp_config_report_fini(&r);
    assert_int_equal(load("[discovery]\nmax_results = 5000\n[[drivers]]\ninstance_id = \"d\"\n", &r), -1);
    tp_test_assert_contains(tp_strbuf_cstr(&r.errors), "5000 is outside 1..1000");
    tp_config_report_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
