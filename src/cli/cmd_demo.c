/*
 * `tp demo`: a producer and two consumers exchanging camera-sized frames through real SHM regions.
 *
 * What is real: the regions are files in the canonical layout, created with superblocks; the consumers map them
 * through the region-URI parser and every containment and superblock check; the producer follows the seqlock
 * (in-progress store, payload, header, committed store) and the consumers accept a frame only when the seqlock
 * was stable across their read and the embedded TensorHeader is valid. Every accepted frame's CRC32C is
 * verified. What is not here yet: the driver and the bus. Until they land, the "descriptor" is the producer's
 * published sequence counter shared between the threads of this one process.
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
#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_crc32c.h"
#include "core/tp_err.h"
#include "core/tp_histogram.h"
#include "shm/tp_header_ring.h"
#include "core/tp_fs.h"
#include "shm/tp_shm_layout.h"
#include "wire/tp_tensor.h"

#define DEMO_STREAM_ID 10000
#define DEMO_EPOCH 1
#define DEMO_POOL_ID 1

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
} demo_config_t;

typedef struct demo_shared
{
    uint64_t head; /* next sequence the producer will publish; seqs < head are "descriptors" */
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
    tp_shm_allowed_dirs_t *allowed;
    tp_region_uri_t header_uri;
    tp_region_uri_t pool_uri;
    tp_superblock_t header_expect;
    tp_superblock_t pool_expect;
    double slow_ms;
    uint8_t *copy_buffer; /* the slow consumer copies each payload out before processing it */
    pthread_t thread;
    int started;
    int map_failed;
    char map_error[512];
    /* counters, written by the consumer thread only, read relaxed by the reporter */
    uint64_t frames;
    uint64_t bytes;
    uint64_t drops_gap;
    uint64_t drops_late;
    uint64_t invalid;
    uint64_t checksum_failures;
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
        "               [--slow-ms MS] [--base-dir DIR] [--json]\n\n"
        "Create a header ring and a payload pool in shared memory (canonical layout under DIR), run a producer\n"
        "of synthetic camera frames and two consumers: `fast` reads every frame in place (zero copy) and\n"
        "re-checks the seqlock; `slow` copies each frame out, re-checks, then spends --slow-ms on its copy.\n"
        "Every accepted frame's CRC32C is verified. Once a second it prints frames/s, GiB/s, drops by kind\n"
        "(gap: overwritten before it was read; late: changed while it was read), latency from the commit to\n"
        "the consumer seeing the committed slot (p50/p99), and checksum failures, which must stay 0.\n\n"
        "This demo runs inside one process: the driver and the message bus are not part of it yet.\n\n"
        "options (defaults in brackets):\n"
        "  --seconds S     run time [10]; Ctrl-C stops early\n"
        "  --width W, --height H, --channels C   frame shape, uint8 [1280x720x3]\n"
        "  --slots N       ring slots, a power of two [16]\n"
        "  --rate HZ       frames per second, 0 = as fast as possible [0]\n"
        "  --slow-ms MS    processing time of the slow consumer [5]\n"
        "  --base-dir DIR  where the regions go [/dev/shm]\n"
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

/* Payload: bytes 0..7 the sequence, then a fill byte, and the CRC32C of everything before it in the last 4. */
static void demo_fill(uint8_t *payload, uint32_t length, uint64_t seq)
{
    memset(payload + 8, (int)(seq * 131u + 7u) & 0xFF, length - 12);
    memcpy(payload, &seq, 8);
    uint32_t crc = tp_crc32c(0, payload, length - 4);
    memcpy(payload + length - 4, &crc, 4);
}

