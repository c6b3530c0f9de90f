/*
 * The join agent: polls the control stream for merge maps (asking for a missing one), the inputs' descriptors
 * into the barrier, and then hands every output the barrier allows to the handler, with the input frames read in
 * a single attempt each (join barrier spec 7.2, 8.3: a frame that no longer validates drops the output, nothing
 * waits). Everything is allocated in init.
 */
#include "tensorpool/tp_join.h"

#include <inttypes.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "tensorpool/tp_trace.h"
#include "tp_sbe_merge.h"

#define DEFAULT_REQUEST_INTERVAL_MS 200
#define PENDING_TICKS 64
#define POLL_LIMIT 64
#define MAX_OUTPUTS_PER_CYCLE 256

typedef struct join_input_ref
{
    tp_join_agent_t *agent;
    tp_consumer_t *consumer;
    uint32_t stream_id;
    bool has_epoch;
    uint64_t epoch;
} join_input_ref_t;

struct tp_join_agent
{
    tp_client_t *client;
    tp_join_agent_options_t options;
    uint32_t input_count;
    join_input_ref_t inputs[TP_JOIN_MAX_INPUTS];
    tp_join_barrier_t *barrier;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    tp_trace_emitter_t *emitter;
    int64_t request_interval_ns;
    int64_t next_request_ns;
    int64_t now_ns;
    bool has_next_seq;
    uint64_t next_out_seq;
    uint64_t pending[PENDING_TICKS]; /* out_time of ticks waiting for the barrier */
    uint32_t pending_head;
    uint32_t pending_count;
    bool is_latest_pending;
    int work;
    tp_join_result_t result;
    tp_join_tick_t tick;
    tp_join_agent_counters_t counters;
};

void tp_join_agent_options_init(tp_join_agent_options_t *options, tp_join_kind_t kind, uint32_t out_stream_id)
{
    memset(options, 0, sizeof(*options));
    tp_join_barrier_options_init(&options->barrier, kind, out_stream_id);
}

int tp_join_agent_init(tp_join_agent_t **out, tp_client_t *client, const tp_join_agent_options_t *options)
{
    *out = NULL;
    if (options->input_count == 0 || options->input_count > TP_JOIN_MAX_INPUTS || options->on_tick == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "a join agent needs 1 to %d input consumers and a handler (have %" PRIu32 "%s)",
            TP_JOIN_MAX_INPUTS, options->input_count, options->on_tick == NULL ? ", no handler" : "");
        return -1;
    }
    tp_join_agent_t *a = NULL;
    if (tp_alloc((void **)&a, sizeof(*a)) < 0)
    {
        return -1;
    }
    a->client = client;
    a->options = *options;
    a->options.inputs = NULL;
    a->input_count = options->input_count;
    for (uint32_t i = 0; i < a->input_count; i++)
    {
        a->inputs[i].agent = a;
        a->inputs[i].consumer = options->inputs[i];
        a->inputs[i].stream_id = tp_consumer_stream_id(options->inputs[i]);
    }
    uint32_t interval_ms = options->request_interval_ms == 0 ? DEFAULT_REQUEST_INTERVAL_MS
                                                              : options->request_interval_ms;
    a->request_interval_ns = (int64_t)interval_ms * TP_NS_PER_MS;
    if (tp_join_barrier_init(&a->barrier, &options->barrier) < 0 ||
        tp_bus_publication_open(&a->pub, client->bus, client->config.control_channel,
            (int32_t)client->config.control_stream_id, false) < 0 ||
        tp_bus_subscription_open(&a->sub, client->bus, client->config.control_channel,
            (int32_t)client->config.control_stream_id, NULL, NULL, NULL) < 0 ||
        (options->output != NULL && tp_trace_emitter_init(&a->emitter, client, 0) < 0))
    {
        TP_APPEND_ERR("starting the join agent of output stream %" PRIu32, options->barrier.out_stream_id);
        tp_bus_subscription_close(a->sub);
        tp_bus_publication_close(a->pub);
        tp_join_barrier_close(a->barrier);
        tp_free(a);
        return -1;
    }
    tp_client_retain(client);
    *out = a;
    return 0;
}

