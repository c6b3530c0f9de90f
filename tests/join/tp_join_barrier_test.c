/*
 * Join barriers on a fake clock: merge-map validation and codec, and every readiness rule of the sequence,
 * timestamp and latest-value barriers, table-driven where the rule is a table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "tensorpool/tp_join.h"
#include "tp_malloc_count.h"
#include "tp_sbe_merge.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define OUT 9000
#define A 10001
#define B 10002
#define C 10003
#define EPOCH 7
#define NUL TP_JOIN_TIME_NULL
#define MONO TP_CLOCK_DOMAIN_MONOTONIC
#define MS 1000000ull

static tp_join_barrier_t *make_barrier(tp_join_kind_t kind, bool use_processed)
{
    tp_join_barrier_options_t o;
    tp_join_barrier_options_init(&o, kind, OUT);
    o.use_processed = use_processed;
    tp_join_barrier_t *b = NULL;
    assert_int_equal(tp_join_barrier_init(&b, &o), 0);
    tp_join_barrier_set_output_epoch(b, EPOCH);
    return b;
}

static void obs(tp_join_barrier_t *b, uint32_t stream, uint64_t seq, int64_t now)
{
    assert_int_equal(tp_join_barrier_observe(b, stream, 1, seq, NUL, NUL, MONO, 100 + seq, now), 1);
}

static void obs_t(tp_join_barrier_t *b, uint32_t stream, uint64_t seq, uint64_t desc_ns, uint64_t slot_ns, int64_t now)
{
    assert_int_equal(tp_join_barrier_observe(b, stream, 1, seq, desc_ns, slot_ns, MONO, 100 + seq, now), 1);
}

/* covers: J-6.2-1, J-6.2-2, J-6.2-3, J-6.2-4, J-6.2.2-2, J-6.3-2, J-6.3-3, J-6.3-4, J-6.3.2-1, J-8.2-1 */
static void test_map_validation(void **state)
{
    (void)state;
    struct
    {
        const char *what;
        tp_merge_kind_t kind;
        uint8_t type;
        bool has_offset;
        int64_t offset;
        bool has_window;
        uint64_t window;
        uint8_t source;
        uint32_t input;
        const char *error; /* NULL: valid */
    } cases[] = {
        {"offset", TP_MERGE_SEQUENCE, TP_MERGE_RULE_OFFSET, true, -2, false, 0, 0, A, NULL},
        {"window", TP_MERGE_SEQUENCE, TP_MERGE_RULE_WINDOW, false, 0, true, 5, 0, A, NULL},
        {"offset without offset", TP_MERGE_SEQUENCE, TP_MERGE_RULE_OFFSET, false, 0, false, 0, 0, A, "needs a offset"},
        {"offset with window", TP_MERGE_SEQUENCE, TP_MERGE_RULE_OFFSET, true, 0, true, 3, 0, A, "no windowSize"},
        {"window without size", TP_MERGE_SEQUENCE, TP_MERGE_RULE_WINDOW, false, 0, false, 0, 0, A, "needs a windowSize"},
        {"window with offset", TP_MERGE_SEQUENCE, TP_MERGE_RULE_WINDOW, true, 1, true, 3, 0, A, "no offset"},
        {"window 0", TP_MERGE_SEQUENCE, TP_MERGE_RULE_WINDOW, false, 0, true, 0, 0, A, "must be positive"},
        {"no input", TP_MERGE_SEQUENCE, TP_MERGE_RULE_OFFSET, true, 0, false, 0, 0, 0, "names no input stream"},
        {"unknown type", TP_MERGE_SEQUENCE, 9, true, 0, false, 0, 0, A, "unknown rule type"},
        {"offset_ns", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_OFFSET, true, -5, false, 0, 1, A, NULL},
        {"window_ns", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_WINDOW, false, 0, true, 10, 2, A, NULL},
        {"offset_ns with window", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_OFFSET, true, 0, true, 1, 1, A, "no windowNs"},
        {"window_ns with offset", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_WINDOW, true, 0, true, 1, 1, A, "no offsetNs"},
        {"window_ns 0", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_WINDOW, false, 0, true, 0, 1, A, "must be positive"},
        {"no source", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_OFFSET, true, 0, false, 0, 0, A, "declares no timestamp source"},
        {"bad source", TP_MERGE_TIMESTAMP, TP_MERGE_RULE_OFFSET, true, 0, false, 0, 3, A, "declares no timestamp source"},
    };
    tp_join_barrier_t *sb = make_barrier(TP_JOIN_SEQUENCE, false);
    tp_join_barrier_t *tb = make_barrier(TP_JOIN_TIMESTAMP, false);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        tp_merge_map_t m;
        tp_merge_map_init(&m, cases[i].kind, OUT, EPOCH);
        m.rule_count = 1;
        m.rules[0] = (tp_merge_rule_t){ .input_stream_id = cases[i].input, .rule_type = cases[i].type,
            .timestamp_source = cases[i].source, .has_offset = cases[i].has_offset, .offset = cases[i].offset,
            .has_window = cases[i].has_window, .window = cases[i].window };
        tp_join_barrier_t *b = cases[i].kind == TP_MERGE_SEQUENCE ? sb : tb;
        if (cases[i].error == NULL)
        {
            assert_int_equal(tp_merge_map_validate(&m), 0);
            assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
            assert_true(tp_join_barrier_has_map(b));
            continue;
        }
        assert_int_equal(tp_merge_map_validate(&m), -1);
        tp_test_assert_contains(tp_errmsg(), cases[i].error);
        /* An invalid map replaces the active one: blocked until a valid one arrives. */
        assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), -1);
        assert_false(tp_join_barrier_has_map(b));
        tp_join_result_t r;
        if (b == sb)
        {
            assert_false(tp_join_barrier_ready_seq(b, 10, 0, &r));
        }
        else
        {
            assert_false(tp_join_barrier_ready_time(b, 10, MONO, 0, &r));
        }
        assert_int_equal(r.status, TP_JOIN_INVALID_MAP);
    }
    /* Each input once; at least one rule. */
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    assert_int_equal(tp_merge_map_validate(&m), -1);
    tp_merge_map_add_offset(&m, A, 0);
    tp_merge_map_add_window(&m, A, 2);
    assert_int_equal(tp_merge_map_validate(&m), -1);
    tp_test_assert_contains(tp_errmsg(), "both name input 10001");
    tp_join_barrier_close(sb);
    tp_join_barrier_close(tb);
}

