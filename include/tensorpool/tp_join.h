/*
 * Join barriers and merge maps (SHM Join Barrier spec 1.0, schema 903): when may a stage that fuses several input
 * streams attempt to build output N? A barrier answers from what it has observed of the inputs (their descriptors'
 * sequences and timestamps), never by waiting on a slot commit or holding back a producer: once it says "ready",
 * the stage reads the input frames in a single attempt and drops what no longer validates.
 *
 *   tp_merge_map_t map;                                   the rules: which inputs an output needs
 *   tp_merge_map_init(&map, TP_MERGE_SEQUENCE, 9000, epoch);
 *   tp_merge_map_add_offset(&map, 10001, 0);              camera A at out_seq
 *   tp_merge_map_add_offset(&map, 10002, 0);              camera B at out_seq
 *   tp_join_barrier_init(&barrier, &options);             kind, output stream; allocates once, here
 *   tp_join_barrier_set_output_epoch(barrier, epoch);
 *   tp_join_barrier_apply_map(barrier, &map, now_ns);
 *   tp_join_barrier_observe_frame(barrier, &frame, now_ns);   for each input descriptor (consumer callbacks)
 *   tp_join_barrier_ready_seq(barrier, out_seq, now_ns, &result);   result.is_ready: attempt out_seq
 *
 * Three barriers, one object (options.kind):
 *   SEQUENCE      out_seq is ready when, for every rule, the input's observed cursor reached the rule's sequence
 *                 (OFFSET: out_seq + offset; WINDOW of N: the range [out_seq - N + 1, out_seq], gated on its top);
 *   TIMESTAMP     out_time is ready when, for every rule, the input's observed time (from its descriptors or its slot
 *                 headers, as the rule says) reached the rule's time less the map's lateness; all in the map's clock
 *                 domain, timestamps never going back;
 *   LATEST_VALUE  a tick is ready when every input of the map has a frame in its current epoch; it selects the
 *                 newest of each (by sequence, or by time with a timestamp map), with no alignment.
 * Every barrier is blocked while it holds no valid map for (output stream, output epoch): a new output epoch needs
 * a fresh map, and a map that breaks a rule blocks until a valid one replaces it. With the map's staleTimeoutNs,
 * an input silent for longer than that (local monotonic time) counts as absent and the others proceed; the
 * result names the absent inputs. Without it the barrier waits (the deterministic default).
 *
 * The control plane: a merge-map authority (the output's producer, or a supervisor) announces its maps on the
 * shared control stream, again every period (soft state), and answers requests; a join agent that has no map
 * for its (output, epoch) asks for one. The driver neither caches nor forwards maps.
 *
 * Threads: a barrier, an authority and an agent are each used by one thread at a time. After init, observe,
 * ready, select and the agent's duty cycle allocate nothing and never block.
 */
#ifndef TENSORPOOL_TP_JOIN_H
#define TENSORPOOL_TP_JOIN_H

#include "tensorpool/tp_agent.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- merge maps ---- */

#define TP_MERGE_MAX_RULES 16
/* "absent" for optional times and windows (the wire's null) */
#define TP_MERGE_NULL_U64 UINT64_MAX

typedef enum tp_merge_kind
{
    TP_MERGE_SEQUENCE = 1,  /* SequenceMergeMapAnnounce */
    TP_MERGE_TIMESTAMP = 2, /* TimestampMergeMapAnnounce */
} tp_merge_kind_t;

/* Rule types, as the wire encodes them: sequence maps use OFFSET/WINDOW, timestamp maps OFFSET_NS/WINDOW_NS. */
enum
{
    TP_MERGE_RULE_OFFSET = 0,
    TP_MERGE_RULE_WINDOW = 1,
};

typedef enum tp_merge_time_source
{
    TP_MERGE_SOURCE_FRAME_DESCRIPTOR = 1, /* the descriptor's publish time */
    TP_MERGE_SOURCE_SLOT_HEADER = 2,      /* the slot's capture time */
} tp_merge_time_source_t;

typedef enum tp_clock_domain
{
    TP_CLOCK_DOMAIN_MONOTONIC = 1,
    TP_CLOCK_DOMAIN_REALTIME_SYNCED = 2,
} tp_clock_domain_t;

