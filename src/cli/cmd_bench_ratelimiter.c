/*
 * `tp bench ratelimiter`: what a rate limiter costs, on an embedded driver with a source and a destination stream.
 * A 1 kHz source (64 KiB and 640 KiB frames) runs for --seconds through a limiter thread capped at 30 Hz, and
 * again uncapped (every frame copied): the limiter thread's CPU time per source frame and per published frame, and
 * the latency from the source's commit to a destination consumer's callback (p50/p99), beside a consumer of the
 * source itself (the copy path's own latency) and this machine's memcpy of the frame, in the same run.
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
#include "ratelimit/tp_ratelimiter.h"

#define RB_SOURCE 10000
#define RB_DEST 11000
#define RB_SLOTS 64
#define RB_SIZES 2
#define RB_TIMEOUT_NS (5 * TP_NS_PER_S)

static const uint32_t rb_sizes[RB_SIZES] = { 65536, 655360 };

typedef struct rb_consumer
{
    tp_consumer_t *consumer;
    tp_histogram_t latency;
    int stop;
} rb_consumer_t;

typedef struct rb_limiter
{
    tp_ratelimiter_t limiter;
    int64_t cpu_ns;
    int stop;
} rb_limiter_t;

static void rb_on_frame(void *clientd, const tp_frame_t *f)
{
    rb_consumer_t *c = clientd;
    /* The slot's timestamp is the source's commit time; the limiter keeps it. */
    tp_histogram_record(&c->latency, (uint64_t)(tp_clock_monotonic_ns() - (int64_t)f->timestamp_ns));
}

static void *rb_consumer_main(void *arg)
{
    rb_consumer_t *c = arg;
    while (!tp_load_relaxed_int(&c->stop))
    {
        if (tp_consumer_poll(c->consumer, rb_on_frame, c, 16) == 0)
        {
            usleep(20);
        }
    }
    return NULL;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * TP_NS_PER_S + ts.tv_nsec;
}

static void *rb_limiter_main(void *arg)
{
    rb_limiter_t *l = arg;
    int64_t cpu0 = thread_cpu_ns();
    while (!tp_load_relaxed_int(&l->stop))
    {
        if (tp_ratelimiter_do_work(&l->limiter, tp_clock_monotonic_ns()) == 0)
        {
            usleep(20); /* a limiter idles like any agent: this is the CPU a deployment would see */
        }
    }
    l->cpu_ns = thread_cpu_ns() - cpu0;
    return NULL;
}

typedef struct rb_result
{
    uint64_t source_frames;
    uint64_t published;
    double cpu_us_per_source_frame;
    double cpu_us_per_published;
    double p50_us;
    double p99_us;
    double direct_p50_us;
    double direct_p99_us;
    double memcpy_us;
} rb_result_t;

