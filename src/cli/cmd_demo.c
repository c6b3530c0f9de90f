/*
 * `tp demo`: the whole system in one process. An embedded SHM driver (its own thread) provisions a stream; a
 * producer thread attaches through it and publishes synthetic camera frames on the zero-copy claim path; two
 * consumer threads attach, follow the FrameDescriptors on the bus and read each frame through the seqlock: `fast`
 * verifies it in place and re-checks, `slow` copies it out (validated) and then spends --slow-ms on the copy.
 * Every accepted frame's CRC32C is verified. Each thread has its own client, exactly as separate processes would.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_cli_embedded.h"
#include "cli/tp_web.h"
#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "core/tp_err.h"
#include "core/tp_histogram.h"
#include "core/tp_fs.h"
#include "shm/tp_shm_layout.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"

#define DEMO_STREAM_ID 10000
#define DEMO_ATTACH_TIMEOUT_NS (5 * TP_NS_PER_S)

typedef struct demo_config
{
    uint32_t width;
    uint32_t height;
    uint32_t channels;
    uint32_t nslots;
    double rate_hz;
    double seconds;
    double slow_ms;
    int json;
    char base_dir[TP_PATH_MAX];
    char web_listen[64]; /* "": no dashboard */
} demo_config_t;

typedef struct demo_shared
{
    uint64_t head; /* frames published so far */
    uint8_t pad1[TP_CACHE_LINE_PAD_BYTES - sizeof(uint64_t)];
    int stop;
    uint8_t pad2[TP_CACHE_LINE_PAD_BYTES - sizeof(int)];
    uint64_t report_request; /* the reporter bumps it; each consumer answers by publishing its window */
    uint8_t pad3[TP_CACHE_LINE_PAD_BYTES - sizeof(uint64_t)];
    uint64_t produced_bytes;
} demo_shared_t;

typedef struct demo_consumer
{
    const char *name;
    demo_shared_t *shared;
    const demo_config_t *config;
    const tp_client_context_t *client_context;
    double slow_ms;
    uint8_t *copy_buffer; /* the slow consumer copies each payload out before processing it */
    uint32_t copy_capacity;
    pthread_t thread;
    int started;
    int attached;    /* set (release) once attached, or failed */
    int map_failed;
    char map_error[1024];
    /* counters, written by the consumer thread only, read relaxed by the reporter */
    uint64_t frames;
    uint64_t bytes;
    uint64_t drops_gap;
    uint64_t drops_late;
    uint64_t invalid;
    uint64_t checksum_failures;
    uint64_t remaps;
    /* latency of the current reporting window; handed over when the reporter asks (report_request) */
    tp_histogram_t window;
    tp_histogram_t total;     /* whole run; read after the thread is joined */
    tp_histogram_t published; /* written by the consumer only while answering a request */
    uint64_t answered;        /* the last request answered */
} demo_consumer_t;

static void demo_usage(FILE *out)
{
    fprintf(out,
        "usage: tp demo [--seconds S] [--width W] [--height H] [--channels C] [--slots N] [--rate HZ]\n"
        "               [--slow-ms MS] [--base-dir DIR] [--web ADDR:PORT] [--json]\n\n"
        "Run an embedded SHM driver (regions in the canonical layout under DIR), a producer of synthetic\n"
        "camera frames (colour bars with a band moving down, seq and CRC32C stamped in) and two consumers, each attached through the driver with its own client and talking\n"
        "over the bus: `fast` reads every frame in place (zero copy) and re-checks the seqlock; `slow` copies\n"
        "each frame out, re-checks, then spends --slow-ms on its copy.\n"
        "Every accepted frame's CRC32C is verified. Once a second it prints frames/s, GiB/s, drops by kind\n"
        "(gap: overwritten before it was read; late: changed while it was read), latency from the commit to\n"
        "the consumer's callback (p50/p99), and checksum failures, which must stay 0.\n\n"
        "Everything runs in this one process, on threads; the bus directory and the SHM namespace are private\n"
        "to it (demo-<pid>) and removed at the end.\n\n"
        "options (defaults in brackets):\n"
        "  --seconds S     run time [10]; Ctrl-C stops early\n"
        "  --width W, --height H, --channels C   frame shape, uint8 [1280x720x3]\n"
        "  --slots N       ring slots, a power of two [16]\n"
        "  --rate HZ       frames per second, 0 = as fast as possible [0]\n"
        "  --slow-ms MS    processing time of the slow consumer [5]\n"
        "  --base-dir DIR  where the regions go [/dev/shm]\n"
        "  --web ADDR:PORT also serve the tp web dashboard of the demo's driver there (e.g. 127.0.0.1:8080):\n"
        "                  open the URL it prints to watch the test pattern and the figures live\n"
        "  --json          one JSON object per line instead of text\n\n"
        "exit status: 0 when no accepted frame failed its checksum, 1 otherwise, 2 bad arguments.\n");
}

