/*
 * Join barriers (join barrier spec sections 6 to 9): the readiness of an output from what was observed of its
 * inputs. Pure state: every call takes its time from the caller, nothing blocks and nothing allocates after init.
 */
#include "tensorpool/tp_join.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"

enum
{
    SOURCE_DESCRIPTOR = 0,
    SOURCE_SLOT = 1,
    SOURCE_COUNT = 2,
};

typedef enum map_state
{
    MAP_NONE = 0,
    MAP_ACTIVE = 1,
    MAP_INVALID = 2,
} map_state_t;

typedef struct join_obs
{
    uint64_t seq;
    uint64_t time_ns[SOURCE_COUNT];
    uint64_t trace_id;
} join_obs_t;

typedef struct join_input
{
    uint32_t stream_id; /* 0: a free row */
    uint64_t epoch;
    uint8_t clock_domain;
    bool has_observed;
    uint64_t observed_seq;
    uint64_t min_seq_in_epoch; /* the first sequence observed in this epoch (spec 9.1) */
    uint64_t observed_ns[SOURCE_COUNT];
    bool is_non_monotonic[SOURCE_COUNT]; /* its times went back: no timestamp joins until its next epoch */
    int64_t last_observed_at_ns;         /* local monotonic time of the last observation */
    bool has_processed;
    uint64_t processed_seq;
    uint64_t processed_ns;
    bool has_invalidated;
    uint64_t invalidated_seq;
    uint32_t history_count;
    uint32_t history_next;
    join_obs_t history[TP_JOIN_HISTORY];
} join_input_t;

struct tp_join_barrier
{
    tp_join_barrier_options_t options;
    bool has_out_epoch;
    uint64_t out_epoch;
    map_state_t map_state;
    tp_merge_map_t map;
    int64_t map_applied_ns;
    uint32_t rule_input[TP_MERGE_MAX_RULES]; /* the input row of each rule */
    bool has_last_out_time;
    uint64_t last_out_time_ns;
    join_input_t inputs[TP_JOIN_MAX_INPUTS];
};

static const char *const status_names[] = {
    "ready", "no merge map", "invalid merge map", "waiting for an input", "not yet (below what a rule serves)",
    "clock domain mismatch", "timestamps went back", "out_time went back", "timestamp absent", "wrong barrier kind",
};

const char *tp_join_status_name(tp_join_status_t status)
{
    return (unsigned)status < sizeof(status_names) / sizeof(status_names[0]) ? status_names[status] : "unknown";
}

void tp_join_barrier_options_init(tp_join_barrier_options_t *options, tp_join_kind_t kind, uint32_t out_stream_id)
{
    memset(options, 0, sizeof(*options));
    options->kind = kind;
    options->out_stream_id = out_stream_id;
    options->latest_order = TP_JOIN_ORDER_SEQUENCE;
}

int tp_join_barrier_init(tp_join_barrier_t **out, const tp_join_barrier_options_t *options)
{
    *out = NULL;
    if (options->kind != TP_JOIN_SEQUENCE && options->kind != TP_JOIN_TIMESTAMP &&
        options->kind != TP_JOIN_LATEST_VALUE)
    {
        TP_SET_ERR(TP_E_INVALID, "unknown join barrier kind %d (1 sequence, 2 timestamp, 3 latest value)",
            (int)options->kind);
        return -1;
    }
    if (options->out_stream_id == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "a join barrier needs its output stream id (not 0)");
        return -1;
    }
    if (options->kind == TP_JOIN_LATEST_VALUE && options->latest_order != TP_JOIN_ORDER_SEQUENCE &&
        options->latest_order != TP_JOIN_ORDER_TIMESTAMP)
    {
        TP_SET_ERR(TP_E_INVALID, "unknown latest-value order %d", (int)options->latest_order);
        return -1;
    }
    tp_join_barrier_t *b = NULL;
    if (tp_alloc((void **)&b, sizeof(*b)) < 0)
    {
        return -1;
    }
    b->options = *options;
    *out = b;
    return 0;
}

int tp_join_barrier_close(tp_join_barrier_t *b)
{
    tp_free(b);
    return 0;
}

void tp_join_barrier_set_output_epoch(tp_join_barrier_t *b, uint64_t epoch)
{
    if (b->has_out_epoch && b->out_epoch == epoch)
    {
        return;
    }
    /* J-6.4-3: a new output epoch processes nothing until a map for it arrives. */
    b->has_out_epoch = true;
    b->out_epoch = epoch;
    b->map_state = MAP_NONE;
    b->has_last_out_time = false;
}

