/* Trace ids and the TraceLinkSet codec. */
#include <string.h>

#include "tensorpool/tp_trace.h"
#include "tp_sbe_tracelink.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define T0 (INT64_C(1767225600) * 1000000000) /* 2026-01-01T00:00:00Z */

/* covers: T-6.1-1, T-6.1-2s */
static void test_trace_ids(void **state)
{
    (void)state;
    tp_trace_id_gen_t g;
    assert_int_equal(tp_trace_id_gen_init(&g, TP_TRACE_NODE_ID_MAX + 1), -1);
    tp_test_assert_contains(tp_errmsg(), "does not fit");
    assert_int_equal(tp_trace_id_gen_init(&g, 1234), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 5000; i++) /* 5000 ids in one millisecond: past the 2048 a millisecond holds */
    {
        uint64_t id = tp_trace_id_next(&g, T0);
        assert_true(id > prev); /* unique, increasing, never 0 */
        assert_int_equal(tp_trace_id_node(id), 1234);
        assert_true((id >> 63) == 0);
        prev = id;
    }
    /* The burst borrowed two milliseconds; the clock catching up continues from there, still increasing. */
    assert_int_equal(tp_trace_id_time_ms(prev), T0 / 1000000 + 2);
    uint64_t later = tp_trace_id_next(&g, T0 + 1000000);
    assert_true(later > prev);
    later = tp_trace_id_next(&g, T0 + 10 * 1000000);
    assert_int_equal(tp_trace_id_time_ms(later), T0 / 1000000 + 10);
    assert_int_equal(tp_trace_id_sequence(later), 0);
    /* Ids sort by time across nodes; node 0 before the trace epoch still gives a non-zero id. */
    tp_trace_id_gen_t h;
    tp_trace_id_gen_init(&h, 0);
    assert_true(tp_trace_id_next(&h, T0 + 11 * 1000000) > later);
    tp_trace_id_gen_init(&h, 0);
    assert_true(tp_trace_id_next(&h, 0) != 0);
}

/* covers: T-9.2-5, T-9.2-6, T-9.2-7, T-9.2-8s, T-13-1, T-9.1-1, T-16-1 */
static void test_trace_link_codec(void **state)
{
    (void)state;
    tp_trace_link_t l = { .stream_id = 9000, .epoch = 3, .seq = 77, .trace_id = 555 };
    uint64_t inputs[] = {30, 0, 10, 30, 20, 10};
    assert_int_equal(tp_trace_link_set_parents(&l, inputs, 6), 3); /* zeros skipped, repeats once, order kept */
    assert_true(l.parents[0] == 30 && l.parents[1] == 10 && l.parents[2] == 20);
    uint8_t buf[512];
    int64_t n = tp_trace_link_encode(&l, buf, sizeof(buf));
    assert_int_equal(n, 8 + 28 + 4 + 3 * 8);
    assert_int_equal(tp_sbe_get_u16(buf + 4), 904);
    assert_int_equal(tp_sbe_get_u16(buf + 2), 1);
    tp_trace_link_t d;
    assert_int_equal(tp_trace_link_decode(&d, buf, (size_t)n), 0);
    assert_true(d.stream_id == 9000 && d.epoch == 3 && d.seq == 77 && d.trace_id == 555 && d.parent_count == 3);
    assert_true(d.parents[0] == 30 && d.parents[1] == 10 && d.parents[2] == 20);
    /* Encoders refuse what decoders reject. */
    tp_trace_link_t bad = l;
    bad.parent_count = 0;
    assert_int_equal(tp_trace_link_encode(&bad, buf, sizeof(buf)), -1);
    bad = l;
    bad.parents[1] = 0;
    assert_int_equal(tp_trace_link_encode(&bad, buf, sizeof(buf)), -1);
    bad = l;
    bad.parents[2] = 30;
    assert_int_equal(tp_trace_link_encode(&bad, buf, sizeof(buf)), -1);
    tp_test_assert_contains(tp_errmsg(), "listed twice");
    bad = l;
    bad.trace_id = 0;
    assert_int_equal(tp_trace_link_encode(&bad, buf, sizeof(buf)), -1);
    /* Decoders reject a zero count, a zero parent and a repeat written by someone else. */
    n = tp_trace_link_encode(&l, buf, sizeof(buf));
    uint8_t copy[512];
    memcpy(copy, buf, (size_t)n);
    tp_sbe_put_u64(copy + 8 + 28 + 4 + 8, 0);
    assert_int_equal(tp_trace_link_decode(&d, copy, (size_t)n), -1);
    tp_test_assert_contains(tp_errmsg(), "is 0");
    memcpy(copy, buf, (size_t)n);
    tp_sbe_put_u64(copy + 8 + 28 + 4 + 16, 30);
    assert_int_equal(tp_trace_link_decode(&d, copy, (size_t)n), -1);
    memcpy(copy, buf, (size_t)n);
    tp_sbe_put_u16(copy + 8 + 28 + 2, 0); /* numInGroup 0 */
    assert_int_equal(tp_trace_link_decode(&d, copy, 8 + 28 + 4), -1);
    tp_test_assert_contains(tp_errmsg(), "needs 1 to");
    /* T-13-1: a message of another schema with template 1 is not read as TraceLinkSet. */
    memcpy(copy, buf, (size_t)n);
    tp_sbe_put_u16(copy + 4, TP_WIRE_SCHEMA_ID);
    assert_int_equal(tp_trace_link_decode(&d, copy, (size_t)n), -1);
    tp_test_assert_contains(tp_errmsg(), "is not TraceLinkSet");
    /* Truncation anywhere is refused. */
    for (int64_t cut = 0; cut < n; cut++)
    {
        assert_int_equal(tp_trace_link_decode(&d, buf, (size_t)cut), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_ids),
        cmocka_unit_test(test_trace_link_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
