/*
 * TraceLink (SHM TraceLink spec 1.0, schema 904): which input frames an output frame was made from.
 *
 * Trace ids are 64-bit, never 0 (0 is "no trace id"), and sort by the time they were minted:
 *   bit 63      0
 *   bits 62-22  41 bits: milliseconds since 2024-01-01T00:00:00Z (CLOCK_REALTIME; to the year 2093)
 *   bits 21-11  11 bits: the node id of the process that minted it (0..2047)
 *   bits 10-0   11 bits: a sequence within that millisecond (2048 ids per ms)
 * Past 2048 ids in one millisecond the generator takes the next millisecond early rather than wait, so minting
 * never blocks; ids stay unique and ordered, their time runs ahead while the burst lasts.
 *
 * Node ids are unique per deployment: the driver grants each lease one (ShmAttachResponse.nodeId) in
 * [1, TP_TRACE_NODE_ID_MAX], round-robin so that a released id comes back last; a producer keeps the first one it
 * was granted for its whole life (tp_producer_node_id), or uses one it is given (tp_producer_set_trace_node_id).
 *
 * Propagation: a root producer with tracing on (tp_producer_set_tracing) mints an id for every frame offered with
 * trace_id 0; a 1->1 stage (filter, rate limiter, bridge) passes the input's id through; an N->1 stage (a join)
 * mints a new id per output and emits a TraceLinkSet naming the inputs' ids. Ids continue across epochs (a new
 * epoch does not reset the generator).
 *
 * TraceLinkSet travels on the metadata stream (client.metadata_channel / metadata_stream_id), where the bridge
 * forwards it between hosts and `tp trace record` reads it; it is best effort: a full queue or a busy stream drops
 * the record (counted), never the frame, and never blocks.
 */
#ifndef TENSORPOOL_TP_TRACE_H
#define TENSORPOOL_TP_TRACE_H

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_TRACE_NODE_ID_MAX 2047u
#define TP_TRACE_MAX_PARENTS 32
/* 2024-01-01T00:00:00Z in ms since 1970 */
#define TP_TRACE_EPOCH_MS INT64_C(1704067200000)

/* A trace id generator: a plain value, one per minting thread. */
typedef struct tp_trace_id_gen
{
    uint32_t node_id;
    uint64_t last_ms;
    uint32_t sequence;
} tp_trace_id_gen_t;

/* -1 if node_id > TP_TRACE_NODE_ID_MAX (it would not fit its 11 bits). */
TP_API int tp_trace_id_gen_init(tp_trace_id_gen_t *gen, uint32_t node_id);
/* The next id, from CLOCK_REALTIME ns (tp_clock_realtime_ns()). Never 0; greater than every id before it. */
TP_API uint64_t tp_trace_id_next(tp_trace_id_gen_t *gen, int64_t realtime_ns);
/* The parts of an id: Unix time in ms, node id, sequence. */
TP_API int64_t tp_trace_id_time_ms(uint64_t trace_id);
TP_API uint32_t tp_trace_id_node(uint64_t trace_id);
TP_API uint32_t tp_trace_id_sequence(uint64_t trace_id);

/* One TraceLinkSet: the output frame (stream, epoch, seq as its FrameDescriptor says), its trace id, its parents. */
typedef struct tp_trace_link
{
    uint32_t stream_id;
    uint64_t epoch;
    uint64_t seq;
    uint64_t trace_id;
    uint32_t parent_count;
    uint64_t parents[TP_TRACE_MAX_PARENTS];
} tp_trace_link_t;

/* Set the parents from the inputs' ids in the order observed: zeros (inputs without a trace id) are skipped and
 * repeats kept once. Returns how many parents remain. */
TP_API uint32_t tp_trace_link_set_parents(tp_trace_link_t *link, const uint64_t *trace_ids, uint32_t count);
/* 0 if the link obeys the spec's rules (a non-zero trace id; 1 to TP_TRACE_MAX_PARENTS parents, none 0, none
 * repeated), else -1 naming the rule. */
TP_API int tp_trace_link_validate(const tp_trace_link_t *link);
/* Encode (validated first): the length, or -1. */
TP_API int64_t tp_trace_link_encode(const tp_trace_link_t *link, void *buffer, size_t capacity);
/* Decode and validate: -1 (TP_E_MALFORMED) for another schema or template, a truncated message, no parents, a zero
 * or repeated parent; TP_E_CAPACITY past TP_TRACE_MAX_PARENTS. */
TP_API int tp_trace_link_decode(tp_trace_link_t *link, const void *buffer, size_t length);

/* ---- emitting TraceLinkSet without blocking ---- */

typedef struct tp_trace_emitter tp_trace_emitter_t;

typedef struct tp_trace_emitter_counters
{
    uint64_t queued;       /* accepted by tp_trace_emitter_offer */
    uint64_t sent;         /* published */
    uint64_t dropped_full; /* refused: the queue was full */
    uint64_t dropped_busy; /* dequeued but the stream refused it (back pressure, nobody connected over UDP) */
    uint64_t invalid;      /* refused: broke a rule (tp_trace_link_validate) */
} tp_trace_emitter_counters_t;

/* A queue of `capacity` links (0: 1024), allocated here, and a publication on the client's metadata stream. */
TP_API int tp_trace_emitter_init(tp_trace_emitter_t **out, tp_client_t *client, uint32_t capacity);
TP_API int tp_trace_emitter_close(tp_trace_emitter_t *emitter);
/* Queue a copy of link: true if queued, false if dropped (queue full, or the link breaks a rule). Hot path: no
 * allocation, lock or system call. */
TP_API bool tp_trace_emitter_offer(tp_trace_emitter_t *emitter, const tp_trace_link_t *link);
/* Publish what is queued (a refused publish drops that record). Returns how many went out. */
TP_API int tp_trace_emitter_do_work(tp_trace_emitter_t *emitter);
TP_API void tp_trace_emitter_counters(const tp_trace_emitter_t *emitter, tp_trace_emitter_counters_t *out);

/* ---- tracing on a producer ---- */

/* With tracing on, every frame the producer publishes carries a non-zero trace id: an offer or commit with
 * trace_id 0 gets a new one (a root frame); a non-zero trace_id is published as given (a 1->1 stage passing its
 * input's id on). The node id is the one the driver granted the producer's first lease, unless set. -1 if the
 * producer has no node id yet (not attached): enable it after attaching, or set the node id first. */
TP_API int tp_producer_set_tracing(tp_producer_t *producer, bool is_enabled);
/* Use this node id (0..TP_TRACE_NODE_ID_MAX) for the ids it mints, instead of the driver's grant. */
TP_API int tp_producer_set_trace_node_id(tp_producer_t *producer, uint32_t node_id);
/* The node id its trace ids carry (the driver's first grant, or the one set); 0 before either. */
TP_API uint32_t tp_producer_node_id(const tp_producer_t *producer);
/* The trace id of the last frame it published (0: none). */
TP_API uint64_t tp_producer_last_trace_id(const tp_producer_t *producer);

#ifdef __cplusplus
}
#endif

#endif