uint64_t tp_join_barrier_output_epoch(const tp_join_barrier_t *b)
{
    return b->out_epoch;
}

static int find_index(const tp_join_barrier_t *b, uint32_t stream_id)
{
    for (int i = 0; i < TP_JOIN_MAX_INPUTS; i++)
    {
        if (b->inputs[i].stream_id == stream_id)
        {
            return i;
        }
    }
    return -1;
}

static join_input_t *find_input(tp_join_barrier_t *b, uint32_t stream_id)
{
    int i = find_index(b, stream_id);
    return i < 0 ? NULL : &b->inputs[i];
}

static bool is_required(const tp_join_barrier_t *b, uint32_t stream_id)
{
    if (b->map_state != MAP_ACTIVE)
    {
        return false;
    }
    for (uint32_t i = 0; i < b->map.rule_count; i++)
    {
        if (b->map.rules[i].input_stream_id == stream_id)
        {
            return true;
        }
    }
    return false;
}

static void input_reset(join_input_t *in, uint32_t stream_id)
{
    memset(in, 0, offsetof(join_input_t, history));
    in->stream_id = stream_id;
    in->observed_ns[SOURCE_DESCRIPTOR] = TP_JOIN_TIME_NULL;
    in->observed_ns[SOURCE_SLOT] = TP_JOIN_TIME_NULL;
    in->processed_ns = TP_JOIN_TIME_NULL;
}

/* A row for stream_id: its own, a free one, or one of an input the map does not need. */
static join_input_t *claim_input(tp_join_barrier_t *b, uint32_t stream_id)
{
    join_input_t *in = find_input(b, stream_id);
    if (in != NULL)
    {
        return in;
    }
    join_input_t *victim = find_input(b, 0);
    for (uint32_t i = 0; victim == NULL && i < TP_JOIN_MAX_INPUTS; i++)
    {
        if (!is_required(b, b->inputs[i].stream_id))
        {
            victim = &b->inputs[i];
        }
    }
    if (victim != NULL)
    {
        input_reset(victim, stream_id);
    }
    return victim;
}

static bool map_equal(const tp_merge_map_t *a, const tp_merge_map_t *b)
{
    if (a->kind != b->kind || a->out_stream_id != b->out_stream_id || a->epoch != b->epoch ||
        a->stale_timeout_ns != b->stale_timeout_ns || a->rule_count != b->rule_count ||
        (a->kind == TP_MERGE_TIMESTAMP && (a->clock_domain != b->clock_domain || a->lateness_ns != b->lateness_ns)))
    {
        return false;
    }
    for (uint32_t i = 0; i < a->rule_count; i++)
    {
        const tp_merge_rule_t *x = &a->rules[i];
        const tp_merge_rule_t *y = &b->rules[i];
        if (x->input_stream_id != y->input_stream_id || x->rule_type != y->rule_type ||
            x->timestamp_source != y->timestamp_source || x->has_offset != y->has_offset ||
            x->has_window != y->has_window || (x->has_offset && x->offset != y->offset) ||
            (x->has_window && x->window != y->window))
        {
            return false;
        }
    }
    return true;
}

int tp_join_barrier_apply_map(tp_join_barrier_t *b, const tp_merge_map_t *map, int64_t now_ns)
{
    tp_join_kind_t kind = b->options.kind;
    bool kind_fits = kind == TP_JOIN_LATEST_VALUE || (kind == TP_JOIN_SEQUENCE && map->kind == TP_MERGE_SEQUENCE) ||
                     (kind == TP_JOIN_TIMESTAMP && map->kind == TP_MERGE_TIMESTAMP);
    /* J-6.1-1, J-6.4-1: a map is for one (output stream, epoch). */
    if (map->out_stream_id != b->options.out_stream_id || !b->has_out_epoch || map->epoch != b->out_epoch ||
        !kind_fits)
    {
        return 0;
    }
    if (tp_merge_map_validate(map) < 0)
    {
        b->map_state = MAP_INVALID; /* J-6.2-4, J-6.3-4: blocked until a valid map replaces it */
        return -1;
    }
    if (b->map_state == MAP_ACTIVE && map_equal(&b->map, map))
    {
        return 2; /* the periodic re-announce: nothing changes */
    }
    b->map = *map;
    b->map_state = MAP_ACTIVE;
    b->map_applied_ns = now_ns;
    b->has_last_out_time = false;
    for (uint32_t i = 0; i < map->rule_count; i++)
    {
        join_input_t *in = claim_input(b, map->rules[i].input_stream_id);
        b->rule_input[i] = (uint32_t)(in - b->inputs); /* never NULL: rules <= rows, unique inputs */
    }
    return 1;
}