static int demo_parse_u32(const char *text, uint64_t min, uint64_t max, uint32_t *out)
{
    uint64_t v;
    if (tp_cli_parse_u64(text, min, max, &v) < 0)
    {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int demo_parse(int argc, char **argv, demo_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->width = 1280;
    c->height = 720;
    c->channels = 3;
    c->nslots = 16;
    c->seconds = 10;
    c->slow_ms = 5;
    snprintf(c->base_dir, sizeof(c->base_dir), "%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            demo_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--json") == 0)
        {
            c->json = 1;
            continue;
        }
        if (i + 1 >= argc)
        {
            tp_cli_fail(TP_EXIT_USAGE, "demo", "unknown option or missing value: '%s' (see tp demo --help)", a);
            return -1;
        }
        const char *v = argv[++i];
        int rc;
        if (strcmp(a, "--seconds") == 0)
        {
            rc = tp_cli_parse_double(v, 0.1, 86400, &c->seconds);
        }
        else if (strcmp(a, "--rate") == 0)
        {
            rc = tp_cli_parse_double(v, 0, 1e7, &c->rate_hz);
        }
        else if (strcmp(a, "--slow-ms") == 0)
        {
            rc = tp_cli_parse_double(v, 0, 10000, &c->slow_ms);
        }
        else if (strcmp(a, "--width") == 0)
        {
            rc = demo_parse_u32(v, 1, 65536, &c->width);
        }
        else if (strcmp(a, "--height") == 0)
        {
            rc = demo_parse_u32(v, 1, 65536, &c->height);
        }
        else if (strcmp(a, "--channels") == 0)
        {
            rc = demo_parse_u32(v, 1, 64, &c->channels);
        }
        else if (strcmp(a, "--slots") == 0)
        {
            rc = demo_parse_u32(v, 1, 1u << 20, &c->nslots);
            if (rc == 0 && !tp_shm_nslots_is_valid(c->nslots))
            {
                tp_cli_fail(TP_EXIT_USAGE, "demo", "--slots %s is not a power of two", v);
                return -1;
            }
        }
        else if (strcmp(a, "--base-dir") == 0)
        {
            rc = snprintf(c->base_dir, sizeof(c->base_dir), "%s", v) < (int)sizeof(c->base_dir) ? 0 : -1;
        }
        else if (strcmp(a, "--web") == 0)
        {
            rc = snprintf(c->web_listen, sizeof(c->web_listen), "%s", v) < (int)sizeof(c->web_listen) ? 0 : -1;
        }
        else
        {
            tp_cli_fail(TP_EXIT_USAGE, "demo", "unknown option '%s' (see tp demo --help)", a);
            return -1;
        }
        if (rc < 0)
        {
            tp_cli_fail(TP_EXIT_USAGE, "demo", "%s: %s", a, tp_errmsg());
            return -1;
        }
    }
    uint64_t frame = (uint64_t)c->width * c->height * c->channels;
    if (frame < 16 || frame > (1u << 30))
    {
        tp_cli_fail(TP_EXIT_USAGE, "demo", "a frame of %" PRIu64 " bytes is outside 16 B..1 GiB", frame);
        return -1;
    }
    return 0;
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t s = 64;
    while (s < n)
    {
        s <<= 1;
    }
    return s;
}

