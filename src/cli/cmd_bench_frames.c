/*
 * `tp bench frames`: frames through the client API against this machine's own memcpy, in one run.
 *   memcpy       warm (the same destination), cold (cycling through a pool-sized destination, which a large L3
 *                keeps) and into 256 MiB (every line from memory), per size
 *   copy path    tp_producer_offer_frame -> tp_consumer_poll callbacks: frames/s and GiB/s, ratio to cold memcpy
 *   claim path   try_claim + commit of an unwritten slot -> callbacks: frames/s (the per-frame overhead)
 *   latency      one 64 B frame at a time: commit -> callback with a busy-spinning consumer, p50/p99/p99.9
 * An embedded driver serves the stream; the producer runs on CPU 0, the consumer on CPU 1 with its own client: a
 * thread of this process, or with --processes a process of its own (this program again, run with the hidden
 * --consumer-process), as the peers' consumers are. Their shared counters live in a small file of the embedded
 * bus directory, mapped by both. Every figure is the median of --repeats runs, with min and max.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "cli/tp_cli_embedded.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_histogram.h"

#define FB_STREAM 10000
#define FB_SLOTS 16
#define FB_SIZES 4
#define FB_TIMEOUT_NS (5 * TP_NS_PER_S)
#define FB_DRAM_BYTES (256u << 20)

static const uint32_t fb_sizes[FB_SIZES] = { 64, 65536, 655360, 4194304 };
static const uint32_t fb_strides[FB_SIZES] = { 64, 65536, 1048576, 4194304 };
static const uint16_t fb_pool_ids[FB_SIZES] = { 1, 2, 3, 4 };

/* Shared by the producer and the consumer (thread or process): a mapping of a file, so no pointers. */
typedef struct fb_consumer
{
    int stop;
    int ready; /* 1 attached, -1 failed */
    uint8_t pad0[120];
    uint64_t received;
    uint64_t bytes;
    uint8_t pad1[112];
    int measure_latency;
    tp_histogram_t latency;
} fb_consumer_t;

static void fb_on_frame(void *clientd, const tp_frame_t *f)
{
    fb_consumer_t *c = clientd;
    if (tp_load_relaxed_int(&c->measure_latency))
    {
        uint64_t now = (uint64_t)tp_clock_monotonic_ns();
        tp_histogram_record(&c->latency, now > f->timestamp_ns ? now - f->timestamp_ns : 0);
    }
    tp_store_release_u64(&c->bytes, c->bytes + f->payload_length);
    tp_store_release_u64(&c->received, c->received + 1);
}

/* What one consumer (thread or process) runs with: the shared counters and its own client context. */
typedef struct fb_consumer_run
{
    fb_consumer_t *c;
    const tp_client_context_t *client_context;
} fb_consumer_run_t;

static void *fb_consumer_main(void *arg)
{
    const fb_consumer_run_t *run = arg;
    fb_consumer_t *c = run->c;
    tp_bench_pin(1);
    tp_client_t *client = NULL;
    tp_consumer_t *consumer = NULL;
    if (tp_client_connect(&client, run->client_context) < 0 ||
        tp_consumer_attach(&consumer, client, FB_STREAM, FB_TIMEOUT_NS) < 0)
    {
        fprintf(stderr, "tp bench frames: consumer: %s\n", tp_errmsg());
        tp_client_close(client);
        tp_store_release_int(&c->ready, -1);
        return NULL;
    }
    tp_store_release_int(&c->ready, 1);
    while (!tp_load_relaxed_int(&c->stop))
    {
        tp_consumer_poll(consumer, fb_on_frame, c, 64); /* busy-spin */
    }
    tp_consumer_close(consumer);
    tp_client_close(client);
    return NULL;
}