typedef struct tp_merge_rule
{
    uint32_t input_stream_id;
    uint8_t rule_type;        /* TP_MERGE_RULE_* */
    uint8_t timestamp_source; /* timestamp maps: tp_merge_time_source_t */
    bool has_offset;
    int64_t offset;           /* sequences (a signed 32-bit value on the wire), or ns */
    bool has_window;
    uint64_t window;          /* frames (a 32-bit value on the wire), or ns */
} tp_merge_rule_t;

/* One map, scoped to (out_stream_id, epoch): the output epoch it was made for. A plain value. */
typedef struct tp_merge_map
{
    tp_merge_kind_t kind;
    uint32_t out_stream_id;
    uint64_t epoch;
    uint64_t stale_timeout_ns; /* TP_MERGE_NULL_U64: none (block on missing inputs) */
    uint8_t clock_domain;      /* timestamp maps: tp_clock_domain_t */
    uint64_t lateness_ns;      /* timestamp maps; TP_MERGE_NULL_U64 reads as 0 */
    uint32_t rule_count;
    tp_merge_rule_t rules[TP_MERGE_MAX_RULES];
} tp_merge_map_t;

/* An empty map: no stale timeout, MONOTONIC, no lateness. */
TP_API void tp_merge_map_init(tp_merge_map_t *map, tp_merge_kind_t kind, uint32_t out_stream_id, uint64_t epoch);
/* Add a rule (-1 when the map is full). Sequence maps: offset in frames, window in frames. Timestamp maps use the
 * _ns forms, each with the source of the input's timestamps. */
TP_API int tp_merge_map_add_offset(tp_merge_map_t *map, uint32_t input_stream_id, int32_t offset);
TP_API int tp_merge_map_add_window(tp_merge_map_t *map, uint32_t input_stream_id, uint32_t window_size);
TP_API int tp_merge_map_add_offset_ns(tp_merge_map_t *map, uint32_t input_stream_id,
    tp_merge_time_source_t source, int64_t offset_ns);
TP_API int tp_merge_map_add_window_ns(tp_merge_map_t *map, uint32_t input_stream_id,
    tp_merge_time_source_t source, uint64_t window_ns);
/* 0 if the map obeys every rule of the spec's section 6 (each rule has its input and type and exactly the one
 * parameter its type takes; windows positive; a known clock domain and timestamp source; each input once), else
 * -1 with the first broken rule named in tp_errmsg(). */
TP_API int tp_merge_map_validate(const tp_merge_map_t *map);
/* Encode as SequenceMergeMapAnnounce or TimestampMergeMapAnnounce (schema 903): the length, or -1. The map is
 * encoded as it is, valid or not (an authority should validate first). */
TP_API int64_t tp_merge_map_encode(const tp_merge_map_t *map, void *buffer, size_t capacity);
/* Decode either announce. -1 (TP_E_MALFORMED) for a truncated or foreign message, TP_E_CAPACITY for more rules
 * than TP_MERGE_MAX_RULES. A decoded map may still break a rule: validate it (a barrier does). */
TP_API int tp_merge_map_decode(tp_merge_map_t *map, const void *buffer, size_t length);

/* A late joiner's request for the map of (out_stream_id, epoch). */
typedef struct tp_merge_request
{
    tp_merge_kind_t kind;
    uint32_t out_stream_id;
    uint64_t epoch;
} tp_merge_request_t;

TP_API int64_t tp_merge_request_encode(const tp_merge_request_t *request, void *buffer, size_t capacity);
TP_API int tp_merge_request_decode(tp_merge_request_t *request, const void *buffer, size_t length);

/* ---- the barrier ---- */

#define TP_JOIN_MAX_INPUTS 16
#define TP_JOIN_HISTORY 64 /* observations remembered per input, for selecting frames by time */
/* "no time": a descriptor without a timestamp */
#define TP_JOIN_TIME_NULL UINT64_MAX

typedef struct tp_join_barrier tp_join_barrier_t;

typedef enum tp_join_kind
{
    TP_JOIN_SEQUENCE = 1,
    TP_JOIN_TIMESTAMP = 2,
    TP_JOIN_LATEST_VALUE = 3,
} tp_join_kind_t;

typedef enum tp_join_order
{
    TP_JOIN_ORDER_SEQUENCE = 1,  /* latest value: the highest sequence of the input's epoch */
    TP_JOIN_ORDER_TIMESTAMP = 2, /* latest value: the newest time (the map must be a timestamp map) */
} tp_join_order_t;