/* covers: J-14-1, J-10.1-4s */
static void test_map_codec(void **state)
{
    (void)state;
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, UINT64_C(1) << 40);
    m.clock_domain = TP_CLOCK_DOMAIN_REALTIME_SYNCED;
    m.lateness_ns = 5 * MS;
    tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_SLOT_HEADER, -2 * (int64_t)MS);
    tp_merge_map_add_window_ns(&m, B, TP_MERGE_SOURCE_FRAME_DESCRIPTOR, 10 * MS);
    uint8_t buf[512];
    int64_t n = tp_merge_map_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    /* Unused parameters travel as the schema's null sentinels. */
    assert_int_equal(tp_sbe_get_u64(buf + 8 + 29 + 4 + 14), UINT64_MAX);      /* rule 0 windowNs */
    assert_int_equal(tp_sbe_get_i64(buf + 8 + 29 + 4 + 22 + 6), INT64_MIN);   /* rule 1 offsetNs */
    tp_merge_map_t d;
    assert_int_equal(tp_merge_map_decode(&d, buf, (size_t)n), 0);
    assert_int_equal(d.kind, TP_MERGE_TIMESTAMP);
    assert_int_equal(d.epoch, UINT64_C(1) << 40);
    assert_int_equal(d.clock_domain, TP_CLOCK_DOMAIN_REALTIME_SYNCED);
    assert_int_equal(d.lateness_ns, 5 * MS);
    assert_int_equal(d.stale_timeout_ns, UINT64_MAX);
    assert_int_equal(d.rule_count, 2);
    assert_true(d.rules[0].has_offset && !d.rules[0].has_window && d.rules[0].offset == -2 * (int64_t)MS);
    assert_int_equal(d.rules[0].timestamp_source, TP_MERGE_SOURCE_SLOT_HEADER);
    assert_true(!d.rules[1].has_offset && d.rules[1].has_window && d.rules[1].window == 10 * MS);
    /* Sequence maps too, and requests. */
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, 3);
    tp_merge_map_add_offset(&m, A, -1);
    tp_merge_map_add_window(&m, B, 4);
    n = tp_merge_map_encode(&m, buf, sizeof(buf));
    assert_int_equal(tp_merge_map_decode(&d, buf, (size_t)n), 0);
    assert_true(d.rules[0].has_offset && d.rules[0].offset == -1 && !d.rules[0].has_window);
    assert_true(d.rules[1].has_window && d.rules[1].window == 4 && !d.rules[1].has_offset);
    tp_merge_request_t rq = {TP_MERGE_TIMESTAMP, OUT, 3};
    tp_merge_request_t rd;
    n = tp_merge_request_encode(&rq, buf, sizeof(buf));
    assert_int_equal(tp_merge_request_decode(&rd, buf, (size_t)n), 0);
    assert_true(rd.kind == TP_MERGE_TIMESTAMP && rd.out_stream_id == OUT && rd.epoch == 3);
    /* J-14-1: another schema's message with the same template id is refused before its body is read. */
    tp_wire_frame_descriptor_enc_t e;
    tp_wire_frame_descriptor_enc_begin(&e, buf, sizeof(buf));
    n = tp_wire_frame_descriptor_enc_finish(&e);
    tp_sbe_put_u16(buf + 2, 1); /* template 1, as SequenceMergeMapAnnounce */
    assert_int_equal(tp_merge_map_decode(&d, buf, (size_t)n), -1);
    tp_test_assert_contains(tp_errmsg(), "is not the merge-map schema");
    assert_int_equal(tp_merge_request_decode(&rd, buf, (size_t)n), -1);
    /* A map with more rules than we hold is refused, not truncated. */
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, 3);
    for (uint32_t i = 0; i < TP_MERGE_MAX_RULES; i++)
    {
        tp_merge_map_add_offset(&m, A + i, 0);
    }
    assert_int_equal(tp_merge_map_add_offset(&m, 1, 0), -1);
    n = tp_merge_map_encode(&m, buf, sizeof(buf));
    tp_sbe_put_u16(buf + 8 + 20 + 2, TP_MERGE_MAX_RULES + 1); /* numInGroup */
    assert_int_equal(tp_merge_map_decode(&d, buf, (size_t)n), -1);
}

