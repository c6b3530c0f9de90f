/*
 * `tp bench join`: what a join costs. First the barrier alone: the update of an input cursor plus the readiness
 * check, per input frame, for the sequence (two cameras in lockstep), timestamp (camera + IMU window) and
 * latest-value barriers. Then a two-input pipeline on an embedded driver: cameras A and B publishing 64 KiB frames,
 * a join agent thread fusing them into a 64 KiB output, a consumer of the output, and beside it a consumer of A
 * itself: the output's frames/s with the inputs as fast as they go, and at 1 kHz the latency from the later
 * input's commit to the output consumer's callback next to the single-input consumer's.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "cli/tp_cli_embedded.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_histogram.h"
#include "tensorpool/tp_join.h"
#include "tensorpool/tp_trace.h"

#define JB_OUT 9000
#define JB_A 10001
#define JB_B 10002
#define JB_SIZE 65536
#define JB_SLOTS 64
#define JB_ROUNDS 5
#define JB_TIMEOUT_NS (5 * TP_NS_PER_S)

/* ---- the barrier alone ---- */

static tp_join_barrier_t *jb_barrier(tp_join_kind_t kind, const tp_merge_map_t *map)
{
    tp_join_barrier_options_t o;
    tp_join_barrier_options_init(&o, kind, JB_OUT);
    tp_join_barrier_t *b = NULL;
    if (tp_join_barrier_init(&b, &o) < 0)
    {
        return NULL;
    }
    tp_join_barrier_set_output_epoch(b, 1);
    if (tp_join_barrier_apply_map(b, map, 0) != 1)
    {
        tp_join_barrier_close(b);
        return NULL;
    }
    return b;
}

/* ns per input frame: each step observes one frame of each input and asks once. */
static double jb_barrier_ns(tp_join_kind_t kind, uint64_t steps)
{
    tp_merge_map_t map;
    tp_merge_map_init(&map, kind == TP_JOIN_TIMESTAMP ? TP_MERGE_TIMESTAMP : TP_MERGE_SEQUENCE, JB_OUT, 1);
    if (kind == TP_JOIN_TIMESTAMP)
    {
        map.lateness_ns = 10 * TP_NS_PER_MS;
        tp_merge_map_add_offset_ns(&map, JB_A, TP_MERGE_SOURCE_SLOT_HEADER, 0);
        tp_merge_map_add_window_ns(&map, JB_B, TP_MERGE_SOURCE_SLOT_HEADER, 10 * TP_NS_PER_MS);
    }
    else
    {
        tp_merge_map_add_offset(&map, JB_A, 0);
        tp_merge_map_add_offset(&map, JB_B, 0);
    }
    tp_join_barrier_t *b = jb_barrier(kind, &map);
    if (b == NULL)
    {
        return -1;
    }
    tp_join_result_t r;
    uint64_t ready = 0;
    int64_t t0 = tp_clock_monotonic_ns();
    for (uint64_t s = 0; s < steps; s++)
    {
        uint64_t t = 1000000000ull + s * 1000000ull;
        tp_join_barrier_observe(b, JB_A, 1, s, t, t, TP_CLOCK_DOMAIN_MONOTONIC, s + 1, (int64_t)s);
        tp_join_barrier_observe(b, JB_B, 1, s, t, t, TP_CLOCK_DOMAIN_MONOTONIC, s + 2, (int64_t)s);
        ready += kind == TP_JOIN_SEQUENCE    ? tp_join_barrier_ready_seq(b, s, (int64_t)s, &r)
                 : kind == TP_JOIN_TIMESTAMP ? tp_join_barrier_ready_time(b, t, TP_CLOCK_DOMAIN_MONOTONIC, (int64_t)s, &r)
                                             : tp_join_barrier_ready_latest(b, (int64_t)s, &r);
    }
    int64_t t1 = tp_clock_monotonic_ns();
    tp_join_barrier_close(b);
    return ready == steps ? (double)(t1 - t0) / (double)(2 * steps) : -1;
}

/* ---- the pipeline ---- */

typedef struct jb_consumer
{
    tp_consumer_t *consumer;
    tp_histogram_t latency;
    uint64_t frames;
    bool is_output; /* the output carries its inputs' later commit time in its first 8 bytes */
    int stop;
} jb_consumer_t;

typedef struct jb_stage
{
    tp_join_agent_t *agent;
    uint8_t *out;
    uint64_t outputs;
    int stop;
} jb_stage_t;

