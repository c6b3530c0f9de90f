/* Error record: code, root cause first, one line per caller, thread-local. */
#include <pthread.h>
#include <string.h>

#include "core/tp_err.h"
#include "tp_test_util.h"

static int leaf(void)
{
    TP_SET_ERR(TP_E_VALIDATION, "superblock epoch is %d, expected %d", 3, 4);
    return -1;
}

static int middle(void)
{
    if (leaf() < 0)
    {
        TP_APPEND_ERR("mapping region '%s'", "/dev/shm/x");
        return -1;
    }
    return 0;
}

static void test_trail_reads_root_cause_first(void **state)
{
    (void)state;
    tp_err_clear();
    assert_int_equal(tp_errcode(), 0);
    assert_int_equal(middle(), -1);
    assert_int_equal(tp_errcode(), TP_E_VALIDATION);
    const char *msg = tp_errmsg();
    const char *root = strstr(msg, "superblock epoch is 3, expected 4");
    const char *caller = strstr(msg, "mapping region '/dev/shm/x'");
    assert_non_null(root);
    assert_non_null(caller);
    assert_true(root < caller);
    /* What a user reads has no source locations; the trace, for debug logs, has one per line. */
    assert_null(strstr(msg, "tp_err_test.c:"));
    const char *trace = tp_errmsg_trace();
    tp_test_assert_contains(trace, "superblock epoch is 3, expected 4 [leaf tp_err_test.c:");
    tp_test_assert_contains(trace, "mapping region '/dev/shm/x' [middle tp_err_test.c:");
}

static void test_long_messages_are_cut_not_overflowed(void **state)
{
    (void)state;
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    TP_SET_ERR(TP_E_INVALID, "%s", big);
    for (int i = 0; i < 50; i++)
    {
        TP_APPEND_ERR("layer %d", i);
    }
    size_t n = strlen(tp_errmsg());
    assert_true(n < 4096);
    assert_string_equal(tp_errmsg() + n - 3, "...");
}

static void *other_thread(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)tp_errcode();
}

static void test_record_is_thread_local(void **state)
{
    (void)state;
    TP_SET_ERR(TP_E_STATE, "only here");
    pthread_t t;
    void *code = NULL;
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    pthread_join(t, &code);
    assert_int_equal((intptr_t)code, 0);
    assert_int_equal(tp_errcode(), TP_E_STATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trail_reads_root_cause_first),
        cmocka_unit_test(test_long_messages_are_cut_not_overflowed),
        cmocka_unit_test(test_record_is_thread_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