static void demo_sleep_ns(int64_t ns)
{
    if (ns <= 0)
    {
        return;
    }
    struct timespec ts = { .tv_sec = ns / TP_NS_PER_S, .tv_nsec = ns % TP_NS_PER_S };
    nanosleep(&ts, NULL);
}

static void consumer_answer_report(demo_consumer_t *c, uint64_t request)
{
    c->published = c->window;
    tp_histogram_merge(&c->total, &c->window);
    tp_histogram_reset(&c->window);
    tp_store_release_u64(&c->answered, request); /* pairs with the acquire in demo_take_window */
}

/* One frame: verify it (in place, or on a validated private copy), record its latency. */
static void demo_on_frame(void *clientd, const tp_frame_t *f)
{
    demo_consumer_t *c = clientd;
    uint64_t seen_ns = (uint64_t)tp_clock_monotonic_ns();
    int ok;
    if (c->copy_buffer != NULL)
    {
        /* Copy-out path for slow processing: copy, validate, then take all the time needed on the private copy;
         * the producer can no longer change it. */
        if (tp_frame_copy_out(f, c->copy_buffer, c->copy_capacity) < 0)
        {
            return; /* changed while copying: the library counts it late */
        }
        ok = f->payload_length >= 12 && tp_cli_frame_verify(c->copy_buffer, f->payload_length, f->seq);
        demo_sleep_ns((int64_t)(c->slow_ms * 1e6)); /* "processing" */
    }
    else
    {
        /* Zero-copy path: read in place, then re-check; only then is what was read known good (wire spec 8.3). */
        ok = f->payload_length >= 12 && tp_cli_frame_verify(f->payload, f->payload_length, f->seq);
        if (!tp_frame_is_intact(f))
        {
            return; /* the library counts it late */
        }
    }
    if (!ok)
    {
        tp_store_relaxed_u64(&c->checksum_failures, c->checksum_failures + 1);
        return;
    }
    tp_histogram_record(&c->window, seen_ns > f->timestamp_ns ? seen_ns - f->timestamp_ns : 0);
    tp_store_relaxed_u64(&c->bytes, c->bytes + f->payload_length);
}

static void consumer_fail(demo_consumer_t *c)
{
    snprintf(c->map_error, sizeof(c->map_error), "%s", tp_errmsg());
    c->map_failed = 1;
    tp_store_release_int(&c->attached, 1);
}

static void *consumer_main(void *arg)
{
    demo_consumer_t *c = arg;
    tp_client_t *client = NULL;
    tp_consumer_t *consumer = NULL;
    if (tp_client_connect(&client, c->client_context) < 0 ||
        tp_consumer_attach(&consumer, client, DEMO_STREAM_ID, DEMO_ATTACH_TIMEOUT_NS) < 0)
    {
        consumer_fail(c);
        tp_client_close(client);
        return NULL;
    }
    tp_store_release_int(&c->attached, 1);
    tp_consumer_counters_t k;
    while (!tp_load_relaxed_int(&c->shared->stop))
    {
        if (tp_consumer_poll(consumer, demo_on_frame, c, 16) < 0)
        {
            consumer_fail(c);
            break;
        }
        tp_consumer_counters(consumer, &k);
        tp_store_relaxed_u64(&c->frames, k.frames);
        tp_store_relaxed_u64(&c->drops_gap, k.drops_gap);
        tp_store_relaxed_u64(&c->drops_late, k.drops_late);
        tp_store_relaxed_u64(&c->invalid, k.drops_invalid);
        tp_store_relaxed_u64(&c->remaps, k.remaps);
        uint64_t request = tp_load_acquire_u64(&c->shared->report_request);
        if (request != c->answered)
        {
            consumer_answer_report(c, request);
        }
    }
    tp_histogram_merge(&c->total, &c->window);
    tp_consumer_close(consumer);
    tp_client_close(client);
    return NULL;
}

