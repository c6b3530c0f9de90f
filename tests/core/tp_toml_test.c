/* The TOML reader beyond the suite: positions in errors and values, redefinition rules, hostile input. */
#include <stdio.h>
#include <string.h>

#include "core/tp_toml.h"
#include "tp_test_util.h"

static tp_toml_value_t *parse_ok(const char *text)
{
    tp_toml_value_t *doc = NULL;
    tp_assert_ok(tp_toml_parse(&doc, text, strlen(text), "t.toml"));
    return doc;
}

static void parse_fails(const char *text, const char *needle)
{
    tp_toml_value_t *doc = NULL;
    tp_assert_fails_with(tp_toml_parse(&doc, text, strlen(text), "t.toml"), needle);
    assert_int_equal(tp_errcode(), TP_E_CONFIG);
}

static void test_values_and_positions(void **state)
{
    (void)state;
    tp_toml_value_t *doc = parse_ok("# driver\n[driver]\ninstance_id = \"drv-1\"\n  control_stream_id = 1_000\n"
                                    "[shm]\nbase_dir = '/dev/shm'\nratio = 2.5e-1\n"
                                    "[[profiles]]\nname = \"a\"\n[[profiles]]\nname = \"b\"\n");
    const tp_toml_value_t *driver = tp_toml_get(doc, "driver");
    const tp_toml_value_t *id = tp_toml_get(driver, "control_stream_id");
    assert_int_equal(id->type, TP_TOML_INTEGER);
    assert_int_equal(id->integer, 1000);
    assert_int_equal(id->line, 4);
    assert_int_equal(id->column, 23);
    assert_string_equal(tp_toml_get(tp_toml_get(doc, "shm"), "base_dir")->text, "/dev/shm");
    assert_true(tp_toml_get(tp_toml_get(doc, "shm"), "ratio")->number == 0.25);
    const tp_toml_value_t *profiles = tp_toml_get(doc, "profiles");
    assert_int_equal(profiles->type, TP_TOML_ARRAY);
    assert_int_equal(profiles->count, 2);
    assert_string_equal(tp_toml_get(profiles->members[1].value, "name")->text, "b");
    assert_null(tp_toml_get(doc, "missing"));
    tp_toml_free(doc);
}

static void test_errors_name_file_line_column(void **state)
{
    (void)state;
    parse_fails("a = 1\nb = 2\na = 3\n", "t.toml:3:1: duplicate key 'a'");
    parse_fails("[t]\nx = 1\n[t]\n", "t.toml:3:1: table 't' is already defined");
    parse_fails("x = \"abc\n", "t.toml:1:5: string is not closed on its line");
    parse_fails("x = [1,\n2,\n", "t.toml:1:5: unterminated array");
    parse_fails("x = \"\"\"\nabc\n", "t.toml:1:5: unterminated string");
    parse_fails("x = 1 y = 2\n", "t.toml:1:7: expected a newline after the value");
    parse_fails("x = 0777\n", "leading zeros");
    parse_fails("x = 9223372036854775808\n", "does not fit in 64 bits");
    parse_fails("x = 1__0\n", "malformed integer");
    parse_fails("x = 1979-02-29\n", "not a valid date");
    parse_fails("x = 07:32\n", "HH:MM:SS required");
    parse_fails("x = {a = 1,}\n", "trailing comma");
    parse_fails("x = \"\\q\"\n", "unknown escape");
    parse_fails("x = \"\\uD800\"\n", "not a Unicode scalar value");
    parse_fails("ok = 1\nx = \"\xff\"\n", "t.toml:2:6: invalid UTF-8");
    parse_fails("x = 1\r\ny = 2\rz = 3\n", "t.toml:2:6: a carriage return");
    parse_fails("x = 1 # a \x01 control\n", "control character U+0001");
}

static void test_redefinition_rules(void **state)
{
    (void)state;
    tp_toml_value_t *doc = parse_ok("[a.b.c]\nx = 1\n[a]\ny = 2\n[a.b]\nz = 3\n");
    assert_int_equal(tp_toml_get(tp_toml_get(tp_toml_get(doc, "a"), "b"), "z")->integer, 3);
    tp_toml_free(doc);
    doc = parse_ok("[fruit]\napple.color = 'red'\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true\n");
    tp_toml_free(doc);
    parse_fails("[fruit]\napple.color = 'red'\n[fruit.apple]\n", "already defined");
    parse_fails("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", "dotted keys cannot extend it");
    /* a table a header path created implicitly may be extended by dotted keys, then no header may define it */
    doc = parse_ok("[a.b.c]\nz = 9\n[a]\nb.x = 1\n");
    assert_int_equal(tp_toml_get(tp_toml_get(tp_toml_get(doc, "a"), "b"), "x")->integer, 1);
    tp_toml_free(doc);
    parse_fails("[a.b.c]\nz = 9\n[a]\nb.x = 1\n[a.b]\n", "table 'b' is already defined");
    parse_fails("a = {b = 1}\na.c = 2\n", "inline table 'a' cannot be extended");
    parse_fails("a = {b = 1}\n[a.c]\n", "an inline table, which a table header cannot extend");
    parse_fails("a = [1]\n[[a]]\n", "not an array of tables");
    parse_fails("[[a]]\n[a]\n", "already defined");
    parse_fails("a = 1\n[a.b]\n", "a value, which a table header cannot extend");
    doc = parse_ok("[[fruits]]\nname = 'apple'\n[fruits.physical]\ncolor = 'red'\n[[fruits]]\nname = 'banana'\n");
    const tp_toml_value_t *fruits = tp_toml_get(doc, "fruits");
    assert_string_equal(
        tp_toml_get(tp_toml_get(fruits->members[0].value, "physical"), "color")->text, "red");
    tp_toml_free(doc);
}

static void test_hostile_nesting(void **state)
{
    (void)state;
    char deep[4000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "x = ");
    for (int i = 0; i < 1000; i++)
    {
        deep[n++] = '[';
    }
    deep[n] = '\0';
    parse_fails(deep, "nested deeper than");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_and_positions),
        cmocka_unit_test(test_errors_name_file_line_column),
        cmocka_unit_test(test_redefinition_rules),
        cmocka_unit_test(test_hostile_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