/* The golden vector decodes to what its JSON says, and re-encodes to the same bytes. */
static void test_map_golden_vector(void **state)
{
    (void)state;
    TP_TEST_REQUIRE_SHARED();
    tp_merge_map_t d;
    uint8_t buf[512];
    int64_t n;
    char path[1024];
    snprintf(path, sizeof(path), "%s/vectors/sbe/sequence_map.bin", TP_SHARED_DIR);
    size_t len = 0;
    uint8_t *golden = tp_test_read_file(path, &len);
    assert_int_equal(tp_merge_map_decode(&d, golden, len), 0);
    assert_true(d.out_stream_id == 2000 && d.epoch == 1 && d.stale_timeout_ns == 1000000 && d.rule_count == 1);
    assert_true(d.rules[0].input_stream_id == 1001 && d.rules[0].has_offset && d.rules[0].offset == 0 &&
                !d.rules[0].has_window);
    assert_int_equal(tp_merge_map_validate(&d), 0);
    n = tp_merge_map_encode(&d, buf, sizeof(buf));
    assert_int_equal((size_t)n, len);
    assert_memory_equal(buf, golden, len);
    free(golden);
}

typedef struct seq_case
{
    const char *what;
    uint64_t a_seen; /* UINT64_MAX: nothing observed */
    uint64_t b_seen;
    uint64_t out_seq;
    tp_join_status_t status;
    uint32_t waiting;
} seq_case_t;

/* A: in_seq = out_seq; B: in_seq = out_seq - 2 (spec A.3.2, fixed offset compensation).
 * covers: J-6.2.1-1, J-6.2.1-3, J-7.1-1, J-6.1-1 */
static void test_sequence_offset(void **state)
{
    (void)state;
    seq_case_t cases[] = {
        {"nothing observed", UINT64_MAX, UINT64_MAX, 5, TP_JOIN_WAITING, A},
        {"A only", 5, UINT64_MAX, 5, TP_JOIN_WAITING, B},
        {"both aligned", 5, 3, 5, TP_JOIN_READY, 0},
        {"B one short", 5, 2, 5, TP_JOIN_WAITING, B},
        {"A behind", 4, 3, 5, TP_JOIN_WAITING, A},
        {"both ahead (out of order observation)", 9, 9, 5, TP_JOIN_READY, 0},
        {"out_seq + offset < 0", 9, 9, 1, TP_JOIN_NOT_YET, B},
        {"out_seq = -offset", 9, 9, 2, TP_JOIN_READY, 0},
        {"u64 beyond 2^63", UINT64_C(1) << 63, (UINT64_C(1) << 63) - 2, UINT64_C(1) << 63, TP_JOIN_READY, 0},
        {"u64 beyond 2^63, B short", UINT64_C(1) << 63, (UINT64_C(1) << 63) - 3, UINT64_C(1) << 63,
            TP_JOIN_WAITING, B},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, false);
        tp_merge_map_t m;
        tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
        tp_merge_map_add_offset(&m, A, 0);
        tp_merge_map_add_offset(&m, B, -2);
        assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
        if (cases[i].a_seen != UINT64_MAX)
        {
            obs(b, A, cases[i].a_seen, 0);
        }
        if (cases[i].b_seen != UINT64_MAX)
        {
            obs(b, B, cases[i].b_seen, 0);
        }
        tp_join_result_t r;
        bool ready = tp_join_barrier_ready_seq(b, cases[i].out_seq, 0, &r);
        if (r.status != cases[i].status || r.waiting_stream_id != cases[i].waiting)
        {
            fail_msg("case '%s': status %s (waiting %u), expected %s (waiting %u)", cases[i].what,
                tp_join_status_name(r.status), r.waiting_stream_id, tp_join_status_name(cases[i].status),
                cases[i].waiting);
        }
        assert_int_equal(ready, cases[i].status == TP_JOIN_READY);
        if (ready)
        {
            assert_int_equal(r.input_count, 2);
            assert_int_equal(r.inputs[0].required_seq, cases[i].out_seq);
            assert_int_equal(r.inputs[1].required_seq, cases[i].out_seq - 2);
            assert_true(r.inputs[1].has_frame);
            assert_int_equal(r.inputs[1].seq, cases[i].out_seq - 2); /* exactly in_seq: the slot will tell */
        }
        tp_join_barrier_close(b);
    }
}

/* A window of 4 on A, gated on the range's top.
 * covers: J-6.2.2-1, J-6.2.2-3, J-6.2.2-5 */