/* Ask every consumer for its latency window and wait (briefly: a slow consumer answers after its current frame). */
static void demo_request_windows(demo_shared_t *shared, demo_consumer_t *consumers, int count)
{
    uint64_t request = tp_load_relaxed_u64(&shared->report_request) + 1;
    tp_store_release_u64(&shared->report_request, request);
    int64_t deadline = tp_clock_monotonic_ns() + 200 * TP_NS_PER_MS;
    for (int i = 0; i < count; i++)
    {
        while (consumers[i].started && tp_load_acquire_u64(&consumers[i].answered) != request &&
               tp_clock_monotonic_ns() < deadline)
        {
            demo_sleep_ns(100000);
        }
    }
}

/* The window a consumer handed over for the current request; empty if it has not answered in time. */
static void demo_take_window(demo_consumer_t *c, uint64_t request, tp_histogram_t *out)
{
    if (tp_load_acquire_u64(&c->answered) == request)
    {
        *out = c->published;
    }
    else
    {
        tp_histogram_reset(out);
    }
}

typedef struct demo_totals
{
    uint64_t frames;
    uint64_t gap;
    uint64_t late;
    uint64_t invalid;
    uint64_t checksum;
} demo_totals_t;

static void demo_consumer_totals(demo_consumer_t *c, demo_totals_t *t)
{
    t->frames = tp_load_relaxed_u64(&c->frames);
    t->gap = tp_load_relaxed_u64(&c->drops_gap);
    t->late = tp_load_relaxed_u64(&c->drops_late);
    t->invalid = tp_load_relaxed_u64(&c->invalid);
    t->checksum = tp_load_relaxed_u64(&c->checksum_failures);
}

static void demo_report(const demo_config_t *cfg, double t_s, double dt_s, uint64_t produced, uint64_t bytes,
    demo_consumer_t *consumers, demo_totals_t *last, uint64_t request, int final)
{
    if (cfg->json)
    {
        printf("{\"t_s\":%.1f,\"final\":%s,\"produced\":%" PRIu64 ",\"produced_per_s\":%.0f,\"gib_per_s\":%.3f,"
               "\"consumers\":[",
            t_s, final ? "true" : "false", produced, dt_s > 0 ? (double)produced / dt_s : 0,
            dt_s > 0 ? (double)bytes / dt_s / (1u << 30) : 0);
    }
    else
    {
        printf("%s%5.1fs  producer %7.0f f/s %6.2f GiB/s", final ? "total " : "", t_s,
            dt_s > 0 ? (double)produced / dt_s : 0, dt_s > 0 ? (double)bytes / dt_s / (1u << 30) : 0);
    }
    for (int i = 0; i < 2; i++)
    {
        demo_consumer_t *c = &consumers[i];
        demo_totals_t now;
        demo_consumer_totals(c, &now);
        tp_histogram_t h;
        if (final)
        {
            h = c->total;
        }
        else
        {
            demo_take_window(c, request, &h);
        }
        uint64_t frames = final ? now.frames : now.frames - last[i].frames;
        uint64_t gap = final ? now.gap : now.gap - last[i].gap;
        uint64_t late = final ? now.late : now.late - last[i].late;
        double p50 = (double)tp_histogram_percentile(&h, 50) / 1e3;
        double p99 = (double)tp_histogram_percentile(&h, 99) / 1e3;
        if (cfg->json)
        {
            printf("%s{\"name\":\"%s\",\"frames\":%" PRIu64 ",\"drops_gap\":%" PRIu64 ",\"drops_late\":%" PRIu64
                   ",\"invalid\":%" PRIu64 ",\"checksum_failures\":%" PRIu64 ",\"latency_p50_us\":%.2f,"
                   "\"latency_p99_us\":%.2f}",
                i > 0 ? "," : "", c->name, frames, gap, late, now.invalid, now.checksum, p50, p99);
        }
        else
        {
            printf(" | %s %6.0f f/s gap %-6" PRIu64 " late %-4" PRIu64 " p50 %7.1fus p99 %7.1fus", c->name,
                dt_s > 0 ? (double)frames / dt_s : 0, gap, late, p50, p99);
        }
        last[i] = now;
    }
    uint64_t failures = consumers[0].checksum_failures + consumers[1].checksum_failures;
    if (cfg->json)
    {
        printf("],\"checksum_failures\":%" PRIu64 "}\n", failures);
    }
    else
    {
        printf(" | checksum failures %" PRIu64 "\n", failures);
    }
    fflush(stdout);
}