bool tp_join_barrier_map(const tp_join_barrier_t *b, tp_merge_map_t *out)
{
    if (b->map_state != MAP_ACTIVE)
    {
        return false;
    }
    *out = b->map;
    return true;
}

bool tp_join_barrier_has_map(const tp_join_barrier_t *b)
{
    return b->map_state == MAP_ACTIVE;
}

bool tp_join_barrier_observed(const tp_join_barrier_t *b, uint32_t stream_id, uint64_t *epoch, uint64_t *first_seq,
    uint64_t *seq)
{
    int i = find_index(b, stream_id);
    const join_input_t *in = i < 0 ? NULL : &b->inputs[i];
    if (in == NULL || !in->has_observed)
    {
        return false;
    }
    *epoch = in->epoch;
    *first_seq = in->min_seq_in_epoch;
    *seq = in->observed_seq;
    return true;
}

int tp_join_barrier_observe(tp_join_barrier_t *b, uint32_t stream_id, uint64_t epoch, uint64_t seq,
    uint64_t descriptor_time_ns, uint64_t slot_time_ns, uint8_t clock_domain, uint64_t trace_id, int64_t now_ns)
{
    join_input_t *in = stream_id != 0 ? claim_input(b, stream_id) : NULL;
    if (in == NULL || (in->has_observed && epoch < in->epoch))
    {
        return 0;
    }
    if (!in->has_observed || epoch > in->epoch)
    {
        /* A new epoch of the input: its cursors and times start over, and earlier frames are never used (J-9.1-6). */
        input_reset(in, stream_id);
        in->history_count = 0;
        in->history_next = 0;
        in->epoch = epoch;
        in->has_observed = true;
        in->observed_seq = seq;
        in->min_seq_in_epoch = seq;
    }
    else if (seq > in->observed_seq)
    {
        in->observed_seq = seq;
    }
    in->clock_domain = clock_domain;
    uint64_t times[SOURCE_COUNT] = {descriptor_time_ns, slot_time_ns};
    for (int s = 0; s < SOURCE_COUNT; s++)
    {
        if (times[s] == TP_JOIN_TIME_NULL)
        {
            continue;
        }
        if (in->observed_ns[s] != TP_JOIN_TIME_NULL && times[s] < in->observed_ns[s])
        {
            in->is_non_monotonic[s] = true; /* J-8.2-8 */
        }
        in->observed_ns[s] = times[s];
    }
    in->last_observed_at_ns = now_ns;
    join_obs_t *o = &in->history[in->history_next];
    o->seq = seq;
    o->time_ns[SOURCE_DESCRIPTOR] = descriptor_time_ns;
    o->time_ns[SOURCE_SLOT] = slot_time_ns;
    o->trace_id = trace_id;
    in->history_next = (in->history_next + 1) % TP_JOIN_HISTORY;
    if (in->history_count < TP_JOIN_HISTORY)
    {
        in->history_count++;
    }
    return 1;
}

int tp_join_barrier_observe_frame(tp_join_barrier_t *b, const tp_frame_t *frame, int64_t now_ns)
{
    return tp_join_barrier_observe(b, frame->stream_id, frame->epoch, frame->seq,
        frame->publish_timestamp_ns != 0 ? frame->publish_timestamp_ns : TP_JOIN_TIME_NULL, frame->timestamp_ns,
        TP_CLOCK_DOMAIN_MONOTONIC, frame->trace_id, now_ns);
}

void tp_join_barrier_set_processed(tp_join_barrier_t *b, uint32_t stream_id, uint64_t seq, uint64_t time_ns)
{
    join_input_t *in = find_input(b, stream_id);
    if (in == NULL)
    {
        return;
    }
    if (!in->has_processed || seq > in->processed_seq)
    {
        in->processed_seq = seq;
    }
    in->has_processed = true;
    if (time_ns != TP_JOIN_TIME_NULL && (in->processed_ns == TP_JOIN_TIME_NULL || time_ns > in->processed_ns))
    {
        in->processed_ns = time_ns;
    }
}

void tp_join_barrier_invalidate(tp_join_barrier_t *b, uint32_t stream_id, uint64_t seq)
{
    join_input_t *in = find_input(b, stream_id);
    if (in != NULL && (!in->has_invalidated || seq > in->invalidated_seq))
    {
        in->has_invalidated = true;
        in->invalidated_seq = seq;
    }
}