/* One run: source at 1 kHz for seconds, limiter at cap_hz, a consumer of each stream. */
static int rb_run(tp_client_t *client, uint32_t size, uint32_t cap_hz, double seconds, const uint8_t *payload,
    rb_result_t *out)
{
    static rb_limiter_t l;
    static rb_consumer_t dest;
    static rb_consumer_t direct;
    memset(&l, 0, sizeof(l));
    memset(&dest, 0, sizeof(dest));
    memset(&direct, 0, sizeof(direct));
    tp_producer_t *source = NULL;
    int rc = -1;
    pthread_t threads[3];
    int started = 0;
    if (tp_producer_attach(&source, client, RB_SOURCE, RB_TIMEOUT_NS) < 0 ||
        tp_ratelimiter_open(&l.limiter, client, RB_SOURCE, RB_DEST, cap_hz) < 0)
    {
        goto done;
    }
    for (int i = 0; i < 5000 && !tp_ratelimiter_is_ready(&l.limiter); i++)
    {
        tp_ratelimiter_do_work(&l.limiter, tp_clock_monotonic_ns());
        usleep(1000);
    }
    if (!tp_ratelimiter_is_ready(&l.limiter) ||
        tp_consumer_attach(&dest.consumer, client, RB_DEST, RB_TIMEOUT_NS) < 0 ||
        tp_consumer_attach(&direct.consumer, client, RB_SOURCE, RB_TIMEOUT_NS) < 0)
    {
        goto done;
    }
    pthread_create(&threads[started++], NULL, rb_limiter_main, &l);
    pthread_create(&threads[started++], NULL, rb_consumer_main, &dest);
    pthread_create(&threads[started++], NULL, rb_consumer_main, &direct);
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_UINT8;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 1;
    t.dims[0] = (int32_t)size;
    int64_t start = tp_clock_monotonic_ns();
    uint64_t frames = (uint64_t)(seconds * 1000.0);
    for (uint64_t i = 0; i < frames && !tp_cli_stop_requested(); i++)
    {
        int64_t due = start + (int64_t)i * TP_NS_PER_MS;
        struct timespec ts = { .tv_sec = due / TP_NS_PER_S, .tv_nsec = due % TP_NS_PER_S };
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (tp_producer_offer_frame(source, payload, size, &t, 0, 0) >= 0)
        {
            out->source_frames++;
        }
        tp_producer_do_work(source);
    }
    usleep(100000);
    rc = 0;
done:
    tp_store_relaxed_int(&l.stop, 1);
    tp_store_relaxed_int(&dest.stop, 1);
    tp_store_relaxed_int(&direct.stop, 1);
    for (int i = 0; i < started; i++)
    {
        pthread_join(threads[i], NULL);
    }
    if (rc == 0)
    {
        out->published = l.limiter.counters.published;
        out->cpu_us_per_source_frame = (double)l.cpu_ns / 1e3 / (double)(out->source_frames ? out->source_frames : 1);
        out->cpu_us_per_published = (double)l.cpu_ns / 1e3 / (double)(out->published ? out->published : 1);
        out->p50_us = (double)tp_histogram_percentile(&dest.latency, 50) / 1e3;
        out->p99_us = (double)tp_histogram_percentile(&dest.latency, 99) / 1e3;
        out->direct_p50_us = (double)tp_histogram_percentile(&direct.latency, 50) / 1e3;
        out->direct_p99_us = (double)tp_histogram_percentile(&direct.latency, 99) / 1e3;
    }
    tp_consumer_close(dest.consumer);
    tp_consumer_close(direct.consumer);
    tp_ratelimiter_close(&l.limiter);
    tp_producer_close(source);
    return rc;
}

static double rb_memcpy_us(const uint8_t *src, uint8_t *dst, uint32_t size)
{
    int64_t t0 = tp_clock_monotonic_ns();
    for (int i = 0; i < 200; i++)
    {
        memcpy(dst + (size_t)(i % 8) * size, src, size);
    }
    return (double)(tp_clock_monotonic_ns() - t0) / 200.0 / 1e3;
}

static void rb_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench ratelimiter [--seconds S] [--json]\n\n"
        "Runs a rate limiter on an embedded driver: a 1 kHz source of 64 KiB and of 640 KiB frames for S seconds\n"
        "[2], through a limiter thread capped at 30 Hz and then uncapped. Prints the limiter's CPU time per source\n"
        "frame and per published frame, the latency from the source's commit to a destination consumer's\n"
        "callback (p50/p99), a consumer of the source beside it (the copy path's own latency), and memcpy of one\n"
        "frame on this machine. At 30 Hz the latency includes the wait for the rate slot (up to 33 ms).\n\n"
        "exit status: 0 measured; 1 a run failed; 2 bad arguments.\n");
}

