/* The JSON reader: values, exact 64-bit integers, escapes, errors with positions, hostile nesting. */
#include <string.h>

#include "core/tp_json.h"
#include "tp_test_util.h"

static tp_json_t *parse(const char *text)
{
    tp_json_t *root = NULL;
    tp_assert_ok(tp_json_parse(&root, text, strlen(text)));
    return root;
}

static void test_values(void **state)
{
    (void)state;
    tp_json_t *r = parse("{\"a\": [1, -2, 3.5e2, true, false, null], \"s\": \"x\\u00e9\\n\\ud83d\\ude00\", \"o\": {}}");
    const tp_json_t *a = tp_json_get(r, "a");
    assert_int_equal(a->count, 6);
    int64_t v;
    tp_assert_ok(tp_json_to_i64(tp_json_at(a, 1), &v));
    assert_int_equal(v, -2);
    assert_int_equal(tp_json_to_i64(tp_json_at(a, 2), &v), -1); /* not an integer */
    assert_true(tp_json_at(a, 3)->boolean);
    assert_int_equal(tp_json_at(a, 5)->type, TP_JSON_NULL);
    const tp_json_t *s = tp_json_get(r, "s");
    assert_int_equal(s->length, 8);
    assert_memory_equal(s->text, "x\xc3\xa9\n\xf0\x9f\x98\x80", 8);
    assert_int_equal(tp_json_get(r, "o")->type, TP_JSON_OBJECT);
    assert_null(tp_json_get(r, "missing"));
    tp_json_free(r);
}

static void test_u64_is_exact(void **state)
{
    (void)state;
    tp_json_t *r = parse("[6075162711091072305, 18446744073709551615, 18446744073709551616]");
    uint64_t u;
    tp_assert_ok(tp_json_to_u64(tp_json_at(r, 0), &u));
    assert_true(u == UINT64_C(6075162711091072305));
    tp_assert_ok(tp_json_to_u64(tp_json_at(r, 1), &u));
    assert_true(u == UINT64_MAX);
    assert_int_equal(tp_json_to_u64(tp_json_at(r, 2), &u), -1);
    tp_json_free(r);
}

static void test_errors_name_line_and_column(void **state)
{
    (void)state;
    tp_json_t *r = NULL;
    const char *bad = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    tp_assert_fails_with(tp_json_parse(&r, bad, strlen(bad)), "line 3 column 8");
    tp_assert_fails_with(tp_json_parse(&r, "[1,]", 4), "expected a value");
    tp_assert_fails_with(tp_json_parse(&r, "\"\\ud800\"", 8), "surrogate");
    tp_assert_fails_with(tp_json_parse(&r, "01", 2), "leading zero");
    tp_assert_fails_with(tp_json_parse(&r, "{} x", 4), "trailing");
    tp_assert_fails_with(tp_json_parse(&r, "\"a\nb\"", 5), "control character");
}

static void test_deep_nesting_is_refused(void **state)
{
    (void)state;
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = '\0';
    tp_json_t *r = NULL;
    tp_assert_fails_with(tp_json_parse(&r, deep, 2000), "nesting too deep");
}

static void test_equal_ignores_member_order(void **state)
{
    (void)state;
    tp_json_t *a = parse("{\"x\": 1, \"y\": [1, 2]}");
    tp_json_t *b = parse("{\"y\": [1, 2], \"x\": 1}");
    tp_json_t *c = parse("{\"y\": [2, 1], \"x\": 1}");
    assert_true(tp_json_equal(a, b));
    assert_false(tp_json_equal(a, c));
    tp_json_free(a);
    tp_json_free(b);
    tp_json_free(c);
}

static void test_pretty_keeps_strings(void **state)
{
    (void)state;
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_json_pretty(&out, "{\"a,b\":[1,{}],\"c\":\"x\\\"{\"}");
    tp_json_t *r = parse(tp_strbuf_cstr(&out));
    tp_json_t *orig = parse("{\"a,b\":[1,{}],\"c\":\"x\\\"{\"}");
    assert_true(tp_json_equal(r, orig));
    tp_json_free(r);
    tp_json_free(orig);
    tp_strbuf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_u64_is_exact),
        cmocka_unit_test(test_errors_name_line_and_column),
        cmocka_unit_test(test_deep_nesting_is_refused),
        cmocka_unit_test(test_equal_ignores_member_order),
        cmocka_unit_test(test_pretty_keeps_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