static void test_sequence_window(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    tp_merge_map_add_window(&m, A, 4);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_result_t r;
    obs(b, A, 0, 0);
    obs(b, A, 1, 0);
    obs(b, A, 2, 0);
    assert_false(tp_join_barrier_ready_seq(b, 2, 0, &r)); /* out_seq + 1 < N */
    assert_int_equal(r.status, TP_JOIN_NOT_YET);
    obs(b, A, 3, 0);
    assert_true(tp_join_barrier_ready_seq(b, 3, 0, &r));
    assert_int_equal(r.inputs[0].window_first_seq, 0);
    assert_int_equal(r.inputs[0].required_seq, 3);
    /* Frames 5 and 6 were never observed (dropped upstream): out_seq 8 is gated on 8 only, and the frame to use
     * is the newest observed inside [5, 8]. No lower-bound check holds it back. */
    obs(b, A, 4, 0);
    obs(b, A, 7, 0);
    assert_false(tp_join_barrier_ready_seq(b, 8, 0, &r));
    assert_int_equal(r.status, TP_JOIN_WAITING);
    obs(b, A, 9, 0);
    assert_true(tp_join_barrier_ready_seq(b, 8, 0, &r));
    assert_int_equal(r.inputs[0].window_first_seq, 5);
    assert_true(r.inputs[0].has_frame);
    assert_int_equal(r.inputs[0].seq, 7);
    assert_int_equal(r.inputs[0].trace_id, 107);
    /* Nothing observed inside [1, 3]... of a window that was all dropped: still ready (the top was reached), no
     * frame to read (the stage tolerates it). */
    tp_join_barrier_close(b);
    b = make_barrier(TP_JOIN_SEQUENCE, false);
    tp_join_barrier_apply_map(b, &m, 0);
    obs(b, A, 20, 0);
    assert_true(tp_join_barrier_ready_seq(b, 10, 0, &r));
    assert_false(r.inputs[0].has_frame);
    tp_join_barrier_close(b);
}

/* The processed cursor and time move only when the stage says an input frame was consumed, never with what is
 * observed.
 * covers: J-7.1-1, J-8.1-1, J-4-1s */
static void test_processed_cursors(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, true);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    tp_merge_map_add_offset(&m, A, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_result_t r;
    obs(b, A, 5, 0);
    assert_false(tp_join_barrier_ready_seq(b, 5, 0, &r)); /* observed but not processed */
    tp_join_barrier_set_processed(b, A, 4, NUL);
    assert_false(tp_join_barrier_ready_seq(b, 5, 0, &r));
    tp_join_barrier_set_processed(b, A, 5, NUL);
    assert_true(tp_join_barrier_ready_seq(b, 5, 0, &r));
    tp_join_barrier_close(b);
    /* The same for times. */
    b = make_barrier(TP_JOIN_TIMESTAMP, true);
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, EPOCH);
    tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    obs_t(b, A, 1, NUL, 100, 0);
    assert_false(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    tp_join_barrier_set_processed(b, A, 1, 99);
    assert_false(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    tp_join_barrier_set_processed(b, A, 1, 100);
    assert_true(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    tp_join_barrier_close(b);
}

/* covers: J-7.3-1, J-6.4-1, J-6.4-2, J-6.4-3, J-6.1-1 */
static void test_map_scope_and_epochs(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, false);
    tp_join_result_t r;
    obs(b, A, 5, 0);
    obs(b, B, 5, 0);
    assert_false(tp_join_barrier_ready_seq(b, 5, 0, &r)); /* no map: blocked */
    assert_int_equal(r.status, TP_JOIN_NO_MAP);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT + 1, EPOCH); /* another output: ignored */
    tp_merge_map_add_offset(&m, A, 0);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 0);
    m.out_stream_id = OUT;
    m.epoch = EPOCH - 1; /* an old epoch of our output: ignored */
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 0);
    assert_false(tp_join_barrier_ready_seq(b, 5, 0, &r));
    assert_int_equal(r.status, TP_JOIN_NO_MAP);
    m.epoch = EPOCH;
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 2); /* the periodic re-announce changes nothing */
    assert_true(tp_join_barrier_ready_seq(b, 5, 0, &r));
    /* A changed map applies at once: now B must be at out_seq + 1 as well. */
    tp_merge_map_add_offset(&m, B, 1);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
    assert_false(tp_join_barrier_ready_seq(b, 5, 0, &r));
    assert_int_equal(r.waiting_stream_id, B);
    assert_true(tp_join_barrier_ready_seq(b, 4, 0, &r));
    /* A new output epoch: nothing until a map for it arrives, even though the inputs are there. */
    tp_join_barrier_set_output_epoch(b, EPOCH + 1);
    assert_false(tp_join_barrier_ready_seq(b, 4, 0, &r));
    assert_int_equal(r.status, TP_JOIN_NO_MAP);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 0); /* the old epoch's map does not do */
    m.epoch = EPOCH + 1;
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
    assert_true(tp_join_barrier_ready_seq(b, 4, 0, &r));
    /* A timestamp map does not fit a sequence barrier. */
    tp_merge_map_t t;
    tp_merge_map_init(&t, TP_MERGE_TIMESTAMP, OUT, EPOCH + 1);
    tp_merge_map_add_offset_ns(&t, A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    assert_int_equal(tp_join_barrier_apply_map(b, &t, 0), 0);
    assert_false(tp_join_barrier_ready_time(b, 4, MONO, 0, &r));
    assert_int_equal(r.status, TP_JOIN_WRONG_KIND);
    tp_join_barrier_close(b);
}

/* staleTimeoutNs 100 ms: B stops; after 100 ms of local time B is absent and A alone proceeds.
 * covers: J-7.4-1, J-7.4-2, J-7.4-3 */
