/* Histogram percentiles are within one sub-bucket (1/16) of the true value. */
#include "core/tp_histogram.h"
#include "tp_test_util.h"

static void test_percentiles_are_close(void **state)
{
    (void)state;
    static tp_histogram_t h;
    tp_histogram_reset(&h);
    for (uint64_t v = 1; v <= 100000; v++)
    {
        tp_histogram_record(&h, v);
    }
    assert_int_equal(h.count, 100000);
    assert_int_equal(h.min, 1);
    assert_int_equal(h.max, 100000);
    uint64_t p50 = tp_histogram_percentile(&h, 50);
    uint64_t p99 = tp_histogram_percentile(&h, 99);
    assert_true(p50 >= 50000 && p50 <= 50000 + 50000 / 16 + 1);
    assert_true(p99 >= 99000 && p99 <= 99000 + 99000 / 16 + 1);
    assert_int_equal(tp_histogram_percentile(&h, 100), 100000);
}

static void test_small_values_exact_and_merge(void **state)
{
    (void)state;
    static tp_histogram_t a;
    static tp_histogram_t b;
    tp_histogram_reset(&a);
    tp_histogram_reset(&b);
    tp_histogram_record(&a, 3);
    tp_histogram_record(&b, 7);
    tp_histogram_record(&b, UINT64_MAX);
    tp_histogram_merge(&a, &b);
    assert_int_equal(a.count, 3);
    assert_int_equal(tp_histogram_percentile(&a, 0), 3);
    assert_int_equal(tp_histogram_percentile(&a, 50), 7);
    assert_true(tp_histogram_percentile(&a, 100) == UINT64_MAX);
    static tp_histogram_t empty;
    tp_histogram_reset(&empty);
    assert_int_equal(tp_histogram_percentile(&empty, 50), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles_are_close),
        cmocka_unit_test(test_small_values_exact_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