typedef struct demo_producer
{
    const demo_config_t *config;
    const tp_client_context_t *client_context;
    demo_shared_t *shared;
    uint32_t frame_bytes;
    pthread_t thread;
    int started;
    int attached; /* set (release) once attached, or failed */
    int failed;
    char error[1024];
    uint64_t epoch;
} demo_producer_t;

/* The picture every frame starts from: eight vertical colour bars (grey levels with one channel). */
static void draw_bars(uint8_t *pattern, const demo_config_t *cfg)
{
    static const uint8_t bars[8][3] = { { 235, 235, 235 }, { 235, 235, 16 }, { 16, 235, 235 }, { 16, 235, 16 },
        { 235, 16, 235 }, { 235, 16, 16 }, { 16, 16, 235 }, { 16, 16, 16 } };
    for (uint32_t y = 0; y < cfg->height; y++)
    {
        for (uint32_t x = 0; x < cfg->width; x++)
        {
            const uint8_t *bar = bars[(uint64_t)x * 8 / cfg->width];
            uint8_t *px = pattern + ((size_t)y * cfg->width + x) * cfg->channels;
            for (uint32_t ch = 0; ch < cfg->channels; ch++)
            {
                px[ch] = cfg->channels >= 3 ? (ch < 3 ? bar[ch] : 255) : (uint8_t)((bar[0] + bar[1] + bar[2]) / 3);
            }
        }
    }
}

/* A frame: the bars, a white band 1/16 of the height moving down one band every 8 frames, the seq and CRC32C. */
static void draw_frame(uint8_t *out, const uint8_t *pattern, const demo_config_t *cfg, uint32_t frame_bytes,
    uint64_t seq)
{
    memcpy(out, pattern, frame_bytes);
    uint32_t band = cfg->height / 16 > 0 ? cfg->height / 16 : 1;
    uint32_t top = (uint32_t)((seq / 8 * band) % cfg->height);
    size_t row = (size_t)cfg->width * cfg->channels;
    for (uint32_t y = top; y < top + band && y < cfg->height; y++)
    {
        memset(out + y * row, 255, row);
    }
    tp_cli_frame_stamp(out, frame_bytes, seq);
}

/* Publish frames until told to stop, on the claim path: the frame is generated straight into the slot. */
static void *producer_main(void *arg)
{
    demo_producer_t *p = arg;
    const demo_config_t *cfg = p->config;
    tp_client_t *client = NULL;
    tp_producer_t *producer = NULL;
    if (tp_client_connect(&client, p->client_context) < 0 ||
        tp_producer_attach(&producer, client, DEMO_STREAM_ID, DEMO_ATTACH_TIMEOUT_NS) < 0)
    {
        snprintf(p->error, sizeof(p->error), "%s", tp_errmsg());
        p->failed = 1;
        tp_store_release_int(&p->attached, 1);
        tp_client_close(client);
        return NULL;
    }
    p->epoch = tp_producer_epoch(producer);
    uint8_t *pattern = malloc(p->frame_bytes);
    if (pattern != NULL)
    {
        draw_bars(pattern, cfg);
    }
    tp_store_release_int(&p->attached, 1);
    tp_tensor_desc_t tensor = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
        .dims = { (int32_t)cfg->height, (int32_t)cfg->width, (int32_t)cfg->channels } };
    int64_t period = cfg->rate_hz > 0 ? (int64_t)(1e9 / cfg->rate_hz) : 0;
    int64_t next_frame = tp_clock_monotonic_ns();
    uint64_t published = 0;
    while (!tp_load_relaxed_int(&p->shared->stop))
    {
        int64_t now = tp_clock_monotonic_ns();
        if (period > 0 && now < next_frame)
        {
            demo_sleep_ns(next_frame - now > 1000000 ? 1000000 : next_frame - now);
            continue;
        }
        next_frame += period;
        tp_claim_t claim;
        if (tp_producer_try_claim_by_size(producer, p->frame_bytes, &claim) == 0)
        {
            if (pattern != NULL)
            {
                draw_frame(claim.buffer, pattern, cfg, p->frame_bytes, claim.seq);
            }
            else
            {
                tp_cli_frame_fill(claim.buffer, p->frame_bytes, claim.seq);
            }
            if (tp_producer_commit(producer, &claim, p->frame_bytes, &tensor, 0, 0) >= 0)
            {
                published++;
                tp_store_release_u64(&p->shared->head, published);
                tp_fetch_add_relaxed_u64(&p->shared->produced_bytes, p->frame_bytes);
            }
        }
        if ((published & 63) == 0)
        {
            tp_producer_do_work(producer); /* keepalives; attaching again if the lease was lost */
        }
    }
    free(pattern);
    tp_producer_close(producer);
    tp_client_close(client);
    return NULL;
}