typedef struct tp_join_barrier_options
{
    tp_join_kind_t kind;
    uint32_t out_stream_id;
    /* Also gate on the processed cursors (spec 7.1, 8.1 "if configured"): an input counts only once the stage said
     * it processed it (tp_join_barrier_set_processed). Default false. */
    bool use_processed;
    tp_join_order_t latest_order; /* latest value only; default TP_JOIN_ORDER_SEQUENCE */
} tp_join_barrier_options_t;

TP_API void tp_join_barrier_options_init(tp_join_barrier_options_t *options, tp_join_kind_t kind,
    uint32_t out_stream_id);
TP_API int tp_join_barrier_init(tp_join_barrier_t **out, const tp_join_barrier_options_t *options);
TP_API int tp_join_barrier_close(tp_join_barrier_t *barrier);

/* The output stream's epoch. A different one drops the map: the barrier blocks until a map for it arrives. */
TP_API void tp_join_barrier_set_output_epoch(tp_join_barrier_t *barrier, uint64_t epoch);
TP_API uint64_t tp_join_barrier_output_epoch(const tp_join_barrier_t *barrier);

/* Apply a map (from an announce, or made locally). 1: applied (new or changed); 2: the same map again (a
 * re-announce: nothing changes); 0: not this barrier's
 * (another output stream, another epoch, or a sequence map for a timestamp barrier): ignored; -1: it breaks a
 * rule: the barrier now blocks until a valid map replaces it (tp_errmsg says which rule). */
TP_API int tp_join_barrier_apply_map(tp_join_barrier_t *barrier, const tp_merge_map_t *map, int64_t now_ns);
/* The map in force, if any. */
TP_API bool tp_join_barrier_map(const tp_join_barrier_t *barrier, tp_merge_map_t *out);
TP_API bool tp_join_barrier_has_map(const tp_join_barrier_t *barrier);
/* What was observed of an input: its current epoch, the first sequence seen in it and the highest. false if nothing
 * yet. */
TP_API bool tp_join_barrier_observed(const tp_join_barrier_t *barrier, uint32_t stream_id, uint64_t *epoch,
    uint64_t *first_seq, uint64_t *seq);

/* An input descriptor was observed. Times are CLOCK ns in the input stream's clock domain (TP_JOIN_TIME_NULL when
 * absent); now_ns is local monotonic time (for staleness). A newer epoch of the input starts its cursors over; an
 * older one is ignored. A time going back marks that (input, source) unusable for timestamp joins until its next
 * epoch. Returns 1 if recorded, 0 if ignored (an input the barrier has no room for, an older epoch). Hot path. */
TP_API int tp_join_barrier_observe(tp_join_barrier_t *barrier, uint32_t stream_id, uint64_t epoch, uint64_t seq,
    uint64_t descriptor_time_ns, uint64_t slot_time_ns, uint8_t clock_domain, uint64_t trace_id, int64_t now_ns);
/* The same from a consumer's frame (MONOTONIC: our producers stamp CLOCK_MONOTONIC). */
TP_API int tp_join_barrier_observe_frame(tp_join_barrier_t *barrier, const tp_frame_t *frame, int64_t now_ns);
/* The stage processed an input up to seq / time (TP_JOIN_TIME_NULL: leave the time as it is). */
TP_API void tp_join_barrier_set_processed(tp_join_barrier_t *barrier, uint32_t stream_id, uint64_t seq,
    uint64_t time_ns);
/* A frame the stage selected (from tp_join_result_t) was overwritten or failed validation: the input has no usable
 * frame until a newer one is observed (latest value: absent, so the tick is not ready). */
TP_API void tp_join_barrier_invalidate(tp_join_barrier_t *barrier, uint32_t stream_id, uint64_t seq);

typedef enum tp_join_status
{
    TP_JOIN_READY = 0,
    TP_JOIN_NO_MAP = 1,        /* blocked: no map for (output, epoch) yet */
    TP_JOIN_INVALID_MAP = 2,   /* blocked: the last map broke a rule */
    TP_JOIN_WAITING = 3,       /* an input has not reached what the rule needs (result.waiting_stream_id) */
    TP_JOIN_NOT_YET = 4,       /* the output is below what a rule can serve (out_seq + offset < 0, a window not
                                * filled yet, out_time below the window) */
    TP_JOIN_CLOCK_DOMAIN = 5,  /* rejected: out_time or an input in another clock domain than the map's */
    TP_JOIN_NON_MONOTONIC = 6, /* rejected: an input's timestamps went back (result.waiting_stream_id) */
    TP_JOIN_OUT_OF_ORDER = 7,  /* rejected: out_time below one already asked for (out_time never goes back) */
    TP_JOIN_NO_TIME = 8,       /* an input's timestamp is absent (null) */
    TP_JOIN_WRONG_KIND = 9,    /* this ready call does not match the barrier's kind */
} tp_join_status_t;

