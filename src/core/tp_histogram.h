/*
 * A fixed-size log-linear histogram of non-negative integer samples (latencies in ns): 64 power-of-two ranges
 * of 16 linear sub-buckets each, so any percentile is exact to within 1/16 (6.25%) of its value. Recording is
 * a few instructions and never allocates; merging and percentiles are for reporting.
 */
#ifndef TP_CORE_HISTOGRAM_H
#define TP_CORE_HISTOGRAM_H

#include <stdint.h>

#define TP_HISTOGRAM_SUB_BITS 4
#define TP_HISTOGRAM_BUCKETS (64 * (1 << TP_HISTOGRAM_SUB_BITS))

typedef struct tp_histogram
{
    uint64_t count;
    uint64_t max;
    uint64_t min;
    uint64_t counts[TP_HISTOGRAM_BUCKETS];
} tp_histogram_t;

void tp_histogram_reset(tp_histogram_t *h);
/* Hot path: no alloc, syscalls or locks. */
void tp_histogram_record(tp_histogram_t *h, uint64_t value);
void tp_histogram_merge(tp_histogram_t *into, const tp_histogram_t *from);
/* Value at percentile p (0..100): the upper bound of the bucket holding it (max for 100). 0 when empty. */
uint64_t tp_histogram_percentile(const tp_histogram_t *h, double p);

#endif
