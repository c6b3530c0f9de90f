/*
 * `tp bench bus`: the bus measured against itself on this machine, in one run.
 *   throughput  1 or 2 publisher processes (CPU 0) -> 1 subscriber process (CPU 1), 32 B and 256 B messages, on
 *               a 64 MiB term (Aeron's default for IPC, so that `tp bench --peers` compares like with like: a ring
 *               the subscriber's caches still hold makes every line the publisher writes come back from the other
 *               core first, which with vCPUs far apart halves the rate at 16 MiB and quarters it at 4 MiB)
 *   ping-pong   round trip between two processes, busy-spin and futex-parked, p50/p99/p99.9
 *   idle        CPU time of a subscriber parked on an idle stream
 * Every figure is the median of --repeats runs (with min and max); configurations are interleaved so the
 * machine's changing vCPU placement spreads over all of them.
 */
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_histogram.h"
#include "tensorpool/tp_agent.h"
#include "tensorpool/tp_bus.h"

#define BENCH_STREAM_A 31001
#define BENCH_STREAM_B 31002
#define BENCH_MAX_REPEATS 21

typedef struct bench_shared
{
    int stop;
    uint8_t pad0[124];
    int subscribed;
    uint8_t pad1[124];
    int measuring; /* the subscriber's measurement window is open: publishers count their accepted offers */
    uint8_t pad2[124];
    uint64_t offered; /* offers the publishers' bus accepted during the window, all publishers together */
    uint64_t received;
    uint64_t lost;
    int64_t elapsed_ns;
    tp_histogram_t rtt;
    double cpu_ms;
} bench_shared_t;

static tp_bus_t *bench_bus(const char *dir)
{
    tp_bus_t *bus = NULL;
    if (tp_bus_init(&bus, dir) < 0)
    {
        fprintf(stderr, "tp bench: %s\n", tp_errmsg());
        _exit(1);
    }
    return bus;
}

static void on_count(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)buffer;
    (void)length;
    (void)header;
    (*(uint64_t *)clientd)++;
}

/* ---- throughput ---- */

static void throughput_publisher(const char *dir, bench_shared_t *sh, size_t size)
{
    tp_bench_pin(0);
    tp_bus_t *bus = bench_bus(dir);
    tp_bus_publication_t *pub;
    if (tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=64m", BENCH_STREAM_A, false) < 0)
    {
        _exit(1);
    }
    uint8_t msg[256];
    memset(msg, 0x5A, sizeof(msg));
    uint64_t offered = 0;
    while (!tp_load_relaxed_int(&sh->stop))
    {
        bool is_counting = tp_load_relaxed_int(&sh->measuring) != 0;
        uint64_t accepted = 0;
        for (int i = 0; i < 1024; i++)
        {
            accepted += tp_bus_offer(pub, msg, size) > 0;
        }
        offered += is_counting ? accepted : 0;
    }
    tp_fetch_add_relaxed_u64(&sh->offered, offered);
    tp_bus_publication_close(pub);
    tp_bus_close(bus);
    _exit(0);
}

static void throughput_subscriber(const char *dir, bench_shared_t *sh, double seconds)
{
    tp_bench_pin(1);
    tp_bus_t *bus = bench_bus(dir);
    tp_bus_subscription_t *sub;
    if (tp_bus_subscription_open(&sub, bus, "aeron:ipc", BENCH_STREAM_A, NULL, NULL, NULL) < 0)
    {
        _exit(1);
    }
    tp_store_relaxed_int(&sh->subscribed, 1);
    uint64_t count = 0;
    while (count == 0 && !tp_load_relaxed_int(&sh->stop))
    {
        tp_bus_poll(sub, on_count, &count, 256);
    }
    /* Warm up, then measure a window. */
    int64_t warm = tp_clock_monotonic_ns() + 200 * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < warm && !tp_load_relaxed_int(&sh->stop))
    {
        tp_bus_poll(sub, on_count, &count, 256);
    }
    tp_bus_counters_t c0;
    tp_bus_subscription_counters(sub, &c0);
    uint64_t start_count = count;
    tp_store_relaxed_int(&sh->measuring, 1);
    int64_t start = tp_clock_monotonic_ns();
    int64_t end = start + (int64_t)(seconds * 1e9);
    int64_t now = start;
    while (now < end && !tp_load_relaxed_int(&sh->stop))
    {
        for (int i = 0; i < 64; i++)
        {
            tp_bus_poll(sub, on_count, &count, 256);
        }
        now = tp_clock_monotonic_ns();
    }
    tp_store_relaxed_int(&sh->measuring, 0);
    tp_bus_counters_t c1;
    tp_bus_subscription_counters(sub, &c1);
    sh->received = count - start_count;
    sh->lost = c1.lost_records - c0.lost_records;
    sh->elapsed_ns = now - start;
    tp_store_relaxed_int(&sh->stop, 1);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    _exit(0);
}