/* The shared counters: a file of sizeof(fb_consumer_t) bytes mapped shared (created zeroed when create). */
static fb_consumer_t *fb_map_shared(const char *path, bool create)
{
    int fd = open(path, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
    if (fd < 0 || (create && ftruncate(fd, sizeof(fb_consumer_t)) < 0))
    {
        if (fd >= 0)
        {
            close(fd);
        }
        return NULL;
    }
    void *p = mmap(NULL, sizeof(fb_consumer_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

/* `tp bench frames --consumer-process BUS_DIR BASE_DIR SHARED_FILE`: the consumer side in a process of its own,
 * started by the bench below, ending when the bench says stop (or dies). */
static int fb_consumer_process(char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fb_consumer_t *c = fb_map_shared(argv[3], false);
    tp_client_context_t *ctx = NULL;
    if (c == NULL || tp_client_context_init(&ctx) < 0 || tp_client_context_set(ctx, "client.bus_dir", argv[1]) < 0 ||
        tp_client_context_set(ctx, "client.allowed_base_dirs", argv[2]) < 0)
    {
        fprintf(stderr, "tp bench frames: consumer process: %s\n",
            c == NULL ? "cannot map the shared file" : tp_errmsg());
        if (c != NULL)
        {
            tp_store_release_int(&c->ready, -1);
        }
        tp_client_context_close(ctx);
        return TP_EXIT_FAILED;
    }
    fb_consumer_run_t run = { .c = c, .client_context = ctx };
    fb_consumer_main(&run);
    tp_client_context_close(ctx);
    munmap(c, sizeof(*c));
    return TP_EXIT_OK;
}

extern char **environ;

/* Start the consumer process; its pid, or -1. */
static pid_t fb_spawn_consumer(const tp_cli_embedded_t *env, const char *base, const char *shared_path)
{
    char self[TP_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
    {
        return -1;
    }
    self[n] = '\0';
    char *argv[] = { self, "bench", "frames", "--consumer-process", (char *)env->bus_dir, (char *)base,
        (char *)shared_path, NULL };
    pid_t pid = -1;
    return posix_spawn(&pid, self, NULL, NULL, argv, environ) == 0 ? pid : -1;
}

/* GiB/s of memcpy of size bytes for `seconds`, cycling through `slots` destinations: 1 (warm), FB_SLOTS (a ring's
 * worth, which stays in a large L3), or FB_DRAM_BYTES worth (truly cold: every line comes from memory). */
static double fb_memcpy(const uint8_t *src, uint8_t *dst, uint32_t size, uint64_t slots, double seconds)
{
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    uint64_t copies = 0;
    int64_t now;
    do
    {
        for (int i = 0; i < 64; i++)
        {
            memcpy(dst + (copies % slots) * (uint64_t)size, src, size);
            copies++;
        }
        __asm__ volatile("" ::: "memory");
        now = tp_clock_monotonic_ns();
    } while (now < end);
    return (double)copies * size / ((double)(now - start) / 1e9) / (1u << 30);
}

/* Frames/s delivered to the consumer while the producer offers (or claims) size-byte frames for `seconds`. */
static double fb_throughput(tp_producer_t *p, fb_consumer_t *c, const uint8_t *src, uint32_t size, bool claim,
    double seconds, double *gib_s)
{
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 1,
        .dims = { (int32_t)size } };
    uint64_t received0 = tp_load_acquire_u64(&c->received);
    uint64_t bytes0 = tp_load_acquire_u64(&c->bytes);
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    /* Look at the clock (and do the lease's housekeeping) every 256 cheap frames, after every large copy. */
    uint64_t check_mask = claim || size < 65536 ? 255 : 0;
    uint64_t n = 0;
    while ((n & check_mask) != 0 || tp_clock_monotonic_ns() < end)
    {
        if (claim)
        {
            tp_claim_t cl;
            if (tp_producer_try_claim_by_size(p, size, &cl) == 0)
            {
                tp_producer_commit(p, &cl, size, &t, 0, 0);
            }
        }
        else
        {
            tp_producer_offer_frame(p, src, size, &t, 0, 0);
        }
        if ((++n & check_mask) == 0)
        {
            tp_producer_do_work(p); /* keepalives */
        }
    }
    /* Let the consumer catch up with what is left in the ring (at most FB_SLOTS frames). */
    int64_t settle = tp_clock_monotonic_ns() + 5 * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < settle)
    {
        sched_yield();
    }
    double elapsed = (double)(tp_clock_monotonic_ns() - start) / 1e9;
    uint64_t received = tp_load_acquire_u64(&c->received) - received0;
    *gib_s = (double)(tp_load_acquire_u64(&c->bytes) - bytes0) / elapsed / (1u << 30);
    return (double)received / elapsed;
}

/* One 64 B frame at a time, waiting for its callback before the next. */
static int fb_latency(tp_producer_t *p, fb_consumer_t *c, const uint8_t *src, int frames)
{
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 1, .dims = { 64 } };
    tp_histogram_reset(&c->latency);
    tp_store_release_int(&c->measure_latency, 1);
    for (int i = 0; i < frames; i++)
    {
        uint64_t want = tp_load_acquire_u64(&c->received) + 1;
        int64_t deadline = tp_clock_monotonic_ns() + FB_TIMEOUT_NS;
        while (tp_producer_offer_frame(p, src, 64, &t, 0, 0) < 0)
        {
            /* Only a lost lease makes an offer fail here: attach again and carry on. */
            if (tp_clock_monotonic_ns() > deadline)
            {
                return -1;
            }
            tp_producer_do_work(p);
        }
        deadline = tp_clock_monotonic_ns() + TP_NS_PER_S;
        while (tp_load_acquire_u64(&c->received) < want)
        {
            if (tp_clock_monotonic_ns() > deadline)
            {
                TP_SET_ERR(TP_E_TIMEOUT, "frame %d never reached the consumer", i);
                return -1;
            }
        }
        if ((i & 255) == 0)
        {
            tp_producer_do_work(p);
        }
    }
    tp_store_release_int(&c->measure_latency, 0);
    return 0;
}

static void bench_frames_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench frames [--seconds S] [--repeats N] [--latency-frames N] [--processes] [--json]\n\n"
        "Frames through the client API next to this machine's memcpy, for 64 B, 64 KiB, 640 KiB and 4 MiB:\n"
        "memcpy warm, cold (a destination cycling through a pool's worth of slots, which is what filling a\n"
        "ring costs) and into 256 MiB (truly cold: every line from memory), the copy path (offer_frame ->\n"
        "consumer callback: frames/s, GiB/s, ratio to cold memcpy), the claim path (claim + commit without\n"
        "writing: the per-frame overhead), and commit -> callback latency of single 64 B frames with a\n"
        "busy-spinning consumer. An embedded driver serves the stream; producer on CPU 0, consumer on CPU 1: a\n"
        "thread of this process, or with --processes a process of its own. Medians of the repeats with min..max.\n\n"
        "options: --seconds S per throughput run [0.3], --repeats N [3], --latency-frames N [20000],\n"
        "         --processes (the consumer in its own process), --json.\n\n"
        "exit status: 0 measured; 1 the driver or a client failed; 2 bad arguments.\n");
}

