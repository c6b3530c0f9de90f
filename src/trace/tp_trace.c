/* Trace ids and the TraceLinkSet codec (TraceLink spec 6, 9, 16). */
#include "tensorpool/tp_trace.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_err.h"
#include "tp_sbe_tracelink.h"

#define SEQUENCE_BITS 11
#define NODE_BITS 11
#define TIME_BITS 41
#define SEQUENCE_MAX ((1u << SEQUENCE_BITS) - 1)
#define TIME_MAX ((UINT64_C(1) << TIME_BITS) - 1)

int tp_trace_id_gen_init(tp_trace_id_gen_t *gen, uint32_t node_id)
{
    memset(gen, 0, sizeof(*gen));
    if (node_id > TP_TRACE_NODE_ID_MAX)
    {
        TP_SET_ERR(TP_E_INVALID, "node id %" PRIu32 " does not fit the trace id's %d node bits (at most %u)", node_id,
            NODE_BITS, TP_TRACE_NODE_ID_MAX);
        return -1;
    }
    gen->node_id = node_id;
    return 0;
}

uint64_t tp_trace_id_next(tp_trace_id_gen_t *gen, int64_t realtime_ns)
{
    int64_t ms = realtime_ns / 1000000 - TP_TRACE_EPOCH_MS;
    uint64_t now_ms = ms < 1 ? 1 : (uint64_t)ms; /* from 1: an id is never 0, whatever the node and the clock */
    if (now_ms > gen->last_ms)
    {
        gen->last_ms = now_ms;
        gen->sequence = 0;
    }
    else if (gen->sequence == SEQUENCE_MAX)
    {
        gen->last_ms++; /* this millisecond is used up: borrow the next one rather than wait for it */
        gen->sequence = 0;
    }
    else
    {
        gen->sequence++;
    }
    return ((gen->last_ms & TIME_MAX) << (NODE_BITS + SEQUENCE_BITS)) | ((uint64_t)gen->node_id << SEQUENCE_BITS) |
           gen->sequence;
}

int64_t tp_trace_id_time_ms(uint64_t trace_id)
{
    return (int64_t)(trace_id >> (NODE_BITS + SEQUENCE_BITS)) + TP_TRACE_EPOCH_MS;
}

uint32_t tp_trace_id_node(uint64_t trace_id)
{
    return (uint32_t)(trace_id >> SEQUENCE_BITS) & TP_TRACE_NODE_ID_MAX;
}

uint32_t tp_trace_id_sequence(uint64_t trace_id)
{
    return (uint32_t)trace_id & SEQUENCE_MAX;
}

uint32_t tp_trace_link_set_parents(tp_trace_link_t *link, const uint64_t *trace_ids, uint32_t count)
{
    link->parent_count = 0;
    for (uint32_t i = 0; i < count && link->parent_count < TP_TRACE_MAX_PARENTS; i++)
    {
        bool is_repeat = trace_ids[i] == 0;
        for (uint32_t j = 0; j < link->parent_count && !is_repeat; j++)
        {
            is_repeat = link->parents[j] == trace_ids[i];
        }
        if (!is_repeat)
        {
            link->parents[link->parent_count++] = trace_ids[i];
        }
    }
    return link->parent_count;
}

static int check_parents(const tp_trace_link_t *link, int code)
{
    if (link->trace_id == 0)
    {
        TP_SET_ERR(code, "TraceLinkSet of stream %" PRIu32 " seq %" PRIu64 " has trace id 0 (the null id)",
            link->stream_id, link->seq);
        return -1;
    }
    if (link->parent_count == 0 || link->parent_count > TP_TRACE_MAX_PARENTS)
    {
        TP_SET_ERR(code, "TraceLinkSet of trace %" PRIu64 " needs 1 to %d parents, not %" PRIu32, link->trace_id,
            TP_TRACE_MAX_PARENTS, link->parent_count);
        return -1;
    }
    for (uint32_t i = 0; i < link->parent_count; i++)
    {
        if (link->parents[i] == 0)
        {
            TP_SET_ERR(code, "TraceLinkSet of trace %" PRIu64 ": parent %" PRIu32 " is 0 (the null id)",
                link->trace_id, i);
            return -1;
        }
        for (uint32_t j = 0; j < i; j++)
        {
            if (link->parents[j] == link->parents[i])
            {
                TP_SET_ERR(code, "TraceLinkSet of trace %" PRIu64 ": parent %" PRIu64 " is listed twice",
                    link->trace_id, link->parents[i]);
                return -1;
            }
        }
    }
    return 0;
}