static void test_staleness(void **state)
{
    (void)state;
    for (int with_timeout = 0; with_timeout < 2; with_timeout++)
    {
        tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, false);
        tp_merge_map_t m;
        tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
        m.stale_timeout_ns = with_timeout ? 100 * MS : TP_MERGE_NULL_U64;
        tp_merge_map_add_offset(&m, A, 0);
        tp_merge_map_add_offset(&m, B, 0);
        tp_join_barrier_apply_map(b, &m, 0);
        tp_join_result_t r;
        obs(b, A, 1, 0);
        obs(b, B, 1, (int64_t)(10 * MS)); /* B's last frame, at t = 10 ms */
        obs(b, A, 2, (int64_t)(50 * MS));
        assert_false(tp_join_barrier_ready_seq(b, 2, (int64_t)(110 * MS), &r)); /* exactly 100 ms: not beyond */
        assert_int_equal(r.waiting_stream_id, B);
        bool ready = tp_join_barrier_ready_seq(b, 2, (int64_t)(110 * MS) + 1, &r);
        if (!with_timeout)
        {
            assert_false(ready); /* no staleTimeoutNs: wait for B forever */
            assert_int_equal(r.status, TP_JOIN_WAITING);
            ready = tp_join_barrier_ready_seq(b, 2, (int64_t)(3600000 * MS), &r);
            assert_false(ready);
            tp_join_barrier_close(b);
            continue;
        }
        assert_true(ready);
        assert_int_equal(r.absent_count, 1);
        assert_false(r.inputs[0].is_absent);
        assert_true(r.inputs[1].is_absent);
        assert_int_equal(r.inputs[1].stream_id, B);
        assert_false(r.inputs[1].has_frame);
        /* B comes back: present again. */
        obs(b, B, 2, (int64_t)(120 * MS));
        assert_true(tp_join_barrier_ready_seq(b, 2, (int64_t)(120 * MS), &r));
        assert_int_equal(r.absent_count, 0);
        /* All inputs stale: nothing to build from. */
        assert_false(tp_join_barrier_ready_seq(b, 3, (int64_t)(500 * MS), &r));
        tp_join_barrier_close(b);
    }
}

/* Camera (slot time, offset 0) and IMU (descriptor time, window 10 ms), lateness 10 ms (spec A.4.2).
 * covers: J-6.3.1-2, J-6.3.1-3, J-6.3.2-2, J-6.3.2-3, J-8.1-1, J-8.2-6, J-10.4-4 */
static void test_timestamp_rules(void **state)
{
    (void)state;
    struct
    {
        const char *what;
        uint64_t lateness; /* TP_MERGE_NULL_U64: absent */
        int64_t cam_offset;
        uint64_t cam_seen, imu_seen, out_time;
        tp_join_status_t status;
        uint32_t waiting;
    } cases[] = {
        {"both reached", 10 * MS, 0, 100 * MS, 100 * MS, 100 * MS, TP_JOIN_READY, 0},
        {"imu lagging within lateness", 10 * MS, 0, 100 * MS, 90 * MS, 100 * MS, TP_JOIN_READY, 0},
        {"imu lagging beyond lateness", 10 * MS, 0, 100 * MS, 90 * MS - 1, 100 * MS, TP_JOIN_WAITING, C},
        {"cam within lateness too", 10 * MS, 0, 95 * MS, 100 * MS, 100 * MS, TP_JOIN_READY, 0},
        {"no lateness: strict", TP_MERGE_NULL_U64, 0, 100 * MS, 100 * MS - 1, 100 * MS, TP_JOIN_WAITING, C},
        {"no lateness: reached", TP_MERGE_NULL_U64, 0, 100 * MS, 100 * MS, 100 * MS, TP_JOIN_READY, 0},
        {"out_time below the window", 10 * MS, 0, 9 * MS, 9 * MS, 9 * MS, TP_JOIN_NOT_YET, C},
        {"out_time = window", 10 * MS, 0, 10 * MS, 10 * MS, 10 * MS, TP_JOIN_READY, 0},
        {"offset -20 ms, out_time below", 10 * MS, -20 * (int64_t)MS, 50 * MS, 50 * MS, 15 * MS, TP_JOIN_NOT_YET, A},
        {"offset -20 ms at 30 ms", 0, -20 * (int64_t)MS, 10 * MS, 30 * MS, 30 * MS, TP_JOIN_READY, 0},
        {"offset -20 ms at 30 ms, cam short", 0, -20 * (int64_t)MS, 10 * MS - 1, 30 * MS, 30 * MS, TP_JOIN_WAITING, A},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        tp_join_barrier_t *b = make_barrier(TP_JOIN_TIMESTAMP, false);
        tp_merge_map_t m;
        tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, EPOCH);
        m.lateness_ns = cases[i].lateness;
        tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_SLOT_HEADER, cases[i].cam_offset);
        tp_merge_map_add_window_ns(&m, C, TP_MERGE_SOURCE_FRAME_DESCRIPTOR, 10 * MS);
        assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
        obs_t(b, A, 1, NUL, cases[i].cam_seen, 0);
        obs_t(b, C, 1, cases[i].imu_seen, NUL, 0);
        tp_join_result_t r;
        tp_join_barrier_ready_time(b, cases[i].out_time, MONO, 0, &r);
        if (r.status != cases[i].status || r.waiting_stream_id != cases[i].waiting)
        {
            fail_msg("case '%s': status %s (waiting %u), expected %s (waiting %u)", cases[i].what,
                tp_join_status_name(r.status), r.waiting_stream_id, tp_join_status_name(cases[i].status),
                cases[i].waiting);
        }
        if (r.is_ready)
        {
            /* required_in_time holds no lateness: the rule's own time. */
            assert_int_equal(r.inputs[0].required_time_ns, cases[i].out_time + (uint64_t)cases[i].cam_offset);
            assert_int_equal(r.inputs[1].required_time_ns, cases[i].out_time);
            assert_int_equal(r.inputs[1].window_first_ns, cases[i].out_time - 10 * MS);
        }
        tp_join_barrier_close(b);
    }
}