typedef struct fb_results
{
    double memcpy_warm[FB_SIZES][TP_BENCH_MAX_VALUES];
    double memcpy_cold[FB_SIZES][TP_BENCH_MAX_VALUES];
    double memcpy_dram[FB_SIZES][TP_BENCH_MAX_VALUES];
    double copy_fps[FB_SIZES][TP_BENCH_MAX_VALUES];
    double copy_gib[FB_SIZES][TP_BENCH_MAX_VALUES];
    double claim_fps[FB_SIZES][TP_BENCH_MAX_VALUES];
    double lat[3][TP_BENCH_MAX_VALUES];
} fb_results_t;

static void fb_print(const fb_results_t *r, int n, bool json, bool processes)
{
    tp_bench_stat_t st[6];
    tp_bench_stat_t dram;
    if (json)
    {
        printf("{\"repeats\":%d,\"consumer\":\"%s\",\"sizes\":[", n, processes ? "process" : "thread");
    }
    else
    {
        printf("%-8s %-13s %-13s %-13s %-30s %-7s %s\n", "size", "memcpy warm", "memcpy cold", "memcpy 256M",
            "copy path: frames/s, GiB/s", "/cold", "claim path: frames/s");
    }
    for (int s = 0; s < FB_SIZES; s++)
    {
        tp_bench_stats(r->memcpy_warm[s], n, &st[0]);
        tp_bench_stats(r->memcpy_cold[s], n, &st[1]);
        tp_bench_stats(r->memcpy_dram[s], n, &dram);
        tp_bench_stats(r->copy_fps[s], n, &st[2]);
        tp_bench_stats(r->copy_gib[s], n, &st[3]);
        tp_bench_stats(r->claim_fps[s], n, &st[4]);
        double ratio = st[1].median > 0 ? st[3].median / st[1].median : 0;
        if (json)
        {
            printf("%s{\"bytes\":%" PRIu32 ",\"memcpy_warm_gib_s\":%.2f,\"memcpy_cold_gib_s\":%.2f,"
                   "\"memcpy_dram_gib_s\":%.2f,\"copy_frames_per_s\":%.0f,\"copy_gib_s\":%.2f,"
                   "\"copy_to_cold_memcpy\":%.2f,\"claim_frames_per_s\":%.0f}",
                s > 0 ? "," : "", fb_sizes[s], st[0].median, st[1].median, dram.median, st[2].median, st[3].median,
                ratio, st[4].median);
            continue;
        }
        char size[16], warm[32], cold[32], cold_dram[32], copy[48], claim[40];
        snprintf(size, sizeof(size), "%" PRIu32 "%s", fb_sizes[s] >= 1024 ? fb_sizes[s] / 1024 : fb_sizes[s],
            fb_sizes[s] >= 1024 ? " KiB" : " B");
        snprintf(warm, sizeof(warm), "%.2f GiB/s", st[0].median);
        snprintf(cold, sizeof(cold), "%.2f GiB/s", st[1].median);
        snprintf(cold_dram, sizeof(cold_dram), "%.2f GiB/s", dram.median);
        snprintf(copy, sizeof(copy), "%.3g M [%.3g..%.3g] %.2f GiB/s", st[2].median / 1e6, st[2].min / 1e6,
            st[2].max / 1e6, st[3].median);
        snprintf(claim, sizeof(claim), "%.3g M [%.3g..%.3g]", st[4].median / 1e6, st[4].min / 1e6, st[4].max / 1e6);
        printf("%-8s %-13s %-13s %-13s %-30s %-7.2f %s\n", size, warm, cold, cold_dram, copy, ratio, claim);
    }
    tp_bench_stats(r->lat[0], n, &st[0]);
    tp_bench_stats(r->lat[1], n, &st[1]);
    tp_bench_stats(r->lat[2], n, &st[2]);
    if (json)
    {
        printf("],\"latency_us\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f}}\n", st[0].median, st[1].median,
            st[2].median);
    }
    else
    {
        printf("commit -> callback, 64 B, busy-spinning consumer: p50 %.2f us [%.2f..%.2f], p99 %.2f us, "
               "p99.9 %.2f us\n",
            st[0].median, st[0].min, st[0].max, st[1].median, st[2].median);
    }
}