int tp_bench_ratelimiter(int argc, char **argv)
{
    double seconds = 2.0;
    bool json = false;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            rb_usage(stdout);
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
                return tp_cli_fail(TP_EXIT_USAGE, "bench ratelimiter", "--seconds: %s", tp_errmsg());
            }
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "bench ratelimiter", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    tp_cli_install_stop_handlers(); /* SIGINT/SIGTERM end the runs; the embedded driver then removes its files */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    const uint32_t streams[2] = { RB_SOURCE, RB_DEST };
    const uint16_t pool_ids[2] = { 1, 2 };
    const uint32_t strides[2] = { 65536, 1048576 };
    tp_cli_embedded_t env;
    tp_client_t *client = NULL;
    uint8_t *src = malloc(rb_sizes[RB_SIZES - 1]);
    uint8_t *dst = malloc((size_t)rb_sizes[RB_SIZES - 1] * 8);
    rb_result_t results[RB_SIZES][2];
    memset(results, 0, sizeof(results));
    int status = TP_EXIT_OK;
    if (src == NULL || dst == NULL ||
        tp_cli_embedded_open_streams(&env, base, "bench-rl", streams, 2, RB_SLOTS, pool_ids, strides, 2) < 0 ||
        tp_client_connect(&client, env.client_context) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "bench ratelimiter", "%s", src == NULL ? "out of memory" : tp_errmsg());
        goto done;
    }
    memset(src, 0x5a, rb_sizes[RB_SIZES - 1]);
    memset(dst, 0, (size_t)rb_sizes[RB_SIZES - 1] * 8);
    if (!json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("running: 1 kHz source for %.1f s per line...\n", seconds);
        fflush(stdout);
    }
    for (int s = 0; s < RB_SIZES && status == TP_EXIT_OK; s++)
    {
        for (int capped = 1; capped >= 0 && status == TP_EXIT_OK; capped--)
        {
            rb_result_t *r = &results[s][capped];
            if (rb_run(client, rb_sizes[s], capped ? 30 : 0, seconds, src, r) < 0)
            {
                status = tp_cli_fail(TP_EXIT_FAILED, "bench ratelimiter", "%s", tp_errmsg());
            }
            r->memcpy_us = rb_memcpy_us(src, dst, rb_sizes[s]);
        }
    }
    if (status != TP_EXIT_OK)
    {
        goto done;
    }
    if (json)
    {
        printf("{\"runs\":[");
    }
    else
    {
        printf("\n%-8s %-6s %8s %9s %12s %12s %20s %20s %10s\n", "frame", "cap", "source", "published", "CPU us/src",
            "CPU us/pub", "commit->dest p50/p99", "commit->src p50/p99", "memcpy us");
    }
    for (int s = 0; s < RB_SIZES; s++)
    {
        for (int capped = 1; capped >= 0; capped--)
        {
            const rb_result_t *r = &results[s][capped];
            if (json)
            {
                printf("%s{\"size\":%u,\"cap_hz\":%d,\"source_frames\":%" PRIu64 ",\"published\":%" PRIu64
                       ",\"cpu_us_per_source_frame\":%.2f,\"cpu_us_per_published\":%.2f,\"latency_p50_us\":%.1f,"
                       "\"latency_p99_us\":%.1f,\"direct_p50_us\":%.1f,\"direct_p99_us\":%.1f,\"memcpy_us\":%.2f}",
                    s + (1 - capped) > 0 ? "," : "", rb_sizes[s], capped ? 30 : 0, r->source_frames, r->published,
                    r->cpu_us_per_source_frame, r->cpu_us_per_published, r->p50_us, r->p99_us, r->direct_p50_us,
                    r->direct_p99_us, r->memcpy_us);
            }
            else
            {
                printf("%4u KiB %-6s %8" PRIu64 " %9" PRIu64 " %12.2f %12.2f %9.1f / %8.1f %9.1f / %8.1f %10.2f\n",
                    rb_sizes[s] / 1024, capped ? "30 Hz" : "none", r->source_frames, r->published,
                    r->cpu_us_per_source_frame, r->cpu_us_per_published, r->p50_us, r->p99_us, r->direct_p50_us,
                    r->direct_p99_us, r->memcpy_us);
            }
        }
    }
    printf(json ? "]}\n" : "\nlatencies in us; CPU is the limiter thread's, idling 20 us between empty duty cycles\n");
done:
    tp_client_close(client);
    tp_cli_embedded_close(&env);
    free(src);
    free(dst);
    return status;
}
