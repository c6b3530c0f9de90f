/* Shared pieces of the `tp bench` targets. */
#ifndef TP_CLI_BENCH_H
#define TP_CLI_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define TP_BENCH_MAX_VALUES 128

typedef struct tp_bench_stat
{
    double median;
    double min;
    double max;
} tp_bench_stat_t;

/* Median, min and max of n values (n <= TP_BENCH_MAX_VALUES). */
void tp_bench_stats(const double *values, int n, tp_bench_stat_t *out);

/* Pin the calling thread to CPU cpu (modulo the online CPUs; nothing on a single-CPU machine); -1 unpins. */
void tp_bench_pin(int cpu);

/* The round trip of a cache line between threads pinned to CPU 0 and CPU 1, ns (0 on one CPU): where the two
 * sit relative to each other, which every cross-core figure depends on. */
double tp_bench_placement_ns(void);

/* "command: ...", "machine: CPU model, CPUs, kernel" and "placement: ..." lines. */
void tp_bench_print_machine(FILE *out, int argc, char **argv);

/* Start argv[0] (a path) with stdout and stderr into the file log; the pid, or -1. */
pid_t tp_bench_spawn(char *const argv[], const char *log);
/* SIGINT, up to 2 s to exit, then SIGKILL; reaped. Nothing for pid <= 0. */
void tp_bench_stop_child(pid_t pid);

#define TP_BENCH_AERON_SIZES 3

/* What Aeron's samples measured: msgs/s per message size, and the 32 B round trip (us). */
typedef struct tp_bench_aeron
{
    double msgs_per_s[TP_BENCH_AERON_SIZES];
    double p50_us;
    double p99_us;
    double max_us;
    bool has_rtt;
} tp_bench_aeron_t;

/* The pieces, for other transports: aeronmd with its directory under work_dir (pid, or -1), and its stop; a stream
 * of size-byte messages on channel (the best msgs/s rate_subscriber reported, about seconds + 2 s); cping/cpong
 * round trips of 32 B (fills out's p50/p99/max and has_rtt). */
pid_t tp_bench_aeron_driver_start(const char *bin, const char *work_dir);
void tp_bench_aeron_driver_stop(pid_t driver);
double tp_bench_aeron_stream(const char *bin, const char *work_dir, const char *channel, size_t size, double seconds);
bool tp_bench_aeron_ping(const char *bin, const char *work_dir, const char *ping_channel, const char *pong_channel,
    uint64_t round_trips, tp_bench_aeron_t *out);

/* Run Aeron's samples from bin (aeronmd and its C samples) over loopback ports from *port, logs in work_dir:
 * streaming_publisher -> rate_subscriber for each of sizes[TP_BENCH_AERON_SIZES], about seconds + 2 s each, and
 * cping/cpong. Figures it could not get stay 0. */
void tp_bench_aeron_measure(const char *bin, const char *work_dir, int *port, double seconds, const size_t *sizes,
    tp_bench_aeron_t *out);

int tp_bench_bus(int argc, char **argv);
int tp_bench_udp(int argc, char **argv);
int tp_bench_attach(int argc, char **argv);
int tp_bench_frames(int argc, char **argv);
int tp_bench_ratelimiter(int argc, char **argv);
int tp_bench_bridge(int argc, char **argv);
int tp_bench_join(int argc, char **argv);
int tp_bench_peers(int argc, char **argv);

#endif
