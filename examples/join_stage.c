/*
 * A join stage, as in the join barrier spec's appendix A: it fuses two input streams into output stream 9000 and
 * is the authority of its own merge map (it announces the map and answers late joiners). Its inputs are other
 * processes (e.g. `tp produce 10001 --trace`). Every output carries a new trace id and a TraceLinkSet naming the
 * two input frames it was made from.
 *
 *   join_stage KIND [BUS_DIR|- [SHM_BASE_DIR|- [OUTPUTS]]], KIND one of
 *     lockstep      cameras 10001 + 10002 in lockstep (sequence offset 0)
 *     camera-imu    camera 10001 + IMU 10003 within 10 ms (timestamps)
 *     data-config   data 10001 + the latest configuration 10002
 *
 * It prints "attached" once its inputs and output are attached, one line per output, and a summary; exit 0 when
 * OUTPUTS outputs were made (default 20), 1 on an error or after 30 s without them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_dirs.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_join.h"
#include "tensorpool/tp_trace.h"

#define OUT_STREAM 9000
#define ATTACH_NS 10000000000LL
#define MS 1000000LL

typedef struct stage
{
    tp_join_agent_t *agent;
    uint64_t outputs;
    uint64_t torn;
} stage_t;

static int fail(const char *what)
{
    fprintf(stderr, "join_stage: %s: %s\n", what, tp_errmsg());
    return 1;
}

/* The output: for each input, the sequence of the frame used (UINT64_MAX for none) and its first 8 bytes. */
static int on_tick(void *clientd, const tp_join_tick_t *tick)
{
    stage_t *s = clientd;
    uint64_t out[4] = {UINT64_MAX, 0, UINT64_MAX, 0};
    for (uint32_t i = 0; i < tick->input_count && i < 2; i++)
    {
        if (!tick->has_frame[i])
        {
            continue;
        }
        const tp_frame_t *f = &tick->frames[i];
        uint64_t head = 0;
        memcpy(&head, f->payload, f->payload_length < 8 ? f->payload_length : 8);
        if (!tp_frame_is_intact(f))
        {
            s->torn++; /* overwritten while we read it: this output is not made */
            return 0;
        }
        out[2 * i] = f->seq;
        out[2 * i + 1] = head;
    }
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT64;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = 4;
    int64_t seq = tp_join_agent_publish(s->agent, tick, out, sizeof(out), &t, 0);
    if (seq < 0)
    {
        return 0; /* not attached just now, or back pressure: this output is lost, the stage goes on */
    }
    printf("output %" PRId64 ": inputs seq %" PRIu64 " and %" PRIu64 " (trace ids %" PRIu64 ", %" PRIu64 ")\n", seq,
        out[0], out[2], tick->has_frame[0] ? tick->frames[0].trace_id : 0,
        tick->has_frame[1] ? tick->frames[1].trace_id : 0);
    s->outputs++;
    return 0;
}