/* covers: J-8.2-2, J-8.2-3, J-8.2-9, J-8.2-8, J-8.2-10 */
static void test_timestamp_sources_and_order(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_TIMESTAMP, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, EPOCH);
    tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_FRAME_DESCRIPTOR, 0);
    tp_merge_map_add_offset_ns(&m, B, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_result_t r;
    /* A's descriptors carry no time, B's slots none: neither rule can be ready, however far they got. */
    obs_t(b, A, 1, NUL, 500, 0);
    obs_t(b, B, 1, 500, NUL, 0);
    assert_false(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    assert_int_equal(r.status, TP_JOIN_NO_TIME);
    assert_int_equal(r.waiting_stream_id, A);
    obs_t(b, A, 2, 200, 600, 0);
    assert_false(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    assert_int_equal(r.status, TP_JOIN_NO_TIME);
    assert_int_equal(r.waiting_stream_id, B);
    obs_t(b, B, 2, 600, 200, 0);
    assert_true(tp_join_barrier_ready_time(b, 100, MONO, 0, &r));
    assert_false(r.inputs[0].has_frame); /* nothing stamped at or before 100 to offer */
    assert_false(r.inputs[1].has_frame);
    assert_true(tp_join_barrier_ready_time(b, 200, MONO, 0, &r));
    assert_true(r.inputs[0].has_frame && r.inputs[0].seq == 2 && r.inputs[0].time_ns == 200);
    assert_true(r.inputs[1].has_frame && r.inputs[1].seq == 2 && r.inputs[1].time_ns == 200);
    /* out_time never goes back. */
    assert_false(tp_join_barrier_ready_time(b, 199, MONO, 0, &r));
    assert_int_equal(r.status, TP_JOIN_OUT_OF_ORDER);
    assert_true(tp_join_barrier_ready_time(b, 200, MONO, 0, &r));
    /* B's slot times go back: B is rejected for timestamp joins until its next epoch. */
    obs_t(b, B, 3, 700, 190, 0);
    obs_t(b, B, 4, 800, 900, 0);
    assert_false(tp_join_barrier_ready_time(b, 200, MONO, 0, &r));
    assert_int_equal(r.status, TP_JOIN_NON_MONOTONIC);
    assert_int_equal(r.waiting_stream_id, B);
    assert_int_equal(tp_join_barrier_observe(b, B, 2, 0, 10, 300, MONO, 0, 0), 1); /* a new epoch of B */
    assert_true(tp_join_barrier_ready_time(b, 200, MONO, 0, &r));
    assert_int_equal(r.inputs[1].epoch, 2);
    tp_join_barrier_close(b);
}

/* covers: J-6.3-1, J-8.2-4, J-8.2-5, J-14-3 */
static void test_timestamp_clock_domains(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_TIMESTAMP, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, EPOCH);
    m.clock_domain = 0; /* undeclared */
    tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), -1);
    tp_test_assert_contains(tp_errmsg(), "unknown clock domain");
    m.clock_domain = TP_CLOCK_DOMAIN_REALTIME_SYNCED;
    tp_merge_map_add_offset_ns(&m, B, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    assert_int_equal(tp_join_barrier_apply_map(b, &m, 0), 1);
    tp_join_result_t r;
    tp_join_barrier_observe(b, A, 1, 1, NUL, 100, TP_CLOCK_DOMAIN_REALTIME_SYNCED, 0, 0);
    tp_join_barrier_observe(b, B, 1, 1, NUL, 100, TP_CLOCK_DOMAIN_MONOTONIC, 0, 0); /* B: another domain */
    assert_false(tp_join_barrier_ready_time(b, 100, TP_CLOCK_DOMAIN_REALTIME_SYNCED, 0, &r));
    assert_int_equal(r.status, TP_JOIN_CLOCK_DOMAIN);
    assert_int_equal(r.waiting_stream_id, B);
    tp_join_barrier_observe(b, B, 1, 2, NUL, 100, TP_CLOCK_DOMAIN_REALTIME_SYNCED, 0, 0);
    assert_true(tp_join_barrier_ready_time(b, 100, TP_CLOCK_DOMAIN_REALTIME_SYNCED, 0, &r));
    /* out_time in another domain than the map's. */
    assert_false(tp_join_barrier_ready_time(b, 100, TP_CLOCK_DOMAIN_MONOTONIC, 0, &r));
    assert_int_equal(r.status, TP_JOIN_CLOCK_DOMAIN);
    tp_join_barrier_close(b);
}