int tp_join_agent_close(tp_join_agent_t *a)
{
    if (a == NULL)
    {
        return 0;
    }
    tp_trace_emitter_close(a->emitter);
    tp_bus_subscription_close(a->sub);
    tp_bus_publication_close(a->pub);
    tp_join_barrier_close(a->barrier);
    tp_client_t *client = a->client;
    tp_free(a);
    tp_client_release(client);
    return 0;
}

tp_join_barrier_t *tp_join_agent_barrier(tp_join_agent_t *a)
{
    return a->barrier;
}

void tp_join_agent_counters(const tp_join_agent_t *a, tp_join_agent_counters_t *out)
{
    *out = a->counters;
    if (a->emitter != NULL)
    {
        tp_trace_emitter_counters_t t;
        tp_trace_emitter_counters(a->emitter, &t);
        out->tracelinks_dropped += t.dropped_busy;
    }
}

/* ---- the control plane ---- */

static void on_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_join_agent_t *a = clientd;
    tp_sbe_header_t h;
    /* J-14-1: the schema id is checked before decoding; the driver's messages share this stream. */
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_MERGE_SCHEMA_ID ||
        (h.template_id != TP_MERGE_SEQUENCE_MERGE_MAP_ANNOUNCE_TEMPLATE_ID &&
            h.template_id != TP_MERGE_TIMESTAMP_MERGE_MAP_ANNOUNCE_TEMPLATE_ID))
    {
        return;
    }
    tp_merge_map_t map;
    if (tp_merge_map_decode(&map, buffer, length) < 0)
    {
        if (map.out_stream_id == a->options.barrier.out_stream_id)
        {
            a->counters.maps_invalid++;
        }
        return;
    }
    int rc = tp_join_barrier_apply_map(a->barrier, &map, a->now_ns);
    a->counters.maps_applied += rc == 1 ? 1 : 0;
    a->counters.maps_invalid += rc < 0 ? 1 : 0;
    a->counters.maps_foreign += rc == 0 ? 1 : 0;
    if (rc == 1)
    {
        a->has_next_seq = false; /* a new map: where outputs start is worked out again */
        a->work++;
    }
}

static void request_map(tp_join_agent_t *a)
{
    tp_merge_request_t r = {
        .kind = a->options.barrier.kind == TP_JOIN_TIMESTAMP ? TP_MERGE_TIMESTAMP : TP_MERGE_SEQUENCE,
        .out_stream_id = a->options.barrier.out_stream_id,
        .epoch = tp_join_barrier_output_epoch(a->barrier),
    };
    uint8_t buf[32];
    int64_t n = tp_merge_request_encode(&r, buf, sizeof(buf));
    /* J-10.3-2: a join without a map for (output, epoch) asks on the control stream. */
    if (n > 0 && tp_bus_offer(a->pub, buf, (size_t)n) >= 0)
    {
        a->counters.requests_sent++;
        a->work++;
    }
    a->next_request_ns = a->now_ns + a->request_interval_ns;
}

/* ---- the inputs ---- */

static const tp_merge_rule_t *rule_of(const tp_merge_map_t *map, uint32_t stream_id)
{
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        if (map->rules[i].input_stream_id == stream_id)
        {
            return &map->rules[i];
        }
    }
    return NULL;
}

static void push_tick(tp_join_agent_t *a, uint64_t out_time_ns)
{
    if (a->pending_count == PENDING_TICKS)
    {
        a->pending_head = (a->pending_head + 1) % PENDING_TICKS; /* the oldest waited longest: it goes */
        a->pending_count--;
        a->counters.ticks_overflow++;
    }
    a->pending[(a->pending_head + a->pending_count) % PENDING_TICKS] = out_time_ns;
    a->pending_count++;
}

static void on_frame(void *clientd, const tp_frame_t *frame)
{
    join_input_ref_t *in = clientd;
    tp_join_agent_t *a = in->agent;
    if (in->has_epoch && in->epoch != frame->epoch)
    {
        a->has_next_seq = false; /* the input started over (a new producer): so do the output sequences */
    }
    in->has_epoch = true;
    in->epoch = frame->epoch;
    tp_join_barrier_observe_frame(a->barrier, frame, a->now_ns);
    uint32_t anchor = a->options.anchor_stream_id;
    if (anchor != 0 && frame->stream_id != anchor)
    {
        return;
    }
    if (a->options.barrier.kind == TP_JOIN_LATEST_VALUE)
    {
        a->is_latest_pending = true;
    }
    else if (a->options.barrier.kind == TP_JOIN_TIMESTAMP)
    {
        const tp_join_barrier_t *b = a->barrier;
        tp_merge_map_t map;
        const tp_merge_rule_t *rule = tp_join_barrier_map(b, &map) ? rule_of(&map, frame->stream_id) : NULL;
        bool is_descriptor = rule != NULL && rule->timestamp_source == TP_MERGE_SOURCE_FRAME_DESCRIPTOR;
        push_tick(a, is_descriptor ? frame->publish_timestamp_ns : frame->timestamp_ns);
    }
}