/* Wait for the benchmark's processes; a SIGINT or SIGTERM of ours tells them to stop (sh->stop) meanwhile, so
 * that they end at once and the bench can remove its directory. */
static int bench_wait_all(bench_shared_t *sh, pid_t *pids, int n)
{
    int ok = 1;
    for (int i = 0; i < n; i++)
    {
        int status = 0;
        pid_t done;
        while ((done = waitpid(pids[i], &status, WNOHANG)) == 0)
        {
            if (tp_cli_stop_requested())
            {
                tp_store_relaxed_int(&sh->stop, 1);
            }
            usleep(1000);
        }
        ok &= done == pids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    return ok;
}

static int throughput_once(const char *dir, bench_shared_t *sh, size_t size, int publishers, double seconds,
    double *rate, double *lost_rate, double *offered_rate)
{
    memset(sh, 0, sizeof(*sh));
    pid_t pids[3];
    int n = 0;
    if ((pids[n++] = fork()) == 0)
    {
        throughput_subscriber(dir, sh, seconds);
    }
    while (!tp_load_relaxed_int(&sh->subscribed))
    {
        usleep(1000);
    }
    for (int p = 0; p < publishers; p++)
    {
        if ((pids[n++] = fork()) == 0)
        {
            throughput_publisher(dir, sh, size);
        }
    }
    if (!bench_wait_all(sh, pids, n) || sh->elapsed_ns <= 0)
    {
        return -1;
    }
    *rate = (double)sh->received / ((double)sh->elapsed_ns / 1e9);
    *lost_rate = (double)sh->lost / ((double)sh->elapsed_ns / 1e9);
    *offered_rate = (double)sh->offered / ((double)sh->elapsed_ns / 1e9);
    return 0;
}

/* ---- ping-pong ---- */

static int pong_poll(tp_bus_subscription_t *sub, uint64_t *count, bool park)
{
    int n = tp_bus_poll(sub, on_count, count, 1);
    if (n == 0 && park)
    {
        tp_bus_subscription_park(sub, 100 * TP_NS_PER_MS);
    }
    return n;
}

static void pong_process(const char *dir, bench_shared_t *sh, bool park)
{
    tp_bench_pin(1);
    tp_bus_t *bus = bench_bus(dir);
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    if (tp_bus_subscription_open(&sub, bus, "aeron:ipc", BENCH_STREAM_A, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&pub, bus, "aeron:ipc", BENCH_STREAM_B, false) < 0)
    {
        _exit(1);
    }
    tp_store_relaxed_int(&sh->subscribed, 1);
    uint8_t msg[32] = { 0 };
    uint64_t seen = 0;
    while (!tp_load_relaxed_int(&sh->stop))
    {
        uint64_t before = seen;
        pong_poll(sub, &seen, park);
        if (seen != before)
        {
            while (tp_bus_offer(pub, msg, sizeof(msg)) < 0 && !tp_load_relaxed_int(&sh->stop))
            {
            }
        }
    }
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    _exit(0);
}

static int pingpong_once(const char *dir, bench_shared_t *sh, bool park, int round_trips)
{
    memset(sh, 0, sizeof(*sh));
    tp_histogram_reset(&sh->rtt);
    pid_t pong = fork();
    if (pong == 0)
    {
        pong_process(dir, sh, park);
    }
    tp_bench_pin(0);
    tp_bus_t *bus = bench_bus(dir);
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    int rc = -1;
    if (tp_bus_subscription_open(&sub, bus, "aeron:ipc", BENCH_STREAM_B, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&pub, bus, "aeron:ipc", BENCH_STREAM_A, false) < 0)
    {
        goto done;
    }
    while (!tp_load_relaxed_int(&sh->subscribed))
    {
        usleep(1000);
    }
    uint8_t msg[32] = { 0 };
    uint64_t got = 0;
    int warmup = round_trips / 10;
    for (int i = 0; i < round_trips + warmup && !tp_cli_stop_requested(); i++)
    {
        int64_t t0 = tp_clock_monotonic_ns();
        while (tp_bus_offer(pub, msg, sizeof(msg)) < 0)
        {
        }
        uint64_t want = got + 1;
        int64_t deadline = t0 + TP_NS_PER_S;
        while (got < want && tp_clock_monotonic_ns() < deadline)
        {
            pong_poll(sub, &got, park);
        }
        if (got < want)
        {
            break;
        }
        if (i >= warmup)
        {
            tp_histogram_record(&sh->rtt, (uint64_t)(tp_clock_monotonic_ns() - t0));
        }
    }
    rc = sh->rtt.count == (uint64_t)round_trips ? 0 : -1;
done:
    tp_store_relaxed_int(&sh->stop, 1);
    bench_wait_all(sh, &pong, 1);
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
    tp_bench_pin(-1);
    return rc;
}

/* ---- idle parked subscriber ---- */

static int idle_once(const char *dir, bench_shared_t *sh, double seconds)
{
    memset(sh, 0, sizeof(*sh));
    pid_t child = fork();
    if (child == 0)
    {
        tp_bus_t *bus = bench_bus(dir);
        tp_bus_subscription_t *sub;
        if (tp_bus_subscription_open(&sub, bus, "aeron:ipc", BENCH_STREAM_A, NULL, NULL, NULL) < 0)
        {
            _exit(1);
        }
        tp_idle_strategy_t idle;
        tp_idle_backoff(&idle, 100, 10, TP_NS_PER_US, 100 * TP_NS_PER_MS);
        tp_idle_set_park(&idle, (tp_idle_park_t)tp_bus_subscription_park, sub);
        uint64_t count = 0;
        struct rusage r0;
        getrusage(RUSAGE_SELF, &r0);
        int64_t end = tp_clock_monotonic_ns() + (int64_t)(seconds * 1e9);
        while (tp_clock_monotonic_ns() < end && !tp_load_relaxed_int(&sh->stop))
        {
            tp_idle(&idle, tp_bus_poll(sub, on_count, &count, 16));
        }
        struct rusage r1;
        getrusage(RUSAGE_SELF, &r1);
        double cpu_s = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                       (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) /
                           1e6;
        sh->cpu_ms = cpu_s * 1000.0 / seconds;
        tp_bus_subscription_close(sub);
        tp_bus_close(bus);
        _exit(0);
    }
    return bench_wait_all(sh, &child, 1) ? 0 : -1;
}

/* ---- report ---- */

static void bench_bus_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench bus [--seconds S] [--repeats N] [--round-trips N] [--json]\n"
        "       tp bench bus --udp ... (aeron:udp on loopback beside raw UDP and Aeron: tp bench bus --udp --help)\n\n"
        "Measures the bus on this machine: throughput with 1 and 2 publisher processes (pinned to CPU 0) and\n"
        "one subscriber process (CPU 1) for 32 B and 256 B messages (term-length 64 MiB, Aeron's IPC default);\n"
        "ping-pong round trips between two\n"
        "processes, busy-spinning and futex-parked (p50/p99/p99.9); and the CPU time of a parked, idle\n"
        "subscriber. Each figure is the median of N interleaved runs, with min and max.\n\n"
        "options: --seconds S per throughput run [1], --repeats N [5], --round-trips N per run [100000],\n"
        "         --json one JSON object instead of the table\n\n"
        "exit status: 0 measured; 1 a benchmark process failed; 2 bad arguments.\n");
}

