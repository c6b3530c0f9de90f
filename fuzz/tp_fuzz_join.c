/*
 * Fuzz: the merge-map, merge-request and TraceLinkSet decoders, and a join barrier's update path driven by the
 * bytes. A decoded map re-encodes to a map that decodes the same; a decoded TraceLinkSet obeys every rule; the
 * barrier, fed the decoded map and then observations and readiness questions taken from the rest of the input,
 * never answers inconsistently (ready exactly when the status says so; a ready sequence output only when every
 * present input reached its rule's sequence).
 */
#include <string.h>

#include "tensorpool/tp_join.h"
#include "tensorpool/tp_trace.h"
#include "tp_fuzz.h"

static uint64_t take(const uint8_t **p, const uint8_t *end, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && *p < end; i++)
    {
        v |= (uint64_t)*(*p)++ << (8 * i);
    }
    return v;
}

static void check_map_roundtrip(const tp_merge_map_t *m)
{
    uint8_t buf[1024];
    int64_t n = tp_merge_map_encode(m, buf, sizeof(buf));
    tp_merge_map_t again;
    if (n <= 0 || tp_merge_map_decode(&again, buf, (size_t)n) < 0 || again.rule_count != m->rule_count ||
        again.out_stream_id != m->out_stream_id || again.epoch != m->epoch)
    {
        __builtin_trap();
    }
}

static void check_sequence_result(const tp_merge_map_t *m, tp_join_barrier_t *b, const tp_join_result_t *r)
{
    if (r->is_ready != (r->status == TP_JOIN_READY) || r->absent_count > r->input_count ||
        r->input_count > TP_JOIN_MAX_INPUTS)
    {
        __builtin_trap();
    }
    if (!r->is_ready || r->input_count != m->rule_count)
    {
        return;
    }
    for (uint32_t i = 0; i < r->input_count; i++)
    {
        uint64_t epoch;
        uint64_t first;
        uint64_t seq;
        if (!r->inputs[i].is_absent &&
            (!tp_join_barrier_observed(b, r->inputs[i].stream_id, &epoch, &first, &seq) ||
                seq < r->inputs[i].required_seq))
        {
            __builtin_trap();
        }
    }
}

static void drive_barrier(const tp_merge_map_t *m, const uint8_t *p, const uint8_t *end)
{
    tp_join_kind_t kind = m->kind == TP_MERGE_TIMESTAMP ? TP_JOIN_TIMESTAMP
                          : p < end && (*p & 1)         ? TP_JOIN_LATEST_VALUE
                                                        : TP_JOIN_SEQUENCE;
    tp_join_barrier_options_t o;
    tp_join_barrier_options_init(&o, kind, m->out_stream_id == 0 ? 1 : m->out_stream_id);
    tp_join_barrier_t *b = NULL;
    if (tp_join_barrier_init(&b, &o) < 0)
    {
        return;
    }
    tp_join_barrier_set_output_epoch(b, m->epoch);
    int64_t now = 0;
    tp_join_barrier_apply_map(b, m, now);
    while (p < end)
    {
        uint8_t op = (uint8_t)take(&p, end, 1);
        uint32_t stream = m->rule_count > 0 ? m->rules[op % m->rule_count].input_stream_id : (uint32_t)op;
        now += (int64_t)take(&p, end, 2) * 1000;
        tp_join_result_t r;
        switch (op >> 5)
        {
        case 0:
        case 1:
        case 2:
            tp_join_barrier_observe(b, stream, take(&p, end, 1), take(&p, end, 2), take(&p, end, 2),
                take(&p, end, 2), (uint8_t)(1 + (op & 1)), take(&p, end, 1), now);
            break;
        case 3:
            tp_join_barrier_ready_seq(b, take(&p, end, 2), now, &r);
            check_sequence_result(m, b, &r);
            break;
        case 4:
            tp_join_barrier_ready_time(b, take(&p, end, 2), (uint8_t)(1 + (op & 1)), now, &r);
            if (r.is_ready != (r.status == TP_JOIN_READY))
            {
                __builtin_trap();
            }
            break;
        case 5:
            tp_join_barrier_ready_latest(b, now, &r);
            if (r.is_ready != (r.status == TP_JOIN_READY))
            {
                __builtin_trap();
            }
            break;
        case 6:
            tp_join_barrier_invalidate(b, stream, take(&p, end, 2));
            tp_join_barrier_set_processed(b, stream, take(&p, end, 2), take(&p, end, 2));
            break;
        default:
            tp_join_barrier_set_output_epoch(b, take(&p, end, 1));
            tp_join_barrier_apply_map(b, m, now);
            break;
        }
    }
    tp_join_barrier_close(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_merge_map_t m;
    if (tp_merge_map_decode(&m, data, size) == 0)
    {
        check_map_roundtrip(&m);
        /* the rest of the input after the message drives the barrier */
        size_t used = size < 64 ? size : 64;
        drive_barrier(&m, data + used, data + size);
    }
    tp_merge_request_t r;
    tp_merge_request_decode(&r, data, size);
    tp_trace_link_t l;
    if (tp_trace_link_decode(&l, data, size) == 0 && tp_trace_link_validate(&l) < 0)
    {
        __builtin_trap(); /* the decoder let through a link that breaks a rule */
    }
    return 0;
}