int tp_trace_link_validate(const tp_trace_link_t *link)
{
    return check_parents(link, TP_E_INVALID);
}

int64_t tp_trace_link_encode(const tp_trace_link_t *link, void *buffer, size_t capacity)
{
    if (tp_trace_link_validate(link) < 0)
    {
        return -1;
    }
    tp_tracelink_trace_link_set_enc_t e;
    tp_tracelink_trace_link_set_enc_begin(&e, buffer, capacity);
    tp_tracelink_trace_link_set_set_stream_id(&e, link->stream_id);
    tp_tracelink_trace_link_set_set_epoch(&e, link->epoch);
    tp_tracelink_trace_link_set_set_seq(&e, link->seq);
    tp_tracelink_trace_link_set_set_trace_id(&e, link->trace_id);
    tp_tracelink_trace_link_set_parents_enc_t g;
    tp_tracelink_trace_link_set_parents_begin(&e, &g, (uint16_t)link->parent_count);
    for (uint32_t i = 0; i < link->parent_count; i++)
    {
        tp_tracelink_trace_link_set_parents_enc_next(&g);
        tp_tracelink_trace_link_set_parents_set_trace_id(&g, link->parents[i]);
    }
    tp_tracelink_trace_link_set_parents_end(&g);
    return tp_tracelink_trace_link_set_enc_finish(&e);
}

int tp_trace_link_decode(tp_trace_link_t *link, const void *buffer, size_t length)
{
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0)
    {
        return -1;
    }
    /* T-13-1: the schema id first; other schemas share the stream. */
    if (h.schema_id != TP_TRACELINK_SCHEMA_ID || h.template_id != TP_TRACELINK_TRACE_LINK_SET_TEMPLATE_ID)
    {
        TP_SET_ERR(TP_E_MALFORMED, "schema %u template %u is not TraceLinkSet (schema %d template %d)", h.schema_id,
            h.template_id, TP_TRACELINK_SCHEMA_ID, TP_TRACELINK_TRACE_LINK_SET_TEMPLATE_ID);
        return -1;
    }
    tp_tracelink_trace_link_set_t m;
    if (tp_tracelink_trace_link_set_decode(&m, buffer, length) < 0)
    {
        return -1;
    }
    memset(link, 0, sizeof(*link));
    link->stream_id = tp_tracelink_trace_link_set_stream_id(&m);
    link->epoch = tp_tracelink_trace_link_set_epoch(&m);
    link->seq = tp_tracelink_trace_link_set_seq(&m);
    link->trace_id = tp_tracelink_trace_link_set_trace_id(&m);
    tp_tracelink_trace_link_set_parents_t g;
    uint16_t count = tp_tracelink_trace_link_set_parents(&m, &g);
    if (count > TP_TRACE_MAX_PARENTS)
    {
        TP_SET_ERR(TP_E_CAPACITY, "TraceLinkSet with %u parents; this build takes at most %d", count,
            TP_TRACE_MAX_PARENTS);
        return -1;
    }
    while (tp_tracelink_trace_link_set_parents_next(&g))
    {
        link->parents[link->parent_count++] = tp_tracelink_trace_link_set_parents_trace_id(&g);
    }
    return check_parents(link, TP_E_MALFORMED);
}