static int poll_inputs(tp_join_agent_t *a)
{
    for (uint32_t i = 0; i < a->input_count; i++)
    {
        int n = tp_consumer_poll(a->inputs[i].consumer, on_frame, &a->inputs[i], POLL_LIMIT);
        if (n < 0)
        {
            TP_APPEND_ERR("join agent: polling input stream %" PRIu32, a->inputs[i].stream_id);
            return -1;
        }
        a->work += n;
    }
    return 0;
}

static tp_consumer_t *consumer_of(const tp_join_agent_t *a, uint32_t stream_id)
{
    for (uint32_t i = 0; i < a->input_count; i++)
    {
        if (a->inputs[i].stream_id == stream_id)
        {
            return a->inputs[i].consumer;
        }
    }
    return NULL;
}

/* ---- outputs ---- */

typedef enum tick_outcome
{
    TICK_DONE,    /* handed to the handler */
    TICK_DROPPED, /* a required frame failed validation: dropped, not retried */
    TICK_RETRY,   /* latest value: a selected frame was overwritten; the barrier now knows, try a later tick */
    TICK_STOP,    /* the handler asked to stop */
} tick_outcome_t;

/* Read each input's frame once (J-7.2-3, J-8.3-3) and run the handler. A frame that cannot be read is tolerated
 * inside a window (J-6.2.2-4), makes a latest-value input absent (J-9.1-4), and drops any other output. */
static tick_outcome_t run_tick(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    tp_join_tick_t *t = &a->tick;
    const tp_join_result_t *r = &a->result;
    t->result = r;
    t->input_count = r->input_count;
    for (uint32_t i = 0; i < r->input_count; i++)
    {
        const tp_join_input_result_t *ir = &r->inputs[i];
        t->has_frame[i] = false;
        tp_consumer_t *c = consumer_of(a, ir->stream_id);
        if (ir->is_absent || !ir->has_frame)
        {
            continue;
        }
        if (c == NULL || tp_consumer_read(c, ir->seq, &t->frames[i]) != 1)
        {
            if (a->options.barrier.kind == TP_JOIN_LATEST_VALUE)
            {
                tp_join_barrier_invalidate(a->barrier, ir->stream_id, ir->seq);
                return TICK_RETRY;
            }
            if (map->rules[i].rule_type == TP_MERGE_RULE_WINDOW)
            {
                continue;
            }
            return TICK_DROPPED;
        }
        t->frames[i].trace_id = ir->trace_id;
        t->has_frame[i] = true;
    }
    if (a->options.on_tick(a->options.clientd, t) < 0)
    {
        return TICK_STOP;
    }
    for (uint32_t i = 0; i < r->input_count; i++)
    {
        if (t->has_frame[i])
        {
            tp_join_barrier_set_processed(a->barrier, r->inputs[i].stream_id, t->frames[i].seq,
                r->inputs[i].time_ns);
        }
    }
    return TICK_DONE;
}

static int count_outcome(tp_join_agent_t *a, tick_outcome_t o)
{
    a->work++;
    if (o == TICK_DONE)
    {
        a->counters.outputs++;
    }
    else if (o == TICK_DROPPED)
    {
        a->counters.dropped++;
    }
    return o == TICK_STOP ? -1 : 0;
}

/* Where sequence outputs start: the lowest out_seq every rule can serve from the first frame it saw of each input
 * (outputs before that would need frames this join never observed). false while an input has not been seen. */
