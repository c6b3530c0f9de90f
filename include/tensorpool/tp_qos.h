/*
 * QoS (wire spec 10.4): producers send QosProducer (current sequence) and consumers QosConsumer (last sequence
 * seen, gap and late drops, mode) every client.qos_period_ms (default 1000) on the QoS stream, by themselves from
 * tp_producer_do_work and tp_consumer_poll. A QoS monitor reads that stream and keeps, per stream, the latest
 * report of each producer and consumer, their rates (sequence and drops per second between reports), when each
 * was last heard of, and whether it went quiet for longer than the staleness window.
 *
 *   tp_qos_monitor_open(&monitor, client, 0);     staleness: 3 x client.qos_period_ms
 *   tp_qos_monitor_poll(monitor, 64);
 *   n = tp_qos_monitor_consumers(monitor, views, 16);
 */
#ifndef TENSORPOOL_TP_QOS_H
#define TENSORPOOL_TP_QOS_H

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_qos_monitor tp_qos_monitor_t;

typedef struct tp_qos_producer_view
{
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    uint64_t current_seq;
    double seq_rate_hz;   /* between its last two reports (0 until there are two) */
    int64_t last_seen_ns; /* CLOCK_MONOTONIC of the last report */
    uint64_t reports;
    bool is_stale;
} tp_qos_producer_view_t;

typedef struct tp_qos_consumer_view
{
    uint32_t stream_id;
    uint32_t consumer_id;
    uint64_t epoch;
    uint64_t last_seq_seen;
    uint64_t drops_gap;
    uint64_t drops_late;
    uint8_t mode; /* 1 STREAM, 2 RATE_LIMITED */
    double seq_rate_hz;
    double drop_rate_hz; /* gaps + late per second between its last two reports */
    int64_t last_seen_ns;
    uint64_t reports;
    bool is_stale;
} tp_qos_consumer_view_t;

/* stale_after_ns 0: three QoS periods of the client's configuration. */
TP_API int tp_qos_monitor_open(tp_qos_monitor_t **out, tp_client_t *client, int64_t stale_after_ns);
TP_API int tp_qos_monitor_close(tp_qos_monitor_t *monitor);
/* Read reports; returns how many, -1 on a fatal error. */
TP_API int tp_qos_monitor_poll(tp_qos_monitor_t *monitor, int limit);
/* Copy up to capacity views (staleness judged now); returns how many parties are known. */
TP_API size_t tp_qos_monitor_producers(const tp_qos_monitor_t *monitor, tp_qos_producer_view_t *out,
    size_t capacity);
TP_API size_t tp_qos_monitor_consumers(const tp_qos_monitor_t *monitor, tp_qos_consumer_view_t *out,
    size_t capacity);
/* Sum of the latest gap and late drops reported by the consumers of a stream that are not stale. */
TP_API void tp_qos_monitor_stream_drops(const tp_qos_monitor_t *monitor, uint32_t stream_id, uint64_t *drops_gap,
    uint64_t *drops_late);

#ifdef __cplusplus
}
#endif

#endif