typedef struct bench_bus_args
{
    double seconds;
    uint64_t repeats;
    uint64_t round_trips;
    bool json;
} bench_bus_args_t;

typedef struct bench_bus_results
{
    double rates[2][2][BENCH_MAX_REPEATS]; /* [size][publishers - 1][round] */
    double losses[2][2][BENCH_MAX_REPEATS];
    double offered[2][2][BENCH_MAX_REPEATS]; /* accepted by the publishers' bus in the same window */
    double p50[2][BENCH_MAX_REPEATS]; /* [busy-spin, futex park][round] */
    double p99[2][BENCH_MAX_REPEATS];
    double p999[2][BENCH_MAX_REPEATS];
    double idle_cpu[BENCH_MAX_REPEATS];
} bench_bus_results_t;

static const size_t bench_sizes[2] = { 32, 256 };

/* 1: --help printed, 0: run, -1: usage error (printed). */
static int bench_bus_parse(int argc, char **argv, bench_bus_args_t *a)
{
    *a = (bench_bus_args_t){ .seconds = 1.0, .repeats = 5, .round_trips = 100000 };
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            bench_bus_usage(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--json") == 0)
        {
            a->json = true;
        }
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_double(argv[++i], 0.1, 600, &a->seconds) < 0)
            {
                return tp_cli_fail(-1, "bench bus", "--seconds: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 1, BENCH_MAX_REPEATS, &a->repeats) < 0)
            {
                return tp_cli_fail(-1, "bench bus", "--repeats: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc)
        {
            if (tp_cli_parse_u64(argv[++i], 100, 100000000, &a->round_trips) < 0)
            {
                return tp_cli_fail(-1, "bench bus", "--round-trips: %s", tp_errmsg());
            }
        }
        else
        {
            return tp_cli_fail(-1, "bench bus", "unknown option '%s' (see tp bench bus --help)", argv[i]);
        }
    }
    return 0;
}

/* Every round: throughput (both sizes, one and two publishers), both ping-pongs, the idle subscriber. */
static int bench_bus_rounds(const bench_bus_args_t *a, const char *dir, bench_shared_t *sh, bench_bus_results_t *r)
{
    for (uint64_t k = 0; k < a->repeats && !tp_cli_stop_requested(); k++)
    {
        for (int s = 0; s < 2; s++)
        {
            for (int p = 0; p < 2; p++)
            {
                if (throughput_once(dir, sh, bench_sizes[s], p + 1, a->seconds, &r->rates[s][p][k],
                        &r->losses[s][p][k], &r->offered[s][p][k]) < 0)
                {
                    return -1;
                }
            }
        }
        for (int mode = 0; mode < 2; mode++)
        {
            if (pingpong_once(dir, sh, mode == 1, (int)a->round_trips) < 0)
            {
                return -1;
            }
            r->p50[mode][k] = (double)tp_histogram_percentile(&sh->rtt, 50) / 1e3;
            r->p99[mode][k] = (double)tp_histogram_percentile(&sh->rtt, 99) / 1e3;
            r->p999[mode][k] = (double)tp_histogram_percentile(&sh->rtt, 99.9) / 1e3;
        }
        if (idle_once(dir, sh, a->seconds) < 0)
        {
            return -1;
        }
        r->idle_cpu[k] = sh->cpu_ms;
    }
    return 0;
}

static void bench_bus_print_throughput(const bench_bus_args_t *a, const bench_bus_results_t *r)
{
    int n = (int)a->repeats;
    if (a->json)
    {
        printf("{\"repeats\":%d,\"throughput\":[", n);
    }
    else
    {
        printf("\nthroughput, 1 subscriber (CPU 1), publishers on CPU 0\n"
               "  msgs/s delivered: median [min .. max]; offered: what the publishers' offers put on the bus in the\n"
               "  same window (median); lost/s: overwritten before the subscriber read them (median)\n");
    }
    for (int s = 0; s < 2; s++)
    {
        for (int p = 0; p < 2; p++)
        {
            tp_bench_stat_t st;
            tp_bench_stat_t lost;
            tp_bench_stat_t offered;
            tp_bench_stats(r->rates[s][p], n, &st);
            tp_bench_stats(r->losses[s][p], n, &lost);
            tp_bench_stats(r->offered[s][p], n, &offered);
            if (a->json)
            {
                printf("%s{\"size\":%zu,\"publishers\":%d,\"msgs_per_s\":%.0f,\"min\":%.0f,\"max\":%.0f,"
                       "\"offered_per_s\":%.0f,\"lost_per_s\":%.0f}",
                    s + p > 0 ? "," : "", bench_sizes[s], p + 1, st.median, st.min, st.max, offered.median,
                    lost.median);
            }
            else
            {
                printf("  %3zu B, %d publisher%s   delivered %6.2f M/s [%5.2f .. %5.2f]   offered %6.2f M/s   lost "
                       "%.2f M/s\n",
                    bench_sizes[s], p + 1, p ? "s" : " ", st.median / 1e6, st.min / 1e6, st.max / 1e6,
                    offered.median / 1e6, lost.median / 1e6);
            }
        }
    }
}

static void bench_bus_print_latency_and_idle(const bench_bus_args_t *a, const bench_bus_results_t *r)
{
    int n = (int)a->repeats;
    const char *modes[2] = { "busy-spin", "futex park" };
    if (a->json)
    {
        printf("],\"round_trip_us\":[");
    }
    else
    {
        printf("\nping-pong round trip, 32 B, %" PRIu64 " per run         us: p50 / p99 / p99.9 (median of runs)\n",
            a->round_trips);
    }
    for (int mode = 0; mode < 2; mode++)
    {
        tp_bench_stat_t p50;
        tp_bench_stat_t p99;
        tp_bench_stat_t p999;
        tp_bench_stats(r->p50[mode], n, &p50);
        tp_bench_stats(r->p99[mode], n, &p99);
        tp_bench_stats(r->p999[mode], n, &p999);
        if (a->json)
        {
            printf("%s{\"mode\":\"%s\",\"p50\":%.3f,\"p50_min\":%.3f,\"p50_max\":%.3f,\"p99\":%.3f,\"p999\":%.3f}",
                mode ? "," : "", modes[mode], p50.median, p50.min, p50.max, p99.median, p999.median);
        }
        else
        {
            printf("  %-10s                                          %7.2f / %7.2f / %7.2f   (p50 %.2f .. %.2f)\n",
                modes[mode], p50.median, p99.median, p999.median, p50.min, p50.max);
        }
    }
    tp_bench_stat_t idle;
    tp_bench_stats(r->idle_cpu, n, &idle);
    if (a->json)
    {
        printf("],\"idle_subscriber_cpu_ms_per_s\":%.3f}\n", idle.median);
    }
    else
    {
        printf("\nidle subscriber parked on the futex: %.3f ms CPU per second [%.3f .. %.3f]\n", idle.median,
            idle.min, idle.max);
    }
}

int tp_bench_bus(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "--udp") == 0)
        {
            return tp_bench_udp(argc, argv);
        }
    }
    bench_bus_args_t a;
    int parsed = bench_bus_parse(argc, argv, &a);
    if (parsed != 0)
    {
        return parsed > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    char dir[256];
    snprintf(dir, sizeof(dir), "/dev/shm/tp-bench-%d", (int)getpid());
    tp_cli_install_stop_handlers(); /* SIGINT/SIGTERM: the processes stop and the directory goes */
    bench_shared_t *sh = mmap(NULL, sizeof(bench_shared_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    bench_bus_results_t *r = calloc(1, sizeof(*r));
    if (sh == MAP_FAILED || r == NULL)
    {
        free(r);
        return tp_cli_fail(TP_EXIT_FAILED, "bench bus", "cannot map shared memory");
    }
    if (!a.json)
    {
        tp_bench_print_machine(stdout, argc, argv);
        printf("running %" PRIu64 " interleaved repeats...\n", a.repeats);
        fflush(stdout);
    }
    int rc = bench_bus_rounds(&a, dir, sh, r);
    tp_fs_remove_tree(dir);
    munmap(sh, sizeof(*sh));
    int status = TP_EXIT_OK;
    if (tp_cli_stop_requested())
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "bench bus", "interrupted: no results (%s removed)", dir);
    }
    else if (rc < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "bench bus", "a benchmark process failed (see its message above)");
    }
    else
    {
        bench_bus_print_throughput(&a, r);
        bench_bus_print_latency_and_idle(&a, r);
    }
    free(r);
    return status;
}