/* Fast data + slow configuration (spec A.5.1).
 * covers: J-9.1-1, J-9.1-2, J-9.1-3, J-9.1-4, J-9.1-5, J-9.1-6, J-9.2-1, J-9.3-1 */
static void test_latest_value(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_LATEST_VALUE, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    m.stale_timeout_ns = 60000 * MS;
    tp_merge_map_add_offset(&m, A, 5);  /* parameters are ignored: no alignment */
    tp_merge_map_add_window(&m, B, 100);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_result_t r;
    obs(b, A, 40, 0);
    assert_false(tp_join_barrier_ready_latest(b, 0, &r)); /* no config yet */
    assert_int_equal(r.waiting_stream_id, B);
    obs(b, B, 0, 0);
    obs(b, A, 41, 0);
    obs(b, A, 42, 0);
    assert_true(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.inputs[0].seq, 42); /* the newest of each */
    assert_int_equal(r.inputs[1].seq, 0);
    /* The selected config frame turns out overwritten: absent, not ready, until a newer one is observed. */
    tp_join_barrier_invalidate(b, B, 0);
    assert_false(tp_join_barrier_ready_latest(b, 0, &r));
    assert_true(r.inputs[1].is_absent);
    obs(b, B, 1, 0);
    assert_true(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.inputs[1].seq, 1);
    /* A new epoch of the config stream: its frames of the old epoch are never used. */
    assert_int_equal(tp_join_barrier_observe(b, B, 2, 0, NUL, NUL, MONO, 0, 0), 1);
    assert_true(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.inputs[1].epoch, 2);
    assert_int_equal(r.inputs[1].seq, 0);
    assert_int_equal(tp_join_barrier_observe(b, B, 1, 9, NUL, NUL, MONO, 0, 0), 0); /* the old epoch: ignored */
    assert_true(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.inputs[1].seq, 0);
    /* The config goes quiet for over a minute: best effort, the data goes on with the config marked absent. */
    obs(b, A, 43, (int64_t)(60001 * MS));
    assert_true(tp_join_barrier_ready_latest(b, (int64_t)(60001 * MS), &r));
    assert_true(r.inputs[1].is_absent);
    assert_int_equal(r.absent_count, 1);
    tp_join_barrier_close(b);
    /* An input that never produced in its epoch is waited for (no stale timeout). */
    b = make_barrier(TP_JOIN_LATEST_VALUE, false);
    m.stale_timeout_ns = TP_MERGE_NULL_U64;
    tp_join_barrier_apply_map(b, &m, 0);
    obs(b, A, 1, 0);
    assert_false(tp_join_barrier_ready_latest(b, (int64_t)(3600000 * MS), &r));
    tp_join_barrier_close(b);
}

/* Latest by time: the newest by the map's source and clock domain, all inputs in one domain.
 * covers: J-9.2-1, J-9.2-3, J-9.2-2 */