static void jb_on_frame(void *clientd, const tp_frame_t *f)
{
    jb_consumer_t *c = clientd;
    uint64_t from = f->timestamp_ns;
    if (c->is_output)
    {
        memcpy(&from, f->payload, sizeof(from));
    }
    tp_histogram_record(&c->latency, (uint64_t)(tp_clock_monotonic_ns() - (int64_t)from));
    c->frames++;
}

static void *jb_consumer_main(void *arg)
{
    jb_consumer_t *c = arg;
    while (!tp_load_relaxed_int(&c->stop))
    {
        if (tp_consumer_poll(c->consumer, jb_on_frame, c, 16) == 0)
        {
            usleep(20);
        }
    }
    return NULL;
}

static int jb_on_tick(void *clientd, const tp_join_tick_t *tick)
{
    jb_stage_t *s = clientd;
    uint64_t later = 0;
    for (uint32_t i = 0; i < tick->input_count; i++)
    {
        later = tick->frames[i].timestamp_ns > later ? tick->frames[i].timestamp_ns : later;
    }
    /* the fusion: the two inputs side by side, half of each (a real stage would compute here) */
    memcpy(s->out + 8, tick->frames[0].payload + 8, JB_SIZE / 2 - 8);
    memcpy(s->out + JB_SIZE / 2, tick->frames[1].payload, JB_SIZE / 2);
    memcpy(s->out, &later, sizeof(later));
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, JB_SIZE);
    if (tp_join_agent_publish(s->agent, tick, s->out, JB_SIZE, &t, 0) >= 0)
    {
        s->outputs++;
    }
    return 0;
}

static void *jb_stage_main(void *arg)
{
    jb_stage_t *s = arg;
    while (!tp_load_relaxed_int(&s->stop))
    {
        if (tp_join_agent_do_work(s->agent, tp_clock_monotonic_ns()) == 0)
        {
            usleep(20);
        }
    }
    return NULL;
}

typedef struct jb_result
{
    uint64_t input_frames; /* per input */
    uint64_t outputs;  /* made by the join */
    uint64_t dropped;  /* allowed but not made: inputs overwritten first */
    uint64_t consumed; /* read by the output's consumer (a consumer thread that shares the CPUs may be lapped) */
    double seconds;
    double out_p50_us, out_p99_us;
    double direct_p50_us, direct_p99_us;
} jb_result_t;

