#include "core/tp_histogram.h"

#include <string.h>

void tp_histogram_reset(tp_histogram_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < (1u << TP_HISTOGRAM_SUB_BITS))
    {
        return (unsigned)v;
    }
    unsigned top = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS */
    unsigned shift = top - TP_HISTOGRAM_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) & ((1u << TP_HISTOGRAM_SUB_BITS) - 1);
    return ((shift + 1) << TP_HISTOGRAM_SUB_BITS) + sub;
}

static uint64_t bucket_upper(unsigned b)
{
    unsigned range = b >> TP_HISTOGRAM_SUB_BITS;
    unsigned sub = b & ((1u << TP_HISTOGRAM_SUB_BITS) - 1);
    if (range == 0)
    {
        return sub;
    }
    unsigned shift = range - 1;
    uint64_t base = ((uint64_t)((1u << TP_HISTOGRAM_SUB_BITS) + sub)) << shift;
    return base + ((UINT64_C(1) << shift) - 1);
}

void tp_histogram_record(tp_histogram_t *h, uint64_t value)
{
    unsigned b = bucket_of(value);
    if (b >= TP_HISTOGRAM_BUCKETS)
    {
        b = TP_HISTOGRAM_BUCKETS - 1;
    }
    h->counts[b]++;
    h->count++;
    if (value > h->max)
    {
        h->max = value;
    }
    if (value < h->min)
    {
        h->min = value;
    }
}

void tp_histogram_merge(tp_histogram_t *into, const tp_histogram_t *from)
{
    for (unsigned i = 0; i < TP_HISTOGRAM_BUCKETS; i++)
    {
        into->counts[i] += from->counts[i];
    }
    into->count += from->count;
    if (from->max > into->max)
    {
        into->max = from->max;
    }
    if (from->min < into->min)
    {
        into->min = from->min;
    }
}

uint64_t tp_histogram_percentile(const tp_histogram_t *h, double p)
{
    if (h->count == 0)
    {
        return 0;
    }
    if (p >= 100.0)
    {
        return h->max;
    }
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count);
    if (rank >= h->count)
    {
        rank = h->count - 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < TP_HISTOGRAM_BUCKETS; i++)
    {
        seen += h->counts[i];
        if (seen > rank)
        {
            uint64_t upper = bucket_upper(i);
            return upper > h->max ? h->max : upper;
        }
    }
    return h->max;
}
