/*
 * The lineage store of `tp trace`: the TraceLink spec's section 10 model in SQLite (frames, trace_links,
 * trace_windows), written in batched transactions (WAL, so a killed recorder loses at most its open batch and a
 * reader never waits on it) and queried as section 11 does, with a recursive CTE for lineage.
 *
 * Values are stored as SQLite's signed 64-bit integers with the bits of our u64 fields (trace ids never use the top
 * bit; epochs and sequences beyond 2^63 come back intact through the casts here).
 */
#ifndef TP_CLI_LINEAGE_H
#define TP_CLI_LINEAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "tensorpool/tp_trace.h"

typedef struct tp_lineage tp_lineage_t;

typedef struct tp_lineage_frame
{
    uint32_t stream_id;
    uint64_t epoch;
    uint64_t seq;
    uint32_t stage_id; /* who published the descriptor: its bus session id */
    int64_t t_ns;      /* when the recorder saw it (CLOCK_REALTIME) */
    uint64_t trace_id;
    int status;        /* 0: a FrameDescriptor was seen */
} tp_lineage_frame_t;

/* Open (creating the tables) for writing, or read-only for queries (which then fail if the file is missing). */
int tp_lineage_open(tp_lineage_t **out, const char *path, bool is_writer);
/* Commits what is pending. NULL is fine. */
int tp_lineage_close(tp_lineage_t *db);

/* Buffered in the open transaction; tp_lineage_flush commits. */
int tp_lineage_add_frame(tp_lineage_t *db, const tp_lineage_frame_t *frame);
int tp_lineage_add_link(tp_lineage_t *db, const tp_trace_link_t *link, int64_t t_ns);
int tp_lineage_flush(tp_lineage_t *db);
/* Delete frames and links recorded before cutoff_ns (retention). Returns rows deleted, -1 on error. */
int64_t tp_lineage_expire(tp_lineage_t *db, int64_t cutoff_ns);

/* Queries: each row goes to the callback (return non-zero to stop). */
typedef int (*tp_lineage_frame_fn)(void *clientd, const tp_lineage_frame_t *frame);
typedef int (*tp_lineage_id_fn)(void *clientd, uint64_t trace_id, uint32_t depth);

int tp_lineage_frames_of(tp_lineage_t *db, uint64_t trace_id, tp_lineage_frame_fn fn, void *clientd);
/* The trace id of (stream, epoch, seq); epoch UINT64_MAX: the newest epoch with that seq. 1 found, 0 not, -1. */
int tp_lineage_frame_at(tp_lineage_t *db, uint32_t stream_id, uint64_t epoch, uint64_t seq, tp_lineage_frame_t *out);
int tp_lineage_parents(tp_lineage_t *db, uint64_t trace_id, tp_lineage_id_fn fn, void *clientd);
int tp_lineage_children(tp_lineage_t *db, uint64_t trace_id, tp_lineage_id_fn fn, void *clientd);
/* Every ancestor up to max_depth hops, each once at its shortest depth (1 = a parent), nearest first. */
int tp_lineage_ancestors(tp_lineage_t *db, uint64_t trace_id, uint32_t max_depth, tp_lineage_id_fn fn, void *clientd);

typedef struct tp_lineage_totals
{
    int64_t frames;
    int64_t links;
} tp_lineage_totals_t;

int tp_lineage_totals(tp_lineage_t *db, tp_lineage_totals_t *out);

#endif
