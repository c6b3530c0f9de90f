/* Logging: levels, module filter, JSON and logfmt lines, pluggable sink. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_json.h"
#include "core/tp_log.h"
#include "tp_test_util.h"

static char last_line[8192];
static int lines;

static void sink(void *clientd, int level, const char *module, const char *line)
{
    (void)clientd;
    (void)level;
    (void)module;
    snprintf(last_line, sizeof(last_line), "%s", line);
    lines++;
}

static void test_json_lines_and_levels(void **state)
{
    (void)state;
    setenv("TP_LOG", "1", 1);
    setenv("TP_LOG_LEVEL", "20", 1);
    unsetenv("TP_LOG_MODULES");
    unsetenv("TP_LOG_FORMAT");
    tp_log_init();
    tp_log_set_sink(sink, NULL);
    lines = 0;
    TP_LOG_D("driver", "hidden %d", 1);
    assert_int_equal(lines, 0);
    TP_LOG_I("driver", "lease %d \"granted\"\n", 7);
    assert_int_equal(lines, 1);
    tp_json_t *j = NULL;
    tp_assert_ok(tp_json_parse(&j, last_line, strlen(last_line)));
    assert_string_equal(tp_json_get(j, "level")->text, "info");
    assert_string_equal(tp_json_get(j, "module")->text, "driver");
    assert_string_equal(tp_json_get(j, "msg")->text, "lease 7 \"granted\"\n");
    tp_json_free(j);
}

static void test_module_filter_and_logfmt(void **state)
{
    (void)state;
    setenv("TP_LOG", "1", 1);
    setenv("TP_LOG_LEVEL", "10", 1);
    setenv("TP_LOG_MODULES", "bus,Driver", 1);
    setenv("TP_LOG_FORMAT", "logfmt", 1);
    tp_log_init();
    lines = 0;
    TP_LOG_W("client", "filtered");
    assert_int_equal(lines, 0);
    TP_LOG_D("driver", "kept");
    assert_int_equal(lines, 1);
    tp_test_assert_contains(last_line, "level=debug module=driver");
    tp_test_assert_contains(last_line, "msg=\"kept\"");
    setenv("TP_LOG_FORMAT", "text", 1); /* the same, by the name people type */
    tp_log_init();
    TP_LOG_D("driver", "again");
    tp_test_assert_contains(last_line, "level=debug module=driver");
    setenv("TP_LOG_FORMAT", "logfmt", 1);
}

static void test_disabled(void **state)
{
    (void)state;
    setenv("TP_LOG", "0", 1);
    unsetenv("TP_LOG_MODULES");
    tp_log_init();
    lines = 0;
    TP_LOG_E("driver", "nothing");
    assert_int_equal(lines, 0);
    tp_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_and_levels),
        cmocka_unit_test(test_module_filter_and_logfmt),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
