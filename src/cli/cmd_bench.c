/* `tp bench`: dispatch to the benchmarks, and what they share (statistics, machine facts). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/tp_bench.h"
#include "cli/tp_cli.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

void tp_bench_stats(const double *values, int n, tp_bench_stat_t *out)
{
    double sorted[TP_BENCH_MAX_VALUES];
    memcpy(sorted, values, sizeof(double) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    out->min = sorted[0];
    out->max = sorted[n - 1];
    out->median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

void tp_bench_pin(int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
    {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < (int)n && c < CPU_SETSIZE; c++)
    {
        if (cpu < 0 || c == cpu % (int)n)
        {
            CPU_SET(c, &set);
        }
    }
    sched_setaffinity(0, sizeof(set), &set);
}

/* ---- where the two CPUs sit: a cache line bounced between threads pinned to CPU 0 and CPU 1 ---- */

#define PROBE_ROUND_TRIPS 20000

typedef struct probe
{
    _Alignas(64) uint64_t ball; /* odd: the pong side's turn */
} probe_t;

static void *probe_pong(void *arg)
{
    probe_t *p = arg;
    tp_bench_pin(1);
    for (uint64_t i = 0; i < PROBE_ROUND_TRIPS; i++)
    {
        uint64_t ball;
        while (((ball = tp_load_acquire_u64(&p->ball)) & 1) == 0)
        {
        }
        tp_store_release_u64(&p->ball, ball + 1); /* the turn is ours: nobody else writes it now */
    }
    return NULL;
}

double tp_bench_placement_ns(void)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
    {
        return 0;
    }
    static probe_t p;
    tp_store_relaxed_u64(&p.ball, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, probe_pong, &p) != 0)
    {
        return 0;
    }
    tp_bench_pin(0);
    int64_t start = 0;
    for (uint64_t i = 0; i < PROBE_ROUND_TRIPS; i++)
    {
        if (i == PROBE_ROUND_TRIPS / 10)
        {
            start = tp_clock_monotonic_ns(); /* after a warm-up tenth */
        }
        tp_store_release_u64(&p.ball, tp_load_relaxed_u64(&p.ball) + 1);
        while ((tp_load_acquire_u64(&p.ball) & 1) != 0)
        {
        }
    }
    int64_t elapsed = tp_clock_monotonic_ns() - start;
    pthread_join(t, NULL);
    tp_bench_pin(-1);
    return (double)elapsed / (PROBE_ROUND_TRIPS - PROBE_ROUND_TRIPS / 10);
}

void tp_bench_print_machine(FILE *out, int argc, char **argv)
{
    struct utsname u;
    uname(&u);
    char model[600] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    {
        if (strncmp(line, "model name", 10) == 0)
        {
            const char *colon = strchr(line, ':');
            snprintf(model, sizeof(model), "%s", colon != NULL ? colon + 2 : line);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f != NULL)
    {
        fclose(f);
    }
    fprintf(out, "command: tp bench");
    for (int i = 0; i < argc; i++)
    {
        fprintf(out, " %s", argv[i]);
    }
    fprintf(out, "\nmachine: %s, %ld online CPUs, %s %s\n", model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
    double placement = tp_bench_placement_ns();
    if (placement > 0)
    {
        /* Two hyperthreads of one core bounce a line in tens of ns; cores sharing a cache in about 100; farther
         * apart (another chiplet or socket, or vCPUs the host placed so) several hundred. */
        fprintf(out, "placement: CPU 0 <-> CPU 1 cache-line round trip %.0f ns (%s)\n", placement,
            placement < 60 ? "near: hyperthreads of one core" : placement < 180 ? "near: a shared cache" : "far");
    }
}

static void bench_usage(FILE *out)
{
    fprintf(out,
        "usage: tp bench [bus|attach|frames|ratelimiter|bridge|join|--peers] [options]\n\n"
        "Benchmarks that print this machine's figures next to each other in one run (medians of repeats, with\n"
        "min and max). Targets:\n"
        "  bus     the message bus: throughput, ping-pong latency, idle CPU (tp bench bus --help)\n"
        "  attach  the driver's attach and detach round trips (tp bench attach --help)\n"
        "  frames  frames through the client API next to memcpy: copy and claim paths, latency\n"
        "          (tp bench frames --help)\n"
        "  ratelimiter  a rate limiter's CPU and added latency, 1 kHz source, 30 Hz cap\n"
        "          (tp bench ratelimiter --help; not run without a target)\n"
        "  bridge  frames through a sending and a receiving bridge over loopback UDP, beside the local copy path\n"
        "          (tp bench bridge --help; not run without a target)\n"
        "  join    the join barrier's cost per input frame, and a two-camera join's outputs/s and added latency\n"
        "          (tp bench join --help; not run without a target)\n"
        "  --peers our bus and frames beside Aeron's, ZeroMQ's and iceoryx's own code in one run, with ratios\n"
        "          (tp bench --peers --help; not run without a target)\n\n"
        "With no target, runs every target with its defaults.\n\n"
        "exit status: 0 measured; 1 a benchmark process failed; 2 bad arguments.\n");
}

int tp_cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && tp_cli_is_help(argv[1]))
    {
        bench_usage(stdout);
        return TP_EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "bus") == 0)
    {
        return tp_bench_bus(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "frames") == 0)
    {
        return tp_bench_frames(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "attach") == 0)
    {
        return tp_bench_attach(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "ratelimiter") == 0)
    {
        return tp_bench_ratelimiter(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "bridge") == 0)
    {
        return tp_bench_bridge(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "join") == 0)
    {
        return tp_bench_join(argc - 1, argv + 1);
    }
    if (argc >= 2 && (strcmp(argv[1], "peers") == 0 || strcmp(argv[1], "--peers") == 0))
    {
        return tp_bench_peers(argc - 1, argv + 1);
    }
    if (argc >= 2)
    {
        tp_cli_fail(TP_EXIT_USAGE, "bench", "unknown target '%s'", argv[1]);
        bench_usage(stderr);
        return TP_EXIT_USAGE;
    }
    char bus[] = "bus";
    char *bus_args[] = { bus, NULL };
    int status = tp_bench_bus(1, bus_args);
    if (status != TP_EXIT_OK)
    {
        return status;
    }
    char attach[] = "attach";
    char *attach_args[] = { attach, NULL };
    status = tp_bench_attach(1, attach_args);
    if (status != TP_EXIT_OK)
    {
        return status;
    }
    char frames[] = "frames";
    char *frames_args[] = { frames, NULL };
    return tp_bench_frames(1, frames_args);
}