int tp_bench_frames(int argc, char **argv)
{
    double seconds = 0.3;
    uint64_t repeats = 3;
    uint64_t latency_frames = 20000;
    bool json = false;
    bool processes = false;
    if (argc == 5 && strcmp(argv[1], "--consumer-process") == 0)
    {
        return fb_consumer_process(argv + 1);
    }
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            bench_frames_usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(a, "--json") == 0)
        {
            json = true;
        }
        else if (strcmp(a, "--processes") == 0)
        {
            processes = true;
        }
        else if (strcmp(a, "--seconds") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_double(argv[++i], 0.01, 60, &seconds) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench frames", "--seconds: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--repeats") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 1, TP_BENCH_MAX_VALUES, &repeats) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench frames", "--repeats: %s", tp_errmsg());
            }
        }
        else if (strcmp(a, "--latency-frames") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 10, 10000000, &latency_frames) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "bench frames", "--latency-frames: %s", tp_errmsg());
            }
        }
        else
        {
            tp_cli_fail(TP_EXIT_USAGE, "bench frames", "unknown option '%s'", a);
            bench_frames_usage(stderr);
            return TP_EXIT_USAGE;
        }
    }
    tp_cli_install_stop_handlers(); /* SIGINT/SIGTERM end the runs; the embedded driver then removes its files */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    tp_cli_embedded_t env;
    fb_consumer_t *c = NULL;
    char shared_path[TP_PATH_MAX + 64];
    pid_t child = -1;
    fb_results_t *r = calloc(1, sizeof(*r));
    uint8_t *src = malloc(fb_sizes[FB_SIZES - 1]);
    uint8_t *dst = malloc((size_t)fb_sizes[FB_SIZES - 1] * FB_SLOTS);
    uint8_t *dram = malloc(FB_DRAM_BYTES);
    tp_client_t *client = NULL;
    tp_producer_t *p = NULL;
    pthread_t thread;
    bool has_thread = false;
    int status = TP_EXIT_FAILED;
    memset(&env, 0, sizeof(env));
    if (r == NULL || src == NULL || dst == NULL || dram == NULL)
    {
        tp_cli_fail(TP_EXIT_FAILED, "bench frames", "out of memory");
        goto done;
    }
    memset(src, 0x5a, fb_sizes[FB_SIZES - 1]);
    memset(dst, 1, (size_t)fb_sizes[FB_SIZES - 1] * FB_SLOTS);
    memset(dram, 1, FB_DRAM_BYTES); /* faulted in now, not during the measurement (a zero fill may become calloc) */
    if (tp_cli_embedded_open(&env, base, "bench", FB_STREAM, FB_SLOTS, fb_pool_ids, fb_strides, FB_SIZES) < 0 ||
        tp_client_connect(&client, env.client_context) < 0 ||
        tp_producer_attach(&p, client, FB_STREAM, FB_TIMEOUT_NS) < 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "bench frames", "%s", tp_errmsg());
        goto done;
    }
    snprintf(shared_path, sizeof(shared_path), "%s/bench-frames-consumer", env.bus_dir);
    c = fb_map_shared(shared_path, true);
    fb_consumer_run_t run = { .c = c, .client_context = env.client_context };
    if (c == NULL)
    {
        tp_cli_fail(TP_EXIT_FAILED, "bench frames", "cannot create %s: %s", shared_path, strerror(errno));
        goto done;
    }
    if (processes)
    {
        child = fb_spawn_consumer(&env, base, shared_path);
    }
    else
    {
        has_thread = pthread_create(&thread, NULL, fb_consumer_main, &run) == 0;
    }
    if (child < 0 && !has_thread)
    {
        tp_cli_fail(TP_EXIT_FAILED, "bench frames", "cannot start the consumer %s", processes ? "process" : "thread");
        goto done;
    }
    for (int i = 0; i < 30000 && tp_load_acquire_int(&c->ready) == 0 && !tp_cli_stop_requested(); i++)
    {
        if (child > 0 && waitpid(child, NULL, WNOHANG) == child)
        {
            child = -1;
            break; /* it said why on stderr */
        }
        usleep(1000);
    }
    if (tp_load_acquire_int(&c->ready) <= 0)
    {
        tp_cli_fail(TP_EXIT_FAILED, "bench frames", "the consumer did not attach");
        goto done;
    }
    tp_bench_pin(0);
    if (!json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("consumer: %s\nrunning %" PRIu64 " interleaved repeats...\n",
            processes ? "a process of its own" : "a thread of this process", repeats);
        fflush(stdout);
    }
    int done_runs = 0;
    for (uint64_t rep = 0; rep < repeats && !tp_cli_stop_requested(); rep++)
    {
        for (int s = 0; s < FB_SIZES; s++)
        {
            r->memcpy_warm[s][rep] = fb_memcpy(src, dst, fb_sizes[s], 1, seconds / 3);
            r->memcpy_cold[s][rep] = fb_memcpy(src, dst, fb_sizes[s], FB_SLOTS, seconds / 3);
            r->memcpy_dram[s][rep] = fb_memcpy(src, dram, fb_sizes[s], FB_DRAM_BYTES / fb_sizes[s], seconds / 3);
            r->copy_fps[s][rep] = fb_throughput(p, c, src, fb_sizes[s], false, seconds, &r->copy_gib[s][rep]);
            double ignored;
            r->claim_fps[s][rep] = fb_throughput(p, c, src, fb_sizes[s], true, seconds, &ignored);
        }
        if (fb_latency(p, c, src, (int)latency_frames) < 0)
        {
            tp_cli_fail(TP_EXIT_FAILED, "bench frames", "%s", tp_errmsg());
            goto done;
        }
        r->lat[0][rep] = (double)tp_histogram_percentile(&c->latency, 50) / 1e3;
        r->lat[1][rep] = (double)tp_histogram_percentile(&c->latency, 99) / 1e3;
        r->lat[2][rep] = (double)tp_histogram_percentile(&c->latency, 99.9) / 1e3;
        done_runs++;
    }
    if (done_runs > 0)
    {
        fb_print(r, done_runs, json, processes);
        status = TP_EXIT_OK;
    }
done:
    if (c != NULL)
    {
        tp_store_relaxed_int(&c->stop, 1);
    }
    if (has_thread)
    {
        pthread_join(thread, NULL);
    }
    for (int i = 0; child > 0 && i < 500 && waitpid(child, NULL, WNOHANG) != child; i++)
    {
        usleep(10000);
        if (i == 499)
        {
            kill(child, SIGKILL);
            waitpid(child, NULL, 0);
        }
    }
    if (c != NULL)
    {
        munmap(c, sizeof(*c));
    }
    tp_producer_close(p);
    tp_client_close(client);
    tp_cli_embedded_close(&env);
    free(r);
    free(src);
    free(dst);
    free(dram);
    return status;
}