static bool find_start(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    uint64_t start = 0;
    bool has_any = false;
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        const tp_merge_rule_t *rule = &map->rules[i];
        bool is_offset = rule->rule_type == TP_MERGE_RULE_OFFSET;
        uint64_t lowest = is_offset ? (rule->offset < 0 ? (uint64_t)-rule->offset : 0) : rule->window - 1;
        start = lowest > start ? lowest : start;
        uint64_t epoch;
        uint64_t first;
        uint64_t seq;
        if (!tp_join_barrier_observed(a->barrier, rule->input_stream_id, &epoch, &first, &seq))
        {
            if (map->stale_timeout_ns != TP_MERGE_NULL_U64)
            {
                continue; /* it may turn stale: the others set the start */
            }
            return false;
        }
        has_any = true;
        uint64_t from = is_offset ? (rule->offset > 0 && first < (uint64_t)rule->offset ? 0 : first - (uint64_t)rule->offset)
                                  : first;
        start = from > start ? from : start;
    }
    if (!has_any)
    {
        return false;
    }
    a->next_out_seq = start;
    a->has_next_seq = true;
    return true;
}

/* Are the frames output out_seq needs (its OFFSET rules' in_seq; windows tolerate holes) all in their slots now? */
static bool frames_present(tp_join_agent_t *a, const tp_merge_map_t *map, uint64_t out_seq)
{
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        const tp_merge_rule_t *rule = &map->rules[i];
        if (rule->rule_type != TP_MERGE_RULE_OFFSET)
        {
            continue;
        }
        tp_consumer_t *c = consumer_of(a, rule->input_stream_id);
        tp_frame_t f;
        if (c == NULL || (rule->offset < 0 && out_seq < (uint64_t)-rule->offset) ||
            tp_consumer_read(c, out_seq + (uint64_t)rule->offset, &f) != 1)
        {
            return false;
        }
    }
    return true;
}

/* A dropped output means the inputs lapped the join: rather than try every output behind (all overwritten, and the
 * join would never catch up), jump to the first output up to the newest the inputs reached whose frames are all
 * still there, found by bisection (older frames are overwritten first). The outputs skipped count as dropped: the
 * join's resync, as a consumer's (wire spec 15.4). */
static void resync(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    uint64_t newest = UINT64_MAX;
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        const tp_merge_rule_t *rule = &map->rules[i];
        uint64_t epoch;
        uint64_t first;
        uint64_t seq;
        if (!tp_join_barrier_observed(a->barrier, rule->input_stream_id, &epoch, &first, &seq))
        {
            continue;
        }
        uint64_t reach = rule->rule_type == TP_MERGE_RULE_OFFSET ? seq - (uint64_t)rule->offset : seq;
        newest = reach < newest ? reach : newest;
    }
    if (newest == UINT64_MAX || a->next_out_seq > newest)
    {
        return;
    }
    uint64_t lo = a->next_out_seq;
    uint64_t hi = newest + 1;
    while (lo < hi)
    {
        uint64_t mid = lo + (hi - lo) / 2;
        if (frames_present(a, map, mid))
        {
            hi = mid;
        }
        else
        {
            lo = mid + 1;
        }
    }
    a->counters.dropped += lo - a->next_out_seq;
    a->next_out_seq = lo;
}

static int run_sequence(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    if (!a->has_next_seq && !find_start(a, map))
    {
        return 0;
    }
    for (int n = 0; n < MAX_OUTPUTS_PER_CYCLE; n++)
    {
        if (!tp_join_barrier_ready_seq(a->barrier, a->next_out_seq, a->now_ns, &a->result))
        {
            return 0;
        }
        a->tick.out_seq = a->next_out_seq;
        a->tick.out_time_ns = 0;
        a->next_out_seq++;
        tick_outcome_t o = run_tick(a, map);
        if (count_outcome(a, o) < 0)
        {
            return -1;
        }
        if (o == TICK_DROPPED)
        {
            resync(a, map);
        }
    }
    return 0;
}

static int run_timestamp(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    while (a->pending_count > 0)
    {
        uint64_t out_time = a->pending[a->pending_head];
        bool is_ready = tp_join_barrier_ready_time(a->barrier, out_time, map->clock_domain, a->now_ns, &a->result);
        tp_join_status_t st = a->result.status;
        if (!is_ready && (st == TP_JOIN_WAITING || st == TP_JOIN_NO_TIME))
        {
            return 0; /* wait for the inputs; later ticks queue behind this one */
        }
        a->pending_head = (a->pending_head + 1) % PENDING_TICKS;
        a->pending_count--;
        if (!is_ready)
        {
            a->counters.ticks_rejected++; /* can never be served: another domain, time went back, below a window */
            continue;
        }
        a->tick.out_seq = 0;
        a->tick.out_time_ns = out_time;
        if (count_outcome(a, run_tick(a, map)) < 0)
        {
            return -1;
        }
    }
    return 0;
}