/* One run: inputs paced at rate_hz (0: as fast as they go) for seconds. */
static int jb_run(tp_client_t *client, double rate_hz, double seconds, const uint8_t *payload, jb_result_t *out)
{
    static jb_consumer_t outc;
    static jb_consumer_t direct;
    static jb_stage_t stage;
    memset(&outc, 0, sizeof(outc));
    memset(&direct, 0, sizeof(direct));
    memset(&stage, 0, sizeof(stage));
    outc.is_output = true;
    tp_producer_t *a = NULL;
    tp_producer_t *b = NULL;
    tp_producer_t *output = NULL;
    tp_consumer_t *inputs[2] = {NULL, NULL};
    tp_merge_authority_t *authority = NULL;
    pthread_t threads[3];
    int started = 0;
    int rc = -1;
    stage.out = calloc(1, JB_SIZE);
    if (stage.out == NULL || tp_producer_attach(&a, client, JB_A, JB_TIMEOUT_NS) < 0 ||
        tp_producer_attach(&b, client, JB_B, JB_TIMEOUT_NS) < 0 ||
        tp_producer_attach(&output, client, JB_OUT, JB_TIMEOUT_NS) < 0 || tp_producer_set_tracing(output, true) < 0 ||
        tp_consumer_attach(&inputs[0], client, JB_A, JB_TIMEOUT_NS) < 0 ||
        tp_consumer_attach(&inputs[1], client, JB_B, JB_TIMEOUT_NS) < 0 ||
        tp_consumer_attach(&outc.consumer, client, JB_OUT, JB_TIMEOUT_NS) < 0 ||
        tp_consumer_attach(&direct.consumer, client, JB_A, JB_TIMEOUT_NS) < 0)
    {
        goto done;
    }
    tp_merge_map_t map;
    tp_merge_map_init(&map, TP_MERGE_SEQUENCE, JB_OUT, tp_producer_epoch(output));
    tp_merge_map_add_offset(&map, JB_A, 0);
    tp_merge_map_add_offset(&map, JB_B, 0);
    tp_join_agent_options_t o;
    tp_join_agent_options_init(&o, TP_JOIN_SEQUENCE, JB_OUT);
    o.inputs = inputs;
    o.input_count = 2;
    o.output = output;
    o.on_tick = jb_on_tick;
    o.clientd = &stage;
    if (tp_join_agent_init(&stage.agent, client, &o) < 0 || tp_merge_authority_init(&authority, client, output, 0) < 0 ||
        tp_merge_authority_set_map(authority, &map) < 0)
    {
        goto done;
    }
    for (int i = 0; i < 5000 && !tp_join_barrier_has_map(tp_join_agent_barrier(stage.agent)); i++)
    {
        tp_merge_authority_do_work(authority, tp_clock_monotonic_ns());
        tp_join_agent_do_work(stage.agent, tp_clock_monotonic_ns());
        usleep(1000);
    }
    pthread_create(&threads[started++], NULL, jb_stage_main, &stage);
    pthread_create(&threads[started++], NULL, jb_consumer_main, &outc);
    pthread_create(&threads[started++], NULL, jb_consumer_main, &direct);
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, JB_SIZE);
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    for (uint64_t i = 0; tp_clock_monotonic_ns() < end && !tp_cli_stop_requested(); i++)
    {
        if (rate_hz > 0)
        {
            int64_t due = start + (int64_t)((double)i * 1e9 / rate_hz);
            struct timespec ts = { .tv_sec = due / TP_NS_PER_S, .tv_nsec = due % TP_NS_PER_S };
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
        else if (i % 4 == 3)
        {
            sched_yield(); /* 2 vCPUs: let the stage and the consumers in */
        }
        if (tp_producer_offer_frame(a, payload, JB_SIZE, &t, 0, 0) >= 0 &&
            tp_producer_offer_frame(b, payload, JB_SIZE, &t, 0, 0) >= 0)
        {
            out->input_frames++;
        }
        tp_producer_do_work(a);
        tp_producer_do_work(b);
    }
    out->seconds = (double)(tp_clock_monotonic_ns() - start) / 1e9;
    usleep(100000);
    rc = 0;
done:
    tp_store_relaxed_int(&stage.stop, 1);
    tp_store_relaxed_int(&outc.stop, 1);
    tp_store_relaxed_int(&direct.stop, 1);
    for (int i = 0; i < started; i++)
    {
        pthread_join(threads[i], NULL);
    }
    if (rc == 0)
    {
        tp_join_agent_counters_t k;
        tp_join_agent_counters(stage.agent, &k);
        out->outputs = k.outputs;
        out->dropped = k.dropped;
        out->consumed = outc.frames;
        out->out_p50_us = (double)tp_histogram_percentile(&outc.latency, 50) / 1e3;
        out->out_p99_us = (double)tp_histogram_percentile(&outc.latency, 99) / 1e3;
        out->direct_p50_us = (double)tp_histogram_percentile(&direct.latency, 50) / 1e3;
        out->direct_p99_us = (double)tp_histogram_percentile(&direct.latency, 99) / 1e3;
    }
    tp_join_agent_close(stage.agent);
    tp_merge_authority_close(authority);
    tp_consumer_close(outc.consumer);
    tp_consumer_close(direct.consumer);
    tp_consumer_close(inputs[0]);
    tp_consumer_close(inputs[1]);
    tp_producer_close(output);
    tp_producer_close(b);
    tp_producer_close(a);
    free(stage.out);
    return rc;
}

static void jb_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench join [--seconds S] [--json]\n\n"
        "The join barrier's cost per input frame (an input cursor's update plus the readiness check; median of %d\n"
        "rounds) for the sequence, timestamp and latest-value barriers; then two 64 KiB cameras in lockstep\n"
        "through a join agent thread into a 64 KiB output on an embedded driver, for S seconds [2] each: the\n"
        "output's frames/s with the cameras as fast as they go, and at 1 kHz the latency from the later input's\n"
        "commit to the output consumer's callback (p50/p99), beside a consumer of one camera (a single input).\n\n"
        "exit status: 0 measured; 1 a run failed; 2 bad arguments.\n", JB_ROUNDS);
}