/* Wait until a thread has attached (or failed). */
static void demo_wait_attached(const int *flag)
{
    while (!tp_load_acquire_int(flag))
    {
        demo_sleep_ns(1000000);
    }
}

/* The reporting loop on the main thread: once a second until the time is up or Ctrl-C. */
static void demo_run(const demo_config_t *cfg, demo_shared_t *shared, demo_consumer_t *consumers)
{
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(cfg->seconds * 1e9);
    int64_t last_report = start;
    uint64_t last_seq = 0;
    uint64_t last_bytes = 0;
    demo_totals_t last[2];
    memset(last, 0, sizeof(last));
    while (!tp_cli_stop_requested())
    {
        int64_t now = tp_clock_monotonic_ns();
        int64_t next = last_report + TP_NS_PER_S;
        if (now >= end)
        {
            break;
        }
        if (now < next)
        {
            demo_sleep_ns((next < end ? next : end) - now > 20 * TP_NS_PER_MS ? 20 * TP_NS_PER_MS
                                                                               : (next < end ? next : end) - now);
            continue;
        }
        demo_request_windows(shared, consumers, 2);
        uint64_t seq = tp_load_acquire_u64(&shared->head);
        uint64_t bytes = tp_load_relaxed_u64(&shared->produced_bytes);
        now = tp_clock_monotonic_ns();
        demo_report(cfg, (double)(now - start) / 1e9, (double)(now - last_report) / 1e9, seq - last_seq,
            bytes - last_bytes, consumers, last, tp_load_relaxed_u64(&shared->report_request), 0);
        last_report = now;
        last_seq = seq;
        last_bytes = bytes;
    }
}