static int demo_verify(const uint8_t *payload, uint32_t length, uint64_t seq)
{
    uint64_t stored_seq;
    uint32_t stored_crc;
    memcpy(&stored_seq, payload, 8);
    memcpy(&stored_crc, payload + length - 4, 4);
    return stored_seq == seq && tp_crc32c(0, payload, length - 4) == stored_crc;
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

static void consumer_read_frame(demo_consumer_t *c, uint8_t *ring, uint8_t *pool, uint64_t seq, uint32_t stride)
{
    uint32_t mask = c->config->nslots - 1;
    uint32_t index = (uint32_t)(seq & mask);
    const uint8_t *slot = tp_header_slot_at(ring, index);
    tp_slot_fields_t fields;
    tp_tensor_desc_t tensor;
    uint64_t seq_commit = 0;
    tp_slot_status_t st = tp_slot_snapshot(slot, seq, &fields, &tensor, &seq_commit);
    uint64_t seen_ns = (uint64_t)tp_clock_monotonic_ns();
    if (st == TP_SLOT_SEQ_MISMATCH && (tp_slot_read_begin(slot) >> 1) > seq)
    {
        tp_store_relaxed_u64(&c->drops_gap, c->drops_gap + 1); /* overwritten before we got to it */
        return;
    }
    if (st != TP_SLOT_OK)
    {
        if (st == TP_SLOT_INVALID_HEADER)
        {
            tp_store_relaxed_u64(&c->invalid, c->invalid + 1);
        }
        else
        {
            tp_store_relaxed_u64(&c->drops_late, c->drops_late + 1);
        }
        return;
    }
    if (fields.pool_id != DEMO_POOL_ID || !tp_slot_payload_is_valid(&fields, index, c->pool_expect.nslots, stride) ||
        fields.values_len_bytes < 12)
    {
        tp_store_relaxed_u64(&c->invalid, c->invalid + 1);
        return;
    }
    const uint8_t *payload = tp_pool_slot_at(pool, index, stride);
    int ok;
    if (c->copy_buffer != NULL)
    {
        /* Copy-out path for slow processing: copy, re-check the seqlock, then take all the time needed on the
         * private copy; the producer can no longer change it. */
        memcpy(c->copy_buffer, payload, fields.values_len_bytes);
        if (!tp_slot_read_still(slot, seq_commit))
        {
            tp_store_relaxed_u64(&c->drops_late, c->drops_late + 1);
            return;
        }
        ok = demo_verify(c->copy_buffer, fields.values_len_bytes, seq);
        demo_sleep_ns((int64_t)(c->slow_ms * 1e6)); /* "processing" */
    }
    else
    {
        /* Zero-copy path: read in place, then re-check; only then is what was read known good (wire spec 8.3). */
        ok = demo_verify(payload, fields.values_len_bytes, seq);
        if (!tp_slot_read_still(slot, seq_commit))
        {
            tp_store_relaxed_u64(&c->drops_late, c->drops_late + 1);
            return;
        }
    }
    if (!ok)
    {
        tp_store_relaxed_u64(&c->checksum_failures, c->checksum_failures + 1);
        return;
    }
    tp_histogram_record(&c->window, seen_ns > fields.timestamp_ns ? seen_ns - fields.timestamp_ns : 0);
    tp_store_relaxed_u64(&c->frames, c->frames + 1);
    tp_store_relaxed_u64(&c->bytes, c->bytes + fields.values_len_bytes);
}

static void *consumer_main(void *arg)
{
    demo_consumer_t *c = arg;
    tp_shm_region_t ring;
    tp_shm_region_t pool;
    if (tp_shm_region_map(&ring, c->allowed, &c->header_uri, &c->header_expect, false) < 0 ||
        tp_shm_region_map(&pool, c->allowed, &c->pool_uri, &c->pool_expect, false) < 0)
    {
        snprintf(c->map_error, sizeof(c->map_error), "%s", tp_errmsg());
        c->map_failed = 1;
        tp_shm_region_close(&ring);
        return NULL;
    }
    uint32_t nslots = c->config->nslots;
    uint64_t cursor = tp_load_acquire_u64(&c->shared->head);
    while (!tp_load_relaxed_int(&c->shared->stop))
    {
        uint64_t head = tp_load_acquire_u64(&c->shared->head);
        if (cursor >= head)
        {
            tp_cpu_relax();
        }
        else
        {
            if (head - cursor > nslots)
            {
                /* Resync: everything older than one ring is certainly overwritten (wire spec 15.4). */
                uint64_t skip = head - cursor - 1;
                tp_store_relaxed_u64(&c->drops_gap, c->drops_gap + skip);
                cursor = head - 1;
            }
            consumer_read_frame(c, ring.base, pool.base, cursor, c->pool_expect.stride_bytes);
            cursor++;
        }
        uint64_t request = tp_load_acquire_u64(&c->shared->report_request);
        if (request != c->answered)
        {
            consumer_answer_report(c, request);
        }
    }
    tp_histogram_merge(&c->total, &c->window);
    tp_shm_region_close(&pool);
    tp_shm_region_close(&ring);
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

typedef struct demo_regions
{
    char epoch_dir[TP_PATH_MAX];
    char namespace_dir[TP_PATH_MAX];
    char header_path[TP_PATH_MAX];
    char pool_path[TP_PATH_MAX];
    tp_shm_region_t ring;
    tp_shm_region_t pool;
    tp_superblock_t header_sb;
    tp_superblock_t pool_sb;
} demo_regions_t;

static int demo_create_regions(const demo_config_t *cfg, uint32_t stride, demo_regions_t *r)
{
    char ns[64];
    snprintf(ns, sizeof(ns), "demo-%d", (int)getpid());
    char stream_dir[TP_PATH_MAX];
    if (tp_shm_layout_epoch_dir(r->epoch_dir, sizeof(r->epoch_dir), cfg->base_dir, ns, DEMO_STREAM_ID, DEMO_EPOCH) <
            0 ||
        tp_shm_layout_stream_dir(stream_dir, sizeof(stream_dir), cfg->base_dir, ns, DEMO_STREAM_ID) < 0)
    {
        return -1;
    }
    /* The namespace directory is the parent of the stream directory; the demo removes it at the end. */
    snprintf(r->namespace_dir, sizeof(r->namespace_dir), "%s", stream_dir);
    *strrchr(r->namespace_dir, '/') = '\0';
    if (tp_fs_mkdirs(cfg->base_dir, r->epoch_dir, 0700) < 0 ||
        tp_shm_layout_header_path(r->header_path, sizeof(r->header_path), r->epoch_dir) < 0 ||
        tp_shm_layout_pool_path(r->pool_path, sizeof(r->pool_path), r->epoch_dir, DEMO_POOL_ID) < 0)
    {
        return -1;
    }
    tp_shm_create_opts_t opts = { .file_mode = 0600, .prefault = true };
    r->header_sb = (tp_superblock_t){ .layout_version = TP_LAYOUT_VERSION, .epoch = DEMO_EPOCH,
        .stream_id = DEMO_STREAM_ID, .region_type = TP_REGION_HEADER_RING, .pool_id = 0, .nslots = cfg->nslots,
        .slot_bytes = TP_HEADER_SLOT_BYTES, .stride_bytes = 0 };
    r->pool_sb = (tp_superblock_t){ .layout_version = TP_LAYOUT_VERSION, .epoch = DEMO_EPOCH,
        .stream_id = DEMO_STREAM_ID, .region_type = TP_REGION_PAYLOAD_POOL, .pool_id = DEMO_POOL_ID,
        .nslots = cfg->nslots, .slot_bytes = stride, .stride_bytes = stride };
    if (tp_shm_region_create(&r->ring, r->header_path, &r->header_sb, &opts) < 0 ||
        tp_shm_region_create(&r->pool, r->pool_path, &r->pool_sb, &opts) < 0)
    {
        return -1;
    }
    r->header_sb.magic = TP_SUPERBLOCK_MAGIC;
    r->pool_sb.magic = TP_SUPERBLOCK_MAGIC;
    return 0;
}

typedef struct demo_producer
{
    const demo_config_t *config;
    demo_regions_t *regions;
    demo_shared_t *shared;
    uint32_t frame_bytes;
    pthread_t thread;
    int started;
} demo_producer_t;

/* Publish frames until told to stop: the seqlock order of wire spec 8.3 / 15.18. */
static void *producer_main(void *arg)
{
    demo_producer_t *p = arg;
    const demo_config_t *cfg = p->config;
    demo_regions_t *r = p->regions;
    tp_tensor_desc_t tensor = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
        .dims = { (int32_t)cfg->height, (int32_t)cfg->width, (int32_t)cfg->channels } };
    uint8_t tensor_header[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(tensor_header, &tensor);
    uint32_t mask = cfg->nslots - 1;
    int64_t period = cfg->rate_hz > 0 ? (int64_t)(1e9 / cfg->rate_hz) : 0;
    int64_t next_frame = tp_clock_monotonic_ns();
    uint64_t seq = 0;
    while (!tp_load_relaxed_int(&p->shared->stop))
    {
        int64_t now = tp_clock_monotonic_ns();
        if (period > 0 && now < next_frame)
        {
            demo_sleep_ns(next_frame - now > 1000000 ? 1000000 : next_frame - now);
            continue;
        }
        next_frame += period;
        uint32_t index = (uint32_t)(seq & mask);
        uint8_t *slot = tp_header_slot_at(r->ring.base, index);
        tp_slot_begin_write(slot, seq);
        demo_fill(tp_pool_slot_at(r->pool.base, index, r->pool_sb.stride_bytes), p->frame_bytes, seq);
        tp_slot_fields_t fields = { .values_len_bytes = p->frame_bytes, .payload_slot = index,
            .pool_id = DEMO_POOL_ID, .timestamp_ns = (uint64_t)tp_clock_monotonic_ns() };
        tp_slot_write_header(slot, &fields, tensor_header);
        tp_slot_commit(slot, seq);
        seq++;
        tp_store_release_u64(&p->shared->head, seq); /* the "descriptor"; pairs with the consumers' acquire */
        tp_fetch_add_relaxed_u64(&p->shared->produced_bytes, p->frame_bytes);
        if ((seq & 63) == 0)
        {
            tp_superblock_set_activity(r->ring.base, (uint64_t)tp_clock_monotonic_ns());
        }
    }
    return NULL;
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
    demo_regions_t regions;
    memset(&regions, 0, sizeof(regions));
    demo_shared_t shared;
    memset(&shared, 0, sizeof(shared));
    demo_consumer_t consumers[2];
    memset(consumers, 0, sizeof(consumers));
    demo_producer_t producer;
    memset(&producer, 0, sizeof(producer));
    tp_shm_allowed_dirs_t allowed;
    memset(&allowed, 0, sizeof(allowed));
    int status = TP_EXIT_FAILED;
    const char *base = cfg.base_dir;
    if (demo_create_regions(&cfg, stride, &regions) < 0 || tp_shm_allowed_dirs_init(&allowed, &base, 1) < 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "demo", "%s", tp_errmsg());
        goto done;
    }
    if (!cfg.json)
    {
        printf("tp demo: %ux%ux%u uint8 frames (%.2f MiB) in %u slots, pool stride %u bytes, %s\n"
               "regions: %s\n"
               "consumers: fast (zero-copy: verifies each frame in place, then re-checks the seqlock),\n"
               "           slow (copy-out: copies, re-checks, then spends %.1f ms on its private copy)\n",
            cfg.width, cfg.height, cfg.channels, frame_bytes / 1048576.0, cfg.nslots, stride,
            cfg.rate_hz > 0 ? "rate-limited" : "full speed", regions.epoch_dir, cfg.slow_ms);
    }
    tp_cli_install_stop_handlers();
    const char *names[2] = { "fast", "slow" };
    for (int i = 0; i < 2; i++)
    {
        demo_consumer_t *c = &consumers[i];
        c->name = names[i];
        c->shared = &shared;
        c->config = &cfg;
        c->allowed = &allowed;
        c->slow_ms = i == 0 ? 0 : cfg.slow_ms;
        if (i == 1 && tp_alloc((void **)&c->copy_buffer, stride) < 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "%s", tp_errmsg());
            goto done;
        }
        c->header_expect = regions.header_sb;
        c->pool_expect = regions.pool_sb;
        tp_histogram_reset(&c->window);
        tp_histogram_reset(&c->total);
        char uri[TP_PATH_MAX + 64];
        if (tp_region_uri_format(uri, sizeof(uri), regions.header_path, false) < 0 ||
            tp_region_uri_parse(&c->header_uri, uri, strlen(uri)) < 0 ||
            tp_region_uri_format(uri, sizeof(uri), regions.pool_path, false) < 0 ||
            tp_region_uri_parse(&c->pool_uri, uri, strlen(uri)) < 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "%s", tp_errmsg());
            goto done;
        }
        if (pthread_create(&c->thread, NULL, consumer_main, c) != 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "cannot start consumer thread");
            goto done;
        }
        c->started = 1;
    }
    producer.config = &cfg;
    producer.regions = &regions;
    producer.shared = &shared;
    producer.frame_bytes = frame_bytes;
    int64_t start = tp_clock_monotonic_ns();
    if (pthread_create(&producer.thread, NULL, producer_main, &producer) != 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "demo", "cannot start the producer thread");
        goto done;
    }
    producer.started = 1;
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
    demo_report(&cfg, elapsed, elapsed, tp_load_relaxed_u64(&shared.head), tp_load_relaxed_u64(&shared.produced_bytes),
        consumers, none, 0, 1);
    status = TP_EXIT_OK;
    for (int i = 0; i < 2; i++)
    {
        if (consumers[i].map_failed)
        {
            tp_cli_fail(TP_EXIT_FAILED, "demo", "consumer %s could not map the regions: %s", consumers[i].name,
                consumers[i].map_error);
            status = TP_EXIT_FAILED;
        }
        if (consumers[i].checksum_failures != 0)
        {
            status = TP_EXIT_FAILED;
        }
    }
done:
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
    }
    for (int i = 0; i < 2; i++)
    {
        tp_free(consumers[i].copy_buffer);
    }
    tp_shm_allowed_dirs_fini(&allowed);
    tp_shm_region_close(&regions.ring);
    tp_shm_region_close(&regions.pool);
    if (regions.namespace_dir[0] != '\0')
    {
        tp_fs_remove_tree(regions.namespace_dir);
    }
    return status;
}