/* ---- readiness ---- */

/* J-7.4-3: stale when the local time since the input's last observed frame (or, never observed, since the map was
 * applied) exceeds the map's staleTimeoutNs. Without one nothing is ever stale (J-7.4-2). */
static bool is_stale(const tp_join_barrier_t *b, const join_input_t *in, int64_t now_ns)
{
    if (b->map.stale_timeout_ns == TP_MERGE_NULL_U64)
    {
        return false;
    }
    int64_t since = in->has_observed ? in->last_observed_at_ns : b->map_applied_ns;
    return now_ns > since && (uint64_t)(now_ns - since) > b->map.stale_timeout_ns;
}

/* The newest remembered observation whose key (sequence, or a time source) lies in [low, high]. An input's keys
 * rise in arrival order (sequences within an epoch; times, or the input is rejected for timestamp joins), so the
 * walk from the newest stops at the first key at or below high; is_ordered false searches everything (latest
 * value by time, where nothing rejects a time going back). */
static const join_obs_t *select_obs(const join_input_t *in, int key, uint64_t low, uint64_t high, bool is_ordered)
{
    const join_obs_t *best = NULL;
    uint64_t best_key = 0;
    for (uint32_t n = 0; n < in->history_count; n++)
    {
        const join_obs_t *o = &in->history[(in->history_next + TP_JOIN_HISTORY - 1 - n) % TP_JOIN_HISTORY];
        uint64_t k = key < 0 ? o->seq : o->time_ns[key];
        if ((k == TP_JOIN_TIME_NULL && key >= 0) || k > high)
        {
            continue;
        }
        if (is_ordered)
        {
            return k >= low ? o : NULL;
        }
        if (k >= low && (best == NULL || k > best_key))
        {
            best = o;
            best_key = k;
        }
    }
    return best;
}

static void set_frame(tp_join_input_result_t *r, const join_obs_t *o, int key)
{
    r->has_frame = o != NULL;
    if (o != NULL)
    {
        r->seq = o->seq;
        r->time_ns = key >= 0 ? o->time_ns[key] : o->time_ns[SOURCE_SLOT];
        r->trace_id = o->trace_id;
    }
}

static bool begin(tp_join_barrier_t *b, tp_join_kind_t kind, tp_join_result_t *r)
{
    memset(r, 0, offsetof(tp_join_result_t, inputs));
    r->is_ready = false;
    if (b->options.kind != kind)
    {
        r->status = TP_JOIN_WRONG_KIND;
        return false;
    }
    if (b->map_state != MAP_ACTIVE)
    {
        /* J-7.3-1: blocked without a (valid) map for this output epoch. */
        r->status = b->map_state == MAP_INVALID ? TP_JOIN_INVALID_MAP : TP_JOIN_NO_MAP;
        return false;
    }
    r->input_count = b->map.rule_count;
    return true;
}

static bool stop(tp_join_result_t *r, tp_join_status_t status, uint32_t stream_id)
{
    r->status = status;
    r->waiting_stream_id = stream_id;
    r->is_ready = false;
    return false;
}

/* An input that has not reached its requirement: absent when stale, otherwise the barrier waits. */
static bool missing(const tp_join_barrier_t *b, const join_input_t *in, tp_join_input_result_t *ir,
    tp_join_result_t *r, tp_join_status_t status, int64_t now_ns)
{
    if (is_stale(b, in, now_ns))
    {
        ir->is_absent = true;
        ir->has_frame = false;
        r->absent_count++;
        return true;
    }
    return stop(r, status, in->stream_id);
}

static bool finish(tp_join_result_t *r)
{
    if (r->absent_count == r->input_count)
    {
        return stop(r, TP_JOIN_WAITING, r->inputs[0].stream_id); /* every input stale: nothing to build from */
    }
    r->status = TP_JOIN_READY;
    r->is_ready = true;
    return true;
}

/* The result row of map rule i, cleared and named after its input; *in is that input's state, *src the time source
 * the rule reads. */
static tp_join_input_result_t *rule_row(const tp_join_barrier_t *b, tp_join_result_t *r, uint32_t i,
    const join_input_t **in, int *src)
{
    const tp_merge_rule_t *rule = &b->map.rules[i];
    *in = &b->inputs[b->rule_input[i]];
    *src = rule->timestamp_source == TP_MERGE_SOURCE_SLOT_HEADER ? SOURCE_SLOT : SOURCE_DESCRIPTOR;
    tp_join_input_result_t *ir = &r->inputs[i];
    memset(ir, 0, sizeof(*ir));
    ir->stream_id = rule->input_stream_id;
    ir->epoch = (*in)->epoch;
    return ir;
}