static void test_latest_by_time(void **state)
{
    (void)state;
    tp_join_barrier_options_t o;
    tp_join_barrier_options_init(&o, TP_JOIN_LATEST_VALUE, OUT);
    o.latest_order = TP_JOIN_ORDER_TIMESTAMP;
    tp_join_barrier_t *b = NULL;
    assert_int_equal(tp_join_barrier_init(&b, &o), 0);
    tp_join_barrier_set_output_epoch(b, EPOCH);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    tp_merge_map_add_offset(&m, A, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_result_t r;
    obs_t(b, A, 1, NUL, 10, 0);
    assert_false(tp_join_barrier_ready_latest(b, 0, &r)); /* time order needs a timestamp map's domain */
    assert_int_equal(r.status, TP_JOIN_CLOCK_DOMAIN);
    tp_merge_map_init(&m, TP_MERGE_TIMESTAMP, OUT, EPOCH);
    tp_merge_map_add_offset_ns(&m, A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_merge_map_add_offset_ns(&m, B, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    /* B's frames arrive out of time order (seq 2 is older than seq 1): the newest by time is seq 1. */
    obs_t(b, B, 1, NUL, 50, 0);
    obs_t(b, B, 2, NUL, 40, 0);
    assert_true(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.inputs[1].seq, 1);
    assert_int_equal(r.inputs[1].time_ns, 50);
    tp_join_barrier_observe(b, A, 1, 2, NUL, 20, TP_CLOCK_DOMAIN_REALTIME_SYNCED, 0, 0);
    assert_false(tp_join_barrier_ready_latest(b, 0, &r));
    assert_int_equal(r.status, TP_JOIN_CLOCK_DOMAIN);
    tp_join_barrier_close(b);
}

/* covers: J-5-1 */
static void test_no_allocation_after_init(void **state)
{
    (void)state;
    tp_join_barrier_t *b = make_barrier(TP_JOIN_SEQUENCE, false);
    tp_join_barrier_t *t = make_barrier(TP_JOIN_TIMESTAMP, false);
    tp_join_barrier_t *l = make_barrier(TP_JOIN_LATEST_VALUE, false);
    tp_merge_map_t m;
    tp_merge_map_init(&m, TP_MERGE_SEQUENCE, OUT, EPOCH);
    tp_merge_map_add_offset(&m, A, 0);
    tp_merge_map_add_window(&m, B, 8);
    tp_merge_map_t tm;
    tp_merge_map_init(&tm, TP_MERGE_TIMESTAMP, OUT, EPOCH);
    tp_merge_map_add_offset_ns(&tm, A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
    tp_join_barrier_apply_map(b, &m, 0);
    tp_join_barrier_apply_map(t, &tm, 0);
    tp_join_barrier_apply_map(l, &m, 0);
    uint64_t before = tp_alloc_count();
    uint64_t before_malloc = tp_malloc_count();
    tp_join_result_t r;
    int ready = 0;
    for (uint64_t s = 0; s < 10000; s++)
    {
        obs_t(b, A, s, s, s, (int64_t)s);
        obs_t(b, B, s, s, s, (int64_t)s);
        obs_t(t, A, s, s, s, (int64_t)s);
        obs_t(l, A, s, s, s, (int64_t)s);
        obs_t(l, B, s, s, s, (int64_t)s);
        ready += tp_join_barrier_ready_seq(b, s, (int64_t)s, &r);
        ready += tp_join_barrier_ready_time(t, s, MONO, (int64_t)s, &r);
        ready += tp_join_barrier_ready_latest(l, (int64_t)s, &r);
        tp_join_barrier_apply_map(b, &m, (int64_t)s); /* a re-announce */
    }
    assert_int_equal(tp_alloc_count(), before);
    if (tp_malloc_count_available())
    {
        assert_int_equal(tp_malloc_count(), before_malloc);
    }
    assert_int_equal(ready, 10000 - 7 + 10000 + 10000);
    tp_join_barrier_close(b);
    tp_join_barrier_close(t);
    tp_join_barrier_close(l);
}

/* Does the generated codec (the meta tables our encoders and decoders use) say what schemas/merge.xml says: the
 * schema id and version, each message's template id, each field's id in order? The codecs are generated from that
 * file at every build; a stale or hand-edited codec fails here.
 * covers: J-10.1-5, J-14-4s */
static void test_codec_matches_schema(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/schemas/merge.xml", TP_SOURCE_DIR);
    size_t len = 0;
    char *xml = (char *)tp_test_read_file(path, &len);
    assert_non_null(xml);
    const tp_sbe_schema_meta_t *schema = &tp_merge_schema_meta;
    assert_non_null(strstr(xml, "id=\"903\" version=\"1\""));
    assert_int_equal(schema->id, 903);
    assert_int_equal(schema->version, 1);
    uint32_t messages = 0;
    for (const char *m = strstr(xml, "<sbe:message "); m != NULL; m = strstr(m + 1, "<sbe:message "))
    {
        unsigned template_id = 0;
        const char *id = strstr(m, " id=\"");
        assert_non_null(id);
        template_id = (unsigned)strtoul(id + 5, NULL, 10);
        const tp_sbe_message_meta_t *meta = NULL;
        for (uint16_t i = 0; i < schema->message_count; i++)
        {
            if (schema->messages[i]->template_id == template_id)
            {
                meta = schema->messages[i];
            }
        }
        assert_non_null(meta);
        assert_int_equal(meta->schema_id, 903);
        /* the fields of the message's own block, in order (a group's fields follow its <group>) */
        const char *end = strstr(m, "</sbe:message>");
        const char *group = strstr(m, "<group");
        const char *block_end = group != NULL && group < end ? group : end;
        uint16_t n = 0;
        for (const char *f = strstr(m, "<field "); f != NULL && f < block_end; f = strstr(f + 1, "<field "))
        {
            assert_true(n < meta->body.field_count);
            assert_int_equal(meta->body.fields[n].id, strtoul(strstr(f, " id=\"") + 5, NULL, 10));
            n++;
        }
        assert_int_equal(n, meta->body.field_count);
        if (group != NULL && group < end)
        {
            const tp_sbe_body_meta_t *g = meta->body.groups[0].body;
            uint16_t k = 0;
            for (const char *f = strstr(group, "<field "); f != NULL && f < end; f = strstr(f + 1, "<field "))
            {
                assert_true(k < g->field_count);
                assert_int_equal(g->fields[k].id, strtoul(strstr(f, " id=\"") + 5, NULL, 10));
                k++;
            }
            assert_int_equal(k, g->field_count);
        }
        messages++;
    }
    assert_int_equal(messages, 4);
    assert_int_equal(schema->message_count, 4);
    free(xml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_validation),
        cmocka_unit_test(test_map_codec),
        cmocka_unit_test(test_map_golden_vector),
        cmocka_unit_test(test_codec_matches_schema),
        cmocka_unit_test(test_sequence_offset),
        cmocka_unit_test(test_sequence_window),
        cmocka_unit_test(test_processed_cursors),
        cmocka_unit_test(test_map_scope_and_epochs),
        cmocka_unit_test(test_staleness),
        cmocka_unit_test(test_timestamp_rules),
        cmocka_unit_test(test_timestamp_sources_and_order),
        cmocka_unit_test(test_timestamp_clock_domains),
        cmocka_unit_test(test_latest_value),
        cmocka_unit_test(test_latest_by_time),
        cmocka_unit_test(test_no_allocation_after_init),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
