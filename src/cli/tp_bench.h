/* Shared pieces of the `tp bench` targets. */
#ifndef TP_CLI_BENCH_H
#define TP_CLI_BENCH_H

#include <stdio.h>

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

/* "command: ..." and "machine: CPU model, CPUs, kernel" lines. */
void tp_bench_print_machine(FILE *out, int argc, char **argv);

int tp_bench_bus(int argc, char **argv);
int tp_bench_udp(int argc, char **argv);
int tp_bench_attach(int argc, char **argv);
int tp_bench_frames(int argc, char **argv);

#endif