bool tp_join_barrier_ready_seq(tp_join_barrier_t *b, uint64_t out_seq, int64_t now_ns, tp_join_result_t *r)
{
    if (!begin(b, TP_JOIN_SEQUENCE, r))
    {
        return false;
    }
    for (uint32_t i = 0; i < b->map.rule_count; i++)
    {
        const tp_merge_rule_t *rule = &b->map.rules[i];
        const join_input_t *in;
        int src;
        tp_join_input_result_t *ir = rule_row(b, r, i, &in, &src);
        uint64_t required;
        uint64_t first;
        if (rule->rule_type == TP_MERGE_RULE_OFFSET)
        {
            /* J-6.2.1-1, J-6.2.1-3: in_seq = out_seq + offset, not ready while that would be negative. */
            if (rule->offset < 0 && out_seq < (uint64_t)(-rule->offset))
            {
                return stop(r, TP_JOIN_NOT_YET, rule->input_stream_id);
            }
            required = out_seq + (uint64_t)rule->offset;
            first = required;
        }
        else
        {
            /* J-6.2.2-1, J-6.2.2-3: the range [out_seq - N + 1, out_seq], gated on its top; not ready below N - 1. */
            if (out_seq < rule->window - 1)
            {
                return stop(r, TP_JOIN_NOT_YET, rule->input_stream_id);
            }
            required = out_seq;
            first = out_seq - (rule->window - 1);
        }
        ir->required_seq = required;
        ir->window_first_seq = first;
        bool is_ok = in->has_observed && in->observed_seq >= required &&
                     (!b->options.use_processed || (in->has_processed && in->processed_seq >= required));
        if (!is_ok)
        {
            if (!missing(b, in, ir, r, TP_JOIN_WAITING, now_ns))
            {
                return false;
            }
            continue;
        }
        /* The frame to attempt: exactly in_seq for OFFSET (the slot decides if it is still there), the newest
         * observed inside the window for WINDOW. */
        const join_obs_t *o = select_obs(in, -1, first, required, true);
        set_frame(ir, o, -1);
        if (rule->rule_type == TP_MERGE_RULE_OFFSET && (o == NULL || o->seq != required))
        {
            ir->has_frame = true;
            ir->seq = required;
            ir->time_ns = TP_JOIN_TIME_NULL;
            ir->trace_id = 0;
        }
    }
    return finish(r);
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

bool tp_join_barrier_ready_time(tp_join_barrier_t *b, uint64_t out_time_ns, uint8_t clock_domain, int64_t now_ns,
    tp_join_result_t *r)
{
    if (!begin(b, TP_JOIN_TIMESTAMP, r))
    {
        return false;
    }
    if (clock_domain != b->map.clock_domain)
    {
        return stop(r, TP_JOIN_CLOCK_DOMAIN, 0); /* J-8.2-5: out_time in another domain than the map's */
    }
    if (b->has_last_out_time && out_time_ns < b->last_out_time_ns)
    {
        return stop(r, TP_JOIN_OUT_OF_ORDER, 0); /* J-8.2-10: out_time never goes back */
    }
    b->has_last_out_time = true;
    b->last_out_time_ns = out_time_ns;
    /* J-8.2-6, J-10.4-4: lateness is map-wide, null reads as 0. */
    uint64_t lateness = b->map.lateness_ns == TP_MERGE_NULL_U64 ? 0 : b->map.lateness_ns;
    for (uint32_t i = 0; i < b->map.rule_count; i++)
    {
        const tp_merge_rule_t *rule = &b->map.rules[i];
        const join_input_t *in;
        int src;
        tp_join_input_result_t *ir = rule_row(b, r, i, &in, &src);
        if (in->has_observed && in->clock_domain != b->map.clock_domain)
        {
            return stop(r, TP_JOIN_CLOCK_DOMAIN, in->stream_id); /* J-8.2-5, J-14-3 */
        }
        if (in->is_non_monotonic[src])
        {
            return stop(r, TP_JOIN_NON_MONOTONIC, in->stream_id); /* J-8.2-8 */
        }
        uint64_t required;
        uint64_t first;
        if (rule->rule_type == TP_MERGE_RULE_OFFSET)
        {
            /* J-6.3.1-2: not ready while out_time + offset_ns < 0; required_in_time never holds the lateness. */
            if (rule->offset < 0 && out_time_ns < (uint64_t)0 - (uint64_t)rule->offset)
            {
                return stop(r, TP_JOIN_NOT_YET, rule->input_stream_id);
            }
            required = rule->offset < 0 ? out_time_ns - ((uint64_t)0 - (uint64_t)rule->offset)
                                        : add_saturating(out_time_ns, (uint64_t)rule->offset);
            first = required;
        }
        else
        {
            /* J-6.3.2-2: not ready while out_time < window_ns; the range is [out_time - window, out_time]. */
            if (out_time_ns < rule->window)
            {
                return stop(r, TP_JOIN_NOT_YET, rule->input_stream_id);
            }
            required = out_time_ns;
            first = out_time_ns - rule->window;
        }
        ir->required_time_ns = required;
        ir->window_first_ns = first;
        if (!in->has_observed)
        {
            if (!missing(b, in, ir, r, TP_JOIN_WAITING, now_ns))
            {
                return false;
            }
            continue;
        }
        uint64_t observed = in->observed_ns[src];
        if (observed == TP_JOIN_TIME_NULL)
        {
            if (!missing(b, in, ir, r, TP_JOIN_NO_TIME, now_ns)) /* J-8.2-2/3, J-8.2-9 */
            {
                return false;
            }
            continue;
        }
        /* J-8.1-1, J-6.3.2-3: observed_time >= required - lateness (lateness only here, J-6.3.1-3). */
        bool is_ok = add_saturating(observed, lateness) >= required;
        if (b->options.use_processed)
        {
            is_ok = is_ok && in->processed_ns != TP_JOIN_TIME_NULL && add_saturating(in->processed_ns, lateness) >= required;
        }
        if (!is_ok)
        {
            if (!missing(b, in, ir, r, TP_JOIN_WAITING, now_ns))
            {
                return false;
            }
            continue;
        }
        /* The frame: the newest observed at or before in_time (WINDOW_NS: inside the window). */
        set_frame(ir, select_obs(in, src, rule->rule_type == TP_MERGE_RULE_OFFSET ? 0 : first, required, true), src);
    }
    return finish(r);
}

bool tp_join_barrier_ready_latest(tp_join_barrier_t *b, int64_t now_ns, tp_join_result_t *r)
{
    if (!begin(b, TP_JOIN_LATEST_VALUE, r))
    {
        return false;
    }
    bool by_time = b->options.latest_order == TP_JOIN_ORDER_TIMESTAMP;
    if (by_time && b->map.kind != TP_MERGE_TIMESTAMP)
    {
        return stop(r, TP_JOIN_CLOCK_DOMAIN, 0); /* J-9.2-3: time order needs the map's clock domain */
    }
    for (uint32_t i = 0; i < b->map.rule_count; i++)
    {
        /* J-9.1-2: the map says which inputs; the rules' parameters are ignored (J-9.1-3: no alignment). */
        const join_input_t *in;
        int src;
        tp_join_input_result_t *ir = rule_row(b, r, i, &in, &src);
        if (by_time && in->has_observed && in->clock_domain != b->map.clock_domain)
        {
            return stop(r, TP_JOIN_CLOCK_DOMAIN, in->stream_id);
        }
        /* J-9.1-1, J-9.1-6: a frame of the input's current epoch (older epochs were dropped at the change). */
        const join_obs_t *o = in->has_observed ? select_obs(in, by_time ? src : -1, 0, UINT64_MAX - 1, !by_time) : NULL;
        if (o == NULL)
        {
            if (!missing(b, in, ir, r, in->has_observed && by_time ? TP_JOIN_NO_TIME : TP_JOIN_WAITING, now_ns))
            {
                return false;
            }
            continue;
        }
        if (in->has_invalidated && in->invalidated_seq >= o->seq)
        {
            /* J-9.1-4, J-9.1-5: the selected frame was overwritten or failed validation: absent, not ready. */
            ir->is_absent = true;
            r->absent_count++;
            return stop(r, TP_JOIN_WAITING, in->stream_id);
        }
        if (is_stale(b, in, now_ns))
        {
            ir->is_absent = true; /* A.5.1: proceed with the stale input reported absent */
            r->absent_count++;
            continue;
        }
        set_frame(ir, o, by_time ? src : -1); /* J-9.2-1: the most recent one */
    }
    return finish(r);
}