int tp_cmd_demo(int argc, char **argv)
{
    demo_config_t cfg;
    int parsed = demo_parse(argc, argv, &cfg);
    if (parsed != 0)
    {
        return parsed > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    uint32_t frame_bytes = cfg.width * cfg.height * cfg.channels;
    uint32_t stride = pow2_at_least(frame_bytes);
    tp_cli_embedded_t env;
    memset(&env, 0, sizeof(env));
    demo_shared_t shared;
    memset(&shared, 0, sizeof(shared));
    demo_consumer_t consumers[2];
    memset(consumers, 0, sizeof(consumers));
    demo_producer_t producer;
    memset(&producer, 0, sizeof(producer));
    tp_web_t *web = NULL;
    int status = TP_EXIT_FAILED;
    const uint16_t pool_ids[] = { 1 };
    if (tp_cli_embedded_open(&env, cfg.base_dir, "demo", DEMO_STREAM_ID, cfg.nslots, pool_ids, &stride, 1) < 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "demo", "%s", tp_errmsg());
        goto done;
    }
    tp_cli_install_stop_handlers();
    /* The producer first, so the consumers attach to its epoch. */
    producer.config = &cfg;
    producer.client_context = env.client_context;
    producer.shared = &shared;
    producer.frame_bytes = frame_bytes;
    if (pthread_create(&producer.thread, NULL, producer_main, &producer) != 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "demo", "cannot start the producer thread");
        goto done;
    }
    producer.started = 1;
    demo_wait_attached(&producer.attached);
    if (producer.failed)
    {
        tp_cli_fail(TP_EXIT_FAILED, "demo", "the producer could not attach: %s", producer.error);
        goto done;
    }
    if (!cfg.json)
    {
        printf("tp demo: %ux%ux%u uint8 frames (%.2f MiB) in %u slots, pool stride %u bytes, %s\n"
               "driver: embedded, bus %s, regions %s/%u/%" PRIu64 "\n"
               "consumers: fast (zero-copy: verifies each frame in place, then re-checks the seqlock),\n"
               "           slow (copy-out: copies, re-checks, then spends %.1f ms on its private copy)\n",
            cfg.width, cfg.height, cfg.channels, frame_bytes / 1048576.0, cfg.nslots, stride,
            cfg.rate_hz > 0 ? "rate-limited" : "full speed", env.bus_dir, env.namespace_dir, DEMO_STREAM_ID,
            producer.epoch, cfg.slow_ms);
    }
    const char *names[2] = { "fast", "slow" };
    for (int i = 0; i < 2; i++)
    {
        demo_consumer_t *c = &consumers[i];
        c->name = names[i];
        c->shared = &shared;
        c->config = &cfg;
        c->client_context = env.client_context;
        c->slow_ms = i == 0 ? 0 : cfg.slow_ms;
        if (i == 1 && tp_alloc((void **)&c->copy_buffer, stride) < 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "%s", tp_errmsg());
            goto done;
        }
        c->copy_capacity = stride;
        tp_histogram_reset(&c->window);
        tp_histogram_reset(&c->total);
        if (pthread_create(&c->thread, NULL, consumer_main, c) != 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "cannot start consumer thread");
            goto done;
        }
        c->started = 1;
        demo_wait_attached(&c->attached);
    }
    if (cfg.web_listen[0] != '\0')
    {
        tp_web_options_t wo = { .listen = cfg.web_listen, .bus_dir = env.bus_dir, .base_dirs = cfg.base_dir };
        if (tp_web_start(&web, &wo) == 0)
        {
            printf("dashboard: open %s in a browser to watch the frames (tp web, until the demo ends)\n",
                tp_web_url(web));
        }
        else
        {
            fprintf(stderr, "tp demo: no dashboard (the demo runs without it): %s\n", tp_errmsg());
        }
        fflush(stdout);
    }
    int64_t start = tp_clock_monotonic_ns();
    uint64_t head_at_start = tp_load_acquire_u64(&shared.head);
    uint64_t bytes_at_start = tp_load_relaxed_u64(&shared.produced_bytes);
    demo_run(&cfg, &shared, consumers);
    tp_store_relaxed_int(&shared.stop, 1);
    pthread_join(producer.thread, NULL);
    producer.started = 0;
    for (int i = 0; i < 2; i++)
    {
        pthread_join(consumers[i].thread, NULL);
        consumers[i].started = 0;
    }
    double elapsed = (double)(tp_clock_monotonic_ns() - start) / 1e9;
    demo_totals_t none[2];
    memset(none, 0, sizeof(none));
    demo_report(&cfg, elapsed, elapsed, tp_load_relaxed_u64(&shared.head) - head_at_start,
        tp_load_relaxed_u64(&shared.produced_bytes) - bytes_at_start, consumers, none, 0, 1);
    status = TP_EXIT_OK;
    for (int i = 0; i < 2; i++)
    {
        if (consumers[i].map_failed)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "consumer %s failed: %s", consumers[i].name, consumers[i].map_error);
            status = TP_EXIT_FAILED;
        }
        if (consumers[i].checksum_failures != 0)
        {
            status = TP_EXIT_FAILED;
        }
    }
done:
    tp_web_stop(web);
    tp_store_relaxed_int(&shared.stop, 1);
    if (producer.started)
    {
        pthread_join(producer.thread, NULL);
    }
    for (int i = 0; i < 2; i++)
    {
        if (consumers[i].started)
        {
            pthread_join(consumers[i].thread, NULL);
        }
        tp_free(consumers[i].copy_buffer);
    }
    tp_cli_embedded_close(&env);
    return status;
}