int tp_bench_join(int argc, char **argv)
{
    double seconds = 2.0;
    bool json = false;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            jb_usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
        {
            json = true;
        }
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_double(argv[++i], 0.1, 600, &seconds) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench join", "--seconds: %s", tp_errmsg());
            }
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "bench join", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    static const char *const kind_names[3] = {"sequence", "timestamp", "latest value"};
    tp_bench_stat_t barrier[3];
    for (int k = 0; k < 3; k++)
    {
        double v[JB_ROUNDS];
        for (int r = 0; r < JB_ROUNDS; r++)
        {
            v[r] = jb_barrier_ns((tp_join_kind_t)(k + 1), 1000000);
            if (v[r] < 0)
            {
                return tp_cli_fail(TP_EXIT_FAILED, "bench join", "the %s barrier did not run: %s", kind_names[k],
                    tp_errmsg());
            }
        }
        tp_bench_stats(v, JB_ROUNDS, &barrier[k]);
    }
    tp_cli_install_stop_handlers(); /* SIGINT/SIGTERM end the runs; the embedded driver then removes its files */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const uint32_t streams[3] = { JB_OUT, JB_A, JB_B };
    const uint16_t pool_ids[1] = { 1 };
    const uint32_t strides[1] = { JB_SIZE };
    tp_cli_embedded_t env;
    tp_client_t *client = NULL;
    uint8_t *payload = calloc(1, JB_SIZE);
    jb_result_t fast = {0};
    jb_result_t paced = {0};
    int status = TP_EXIT_OK;
    if (!json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("running: the pipeline for %.1f s as fast as it goes, then %.1f s at 1 kHz...\n", seconds, seconds);
        fflush(stdout);
    }
    if (payload == NULL ||
        tp_cli_embedded_open_streams(&env, base, "bench-join", streams, 3, JB_SLOTS, pool_ids, strides, 1) < 0 ||
        tp_client_connect(&client, env.client_context) < 0 || jb_run(client, 0, seconds, payload, &fast) < 0 ||
        jb_run(client, 1000, seconds, payload, &paced) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "bench join", "%s", payload == NULL ? "out of memory" : tp_errmsg());
        goto done;
    }
    if (json)
    {
        printf("{\"barrier_ns_per_input_frame\":{\"sequence\":%.1f,\"timestamp\":%.1f,\"latest_value\":%.1f},"
               "\"pipeline\":{\"input_frames_per_s\":%.0f,\"output_frames_per_s\":%.0f,\"dropped\":%" PRIu64 ","
               "\"latency_1khz_p50_us\":%.1f,\"latency_1khz_p99_us\":%.1f,\"single_input_p50_us\":%.1f,"
               "\"single_input_p99_us\":%.1f}}\n",
            barrier[0].median, barrier[1].median, barrier[2].median, (double)fast.input_frames / fast.seconds,
            (double)fast.outputs / fast.seconds, fast.dropped, paced.out_p50_us, paced.out_p99_us, paced.direct_p50_us,
            paced.direct_p99_us);
        goto done;
    }
    printf("\nbarrier: update + readiness check per input frame (median of %d rounds of 1M steps, min-max)\n",
        JB_ROUNDS);
    for (int k = 0; k < 3; k++)
    {
        printf("  %-13s %6.1f ns  (%.1f-%.1f)\n", kind_names[k], barrier[k].median, barrier[k].min, barrier[k].max);
    }
    printf("\npipeline: 2 x 64 KiB cameras in lockstep -> join agent -> 64 KiB output\n");
    printf("  as fast as it goes: %.0f input pairs/s, %.0f outputs/s (%.1f%% of the pairs; %" PRIu64
           " dropped; the output's consumer read %.0f/s)\n",
        (double)fast.input_frames / fast.seconds, (double)fast.outputs / fast.seconds,
        fast.input_frames > 0 ? 100.0 * (double)fast.outputs / (double)fast.input_frames : 0.0, fast.dropped,
        (double)fast.consumed / fast.seconds);
    printf("  at 1 kHz: %" PRIu64 " outputs; later input's commit -> output callback p50 %.1f us, p99 %.1f us\n",
        paced.outputs, paced.out_p50_us, paced.out_p99_us);
    printf("            single input (commit -> callback, same run) p50 %.1f us, p99 %.1f us\n", paced.direct_p50_us,
        paced.direct_p99_us);
    printf("\nthreads idle 20 us between empty duty cycles; the output path includes a 64 KiB copy into the output\n");
done:
    tp_client_close(client);
    tp_cli_embedded_close(&env);
    free(payload);
    return status;
}