static int run_latest(tp_join_agent_t *a, const tp_merge_map_t *map)
{
    if (!a->is_latest_pending || !tp_join_barrier_ready_latest(a->barrier, a->now_ns, &a->result))
    {
        return 0;
    }
    tick_outcome_t o = run_tick(a, map);
    if (o == TICK_RETRY)
    {
        return 0; /* J-9.1-5: not ready this time; the next tick tries again */
    }
    a->is_latest_pending = false;
    return count_outcome(a, o);
}

int tp_join_agent_do_work(tp_join_agent_t *a, int64_t now_ns)
{
    a->now_ns = now_ns;
    a->work = 0;
    tp_producer_t *output = a->options.output;
    if (output != NULL && tp_producer_is_attached(output) &&
        tp_producer_epoch(output) != tp_join_barrier_output_epoch(a->barrier))
    {
        tp_join_barrier_set_output_epoch(a->barrier, tp_producer_epoch(output));
        a->has_next_seq = false;
        a->pending_count = 0;
    }
    a->work += tp_bus_poll(a->sub, on_control, a, 16) > 0 ? 1 : 0;
    if (poll_inputs(a) < 0)
    {
        return -1;
    }
    tp_merge_map_t map;
    if (!tp_join_barrier_map(a->barrier, &map))
    {
        if (now_ns >= a->next_request_ns && (output == NULL || tp_producer_is_attached(output)))
        {
            request_map(a);
        }
    }
    else
    {
        int rc = a->options.barrier.kind == TP_JOIN_SEQUENCE    ? run_sequence(a, &map)
                 : a->options.barrier.kind == TP_JOIN_TIMESTAMP ? run_timestamp(a, &map)
                                                                : run_latest(a, &map);
        if (rc < 0)
        {
            return -1;
        }
    }
    if (a->emitter != NULL)
    {
        tp_trace_emitter_do_work(a->emitter);
    }
    tp_bus_publication_do_work(a->pub);
    return a->work;
}

static int agent_work(void *state, int64_t now_ns)
{
    return tp_join_agent_do_work(state, now_ns);
}

void tp_join_agent_as_agent(tp_join_agent_t *a, tp_agent_t *out)
{
    memset(out, 0, sizeof(*out));
    out->name = "join";
    out->do_work = agent_work;
    out->state = a;
}

int64_t tp_join_agent_publish(tp_join_agent_t *a, const tp_join_tick_t *tick, const void *payload, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version)
{
    tp_producer_t *output = a->options.output;
    if (output == NULL)
    {
        TP_SET_ERR(TP_E_STATE, "the join agent of stream %" PRIu32 " has no output producer",
            a->options.barrier.out_stream_id);
        return -1;
    }
    uint64_t ids[TP_JOIN_MAX_INPUTS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < tick->input_count; i++)
    {
        if (tick->has_frame[i])
        {
            ids[n++] = tick->frames[i].trace_id;
        }
    }
    tp_trace_link_t link;
    uint32_t parents = tp_trace_link_set_parents(&link, ids, n);
    /* T-6.3-2/3: one traced input is a 1->1 derivation (its id goes on); two or more make a new id, linked. */
    uint64_t trace_id = parents == 1 ? link.parents[0] : 0;
    int64_t seq = tp_producer_offer_frame(output, payload, length, tensor, meta_version, trace_id);
    if (seq < 0 || parents < 2 || tp_producer_last_trace_id(output) == 0)
    {
        return seq;
    }
    link.stream_id = tp_producer_stream_id(output);
    link.epoch = tp_producer_epoch(output);
    link.seq = (uint64_t)seq;
    link.trace_id = tp_producer_last_trace_id(output);
    if (tp_trace_emitter_offer(a->emitter, &link))
    {
        a->counters.tracelinks++;
    }
    else
    {
        a->counters.tracelinks_dropped++;
    }
    return seq;
}