/* What the barrier decided for one input of the map. */
typedef struct tp_join_input_result
{
    uint32_t stream_id;
    bool is_absent;        /* stale (or, latest value, invalidated): proceed without it */
    uint64_t epoch;        /* the input's current epoch */
    uint64_t required_seq; /* sequence maps: the rule's in_seq (WINDOW: the top of the range) */
    uint64_t window_first_seq; /* WINDOW: the bottom of the range (frames below it are not wanted) */
    uint64_t required_time_ns; /* timestamp maps: the rule's in_time (WINDOW_NS: the top) */
    uint64_t window_first_ns;  /* WINDOW_NS: the bottom */
    /* the frame to read: the newest observed one at or below the requirement (latest value: the newest) */
    bool has_frame;
    uint64_t seq;
    uint64_t time_ns;
    uint64_t trace_id;
} tp_join_input_result_t;

typedef struct tp_join_result
{
    bool is_ready;
    tp_join_status_t status;
    uint32_t waiting_stream_id; /* the input that held it back (0: none) */
    uint32_t absent_count;
    uint32_t input_count;
    tp_join_input_result_t inputs[TP_JOIN_MAX_INPUTS]; /* in the map's rule order */
} tp_join_result_t;

/* Readiness of out_seq (a SEQUENCE barrier), of out_time in clock_domain (TIMESTAMP), or of a tick (LATEST_VALUE).
 * Fills *result and returns result->is_ready. Hot path. */
TP_API bool tp_join_barrier_ready_seq(tp_join_barrier_t *barrier, uint64_t out_seq, int64_t now_ns,
    tp_join_result_t *result);
TP_API bool tp_join_barrier_ready_time(tp_join_barrier_t *barrier, uint64_t out_time_ns, uint8_t clock_domain,
    int64_t now_ns, tp_join_result_t *result);
TP_API bool tp_join_barrier_ready_latest(tp_join_barrier_t *barrier, int64_t now_ns, tp_join_result_t *result);
TP_API const char *tp_join_status_name(tp_join_status_t status);

/* ---- the authority: announces maps, answers requests ---- */

typedef struct tp_merge_authority tp_merge_authority_t;

/* Announce on the client's control stream. With a producer (the output's), the map follows its epoch: a new epoch
 * is announced at once with the map re-scoped to it. period_ms: re-announce cadence (0: 1000). */
TP_API int tp_merge_authority_init(tp_merge_authority_t **out, tp_client_t *client, tp_producer_t *producer,
    uint32_t period_ms);
TP_API int tp_merge_authority_close(tp_merge_authority_t *authority);
/* Set (or replace) the map of its output stream; it must be valid. Announced at the next duty cycle. */
TP_API int tp_merge_authority_set_map(tp_merge_authority_t *authority, const tp_merge_map_t *map);
/* Announce when due, answer requests for maps it has. Returns the work done. */
TP_API int tp_merge_authority_do_work(tp_merge_authority_t *authority, int64_t now_ns);

typedef struct tp_merge_authority_counters
{
    uint64_t announces; /* sent, periodic and on change */
    uint64_t requests;  /* for one of its maps, answered */
    uint64_t requests_other; /* for maps it does not have (another output or epoch): not its to answer */
} tp_merge_authority_counters_t;

TP_API void tp_merge_authority_counters(const tp_merge_authority_t *authority, tp_merge_authority_counters_t *out);

/* ---- the join agent: inputs, control plane and barrier wired together ---- */

typedef struct tp_join_agent tp_join_agent_t;

/* One output attempt the barrier allowed. frames[i] belongs to the map's rule i (result->inputs[i]); has_frame[i]
 * false means that input has nothing for this output: absent (stale), or nothing left inside its window. The views
 * read the inputs' slots in place and are valid during the callback: check tp_frame_is_intact after use, or copy
 * out (tp_frame_copy_out). Each frame carries its descriptor's trace id. */