/* The rules of each example (spec A.3.1, A.4.2, A.5.1). */
static int make_map(const char *mode, uint64_t epoch, tp_merge_map_t *map, tp_join_kind_t *kind, uint32_t *inputs,
    uint32_t *anchor)
{
    inputs[0] = 10001;
    *anchor = 10001;
    if (strcmp(mode, "lockstep") == 0)
    {
        inputs[1] = 10002;
        *kind = TP_JOIN_SEQUENCE;
        tp_merge_map_init(map, TP_MERGE_SEQUENCE, OUT_STREAM, epoch);
        tp_merge_map_add_offset(map, inputs[0], 0);
        return tp_merge_map_add_offset(map, inputs[1], 0);
    }
    if (strcmp(mode, "camera-imu") == 0)
    {
        inputs[1] = 10003;
        *kind = TP_JOIN_TIMESTAMP;
        tp_merge_map_init(map, TP_MERGE_TIMESTAMP, OUT_STREAM, epoch);
        map->lateness_ns = 10 * MS;
        tp_merge_map_add_offset_ns(map, inputs[0], TP_MERGE_SOURCE_SLOT_HEADER, 0);
        return tp_merge_map_add_window_ns(map, inputs[1], TP_MERGE_SOURCE_SLOT_HEADER, 10 * MS);
    }
    if (strcmp(mode, "data-config") == 0)
    {
        inputs[1] = 10002;
        *kind = TP_JOIN_LATEST_VALUE;
        tp_merge_map_init(map, TP_MERGE_SEQUENCE, OUT_STREAM, epoch);
        map->stale_timeout_ns = 60000 * MS; /* a configuration older than a minute is reported absent */
        tp_merge_map_add_offset(map, inputs[0], 0);
        return tp_merge_map_add_offset(map, inputs[1], 0);
    }
    fprintf(stderr, "join_stage: unknown mode '%s' (lockstep, camera-imu or data-config)\n", mode);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5)
    {
        fprintf(stderr, "usage: join_stage lockstep|camera-imu|data-config [BUS_DIR|- [SHM_BASE_DIR|- [OUTPUTS]]]\n");
        return 2;
    }
    uint64_t want = argc > 4 ? strtoull(argv[4], NULL, 10) : 20;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_producer_t *output = NULL;
    tp_consumer_t *consumers[2] = {NULL, NULL};
    tp_merge_authority_t *authority = NULL;
    stage_t stage = {0};
    if (tp_client_context_init(&ctx) < 0 || example_set_dirs(ctx, argc, argv, 2) < 0 || tp_client_connect(&client, ctx) < 0)
    {
        return fail("connect");
    }
    if (tp_producer_attach(&output, client, OUT_STREAM, ATTACH_NS) < 0 || tp_producer_set_tracing(output, true) < 0)
    {
        return fail("the output stream");
    }
    tp_merge_map_t map;
    tp_join_kind_t kind;
    uint32_t inputs[2];
    uint32_t anchor;
    if (make_map(argv[1], tp_producer_epoch(output), &map, &kind, inputs, &anchor) < 0)
    {
        return 2;
    }
    for (int i = 0; i < 2; i++)
    {
        if (tp_consumer_attach(&consumers[i], client, inputs[i], ATTACH_NS) < 0)
        {
            return fail("an input stream");
        }
    }
    /* The stage is its output's merge-map authority: it announces the map every second and on request. */
    if (tp_merge_authority_init(&authority, client, output, 1000) < 0 ||
        tp_merge_authority_set_map(authority, &map) < 0)
    {
        return fail("the merge-map authority");
    }
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, kind, OUT_STREAM);
    o.inputs = consumers;
    o.input_count = 2;
    o.output = output;
    o.anchor_stream_id = anchor;
    o.on_tick = on_tick;
    o.clientd = &stage;
    if (tp_join_agent_init(&stage.agent, client, &o) < 0)
    {
        return fail("the join agent");
    }
    printf("attached: %s join of %" PRIu32 " and %" PRIu32 " into %d, epoch %" PRIu64 ", node id %" PRIu32 "\n",
        argv[1], inputs[0], inputs[1], OUT_STREAM, tp_producer_epoch(output), tp_producer_node_id(output));
    fflush(stdout);
    int64_t deadline = tp_clock_monotonic_ns() + 30000 * MS;
    while (stage.outputs < want && tp_clock_monotonic_ns() < deadline)
    {
        int64_t now = tp_clock_monotonic_ns();
        int work = tp_merge_authority_do_work(authority, now) + tp_join_agent_do_work(stage.agent, now) +
                   tp_producer_do_work(output);
        fflush(stdout);
        if (work == 0)
        {
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
        }
    }
    tp_join_agent_counters_t c;
    tp_join_agent_counters(stage.agent, &c);
    tp_merge_authority_counters_t ac;
    tp_merge_authority_counters(authority, &ac);
    printf("join_stage %s: %" PRIu64 " outputs, %" PRIu64 " dropped, %" PRIu64 " torn, %" PRIu64
           " trace links (%" PRIu64 " dropped), %" PRIu64 " map requests answered\n",
        argv[1], stage.outputs, c.dropped, stage.torn, c.tracelinks, c.tracelinks_dropped, ac.requests);
    tp_join_agent_close(stage.agent);
    tp_merge_authority_close(authority);
    tp_consumer_close(consumers[0]);
    tp_consumer_close(consumers[1]);
    tp_producer_close(output);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return stage.outputs >= want ? 0 : 1;
}