typedef struct tp_join_tick
{
    uint64_t out_seq;     /* SEQUENCE: the output sequence this is for */
    uint64_t out_time_ns; /* TIMESTAMP: out_time (the anchor frame's time) */
    const tp_join_result_t *result;
    uint32_t input_count;
    bool has_frame[TP_JOIN_MAX_INPUTS];
    tp_frame_t frames[TP_JOIN_MAX_INPUTS];
} tp_join_tick_t;

/* Build the output; return 0 (or -1 to stop the agent). Usually ends with tp_join_agent_publish. */
typedef int (*tp_join_handler_t)(void *clientd, const tp_join_tick_t *tick);

typedef struct tp_join_agent_options
{
    tp_join_barrier_options_t barrier;
    /* the inputs: consumers the caller opened (and closes after the agent); frames of streams the map does not name
     * are observed but unused */
    tp_consumer_t *const *inputs;
    uint32_t input_count;
    /* the output's producer (optional): its epoch scopes the maps, and tp_join_agent_publish offers on it. Without
     * one, set the output epoch on the barrier (tp_join_agent_barrier). */
    tp_producer_t *output;
    /* TIMESTAMP and LATEST_VALUE: the input whose new frames make the ticks (out_time = its time, from the source
     * its rule names); 0: a new frame of any input makes a tick */
    uint32_t anchor_stream_id;
    /* how often to ask for a missing map (0: 200 ms) */
    uint32_t request_interval_ms;
    tp_join_handler_t on_tick;
    void *clientd;
} tp_join_agent_options_t;

TP_API void tp_join_agent_options_init(tp_join_agent_options_t *options, tp_join_kind_t kind, uint32_t out_stream_id);
/* Subscribes to the client's control stream for maps and publishes requests there; allocates everything now. */
TP_API int tp_join_agent_init(tp_join_agent_t **out, tp_client_t *client, const tp_join_agent_options_t *options);
TP_API int tp_join_agent_close(tp_join_agent_t *agent);
/* One duty cycle: maps and requests, the inputs' descriptors, then every output the barrier allows (handler).
 * Returns the work done, -1 if the handler asked to stop or an input failed. No allocation. */
TP_API int tp_join_agent_do_work(tp_join_agent_t *agent, int64_t now_ns);
/* As an agent for tp_agent_runner_init / tp_agent_invoke. */
TP_API void tp_join_agent_as_agent(tp_join_agent_t *agent, tp_agent_t *out);
TP_API tp_join_barrier_t *tp_join_agent_barrier(tp_join_agent_t *agent);

/* From the handler: publish the output on options.output (copy path) with a trace id that records its inputs
 * (TraceLink spec 6.3): with two or more traced inputs, a new id (tracing must be on for the output producer,
 * tp_trace.h) and a TraceLinkSet naming the inputs' ids in rule order, queued without blocking; with one, that
 * input's id (a 1->1 derivation); with none, whatever the producer does (a new root id if tracing is on).
 * Returns the output sequence, or what tp_producer_offer_frame returns. */
TP_API int64_t tp_join_agent_publish(tp_join_agent_t *agent, const tp_join_tick_t *tick, const void *payload,
    uint32_t length, const tp_tensor_desc_t *tensor, uint32_t meta_version);

typedef struct tp_join_agent_counters
{
    uint64_t outputs;         /* ticks handed to the handler */
    uint64_t dropped;         /* allowed by the barrier, but a required input frame no longer validated (dropped,
                               * never retried: a single attempt); and, sequence joins, the outputs skipped when the
                               * inputs lapped the join: it then jumps to the first output whose frames are all still
                               * there, as a lapped consumer resyncs (wire spec 15.4) */
    uint64_t ticks_rejected;  /* out_time ticks the barrier rejected (clock domain, time going back) */
    uint64_t ticks_overflow;  /* pending out_time ticks dropped because more arrived than could wait */
    uint64_t maps_applied;    /* announces that became the active map (a re-announce of the same map does not count) */
    uint64_t maps_invalid;    /* announces for this output that broke a rule */
    uint64_t maps_foreign;    /* announces for other outputs or epochs */
    uint64_t requests_sent;
    uint64_t tracelinks;      /* TraceLinkSet queued */
    uint64_t tracelinks_dropped;
} tp_join_agent_counters_t;

TP_API void tp_join_agent_counters(const tp_join_agent_t *agent, tp_join_agent_counters_t *out);

#ifdef __cplusplus
}
#endif

#endif
