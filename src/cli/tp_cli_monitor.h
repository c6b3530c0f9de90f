/*
 * What `tp top` and `tp web` watch: the driver's status file (streams, epochs, producers, consumers, leases), the
 * announce, descriptor and QoS streams, and each stream's header ring mapped read-only (for frame lengths). Sampled
 * once per window into frames/s, bytes/s and drops, with the last minute of samples kept per stream.
 */
#ifndef TP_CLI_MONITOR_H
#define TP_CLI_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "core/tp_strbuf.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"
#include "tensorpool/tp_bus.h"

#define TP_MONITOR_MAX_STREAMS 256
#define TP_MONITOR_MAX_CONSUMERS 32
#define TP_MONITOR_HISTORY 60
#define TP_MONITOR_QOS_STALE_NS (5 * TP_NS_PER_S)

typedef struct tp_monitor_consumer
{
    uint32_t consumer_id;
    uint64_t epoch;
    uint64_t last_seq;
    uint64_t drops_gap;
    uint64_t drops_late;
    uint8_t mode; /* TP_WIRE_MODE_* */
    int64_t seen_ns;
} tp_monitor_consumer_t;

typedef struct tp_monitor_stream
{
    uint32_t stream_id;
    char name[64];
    uint64_t epoch;
    uint32_t producer_client_id;
    uint32_t consumers;
    uint32_t header_nslots;
    char header_path[TP_PATH_MAX]; /* of the newest epoch known (announce or status file) */
    uint64_t header_epoch;
    bool in_status; /* listed by the latest status file */
    /* the mapped header ring (for frame lengths) */
    uint8_t *ring;
    size_t ring_bytes;
    uint64_t ring_epoch;
    uint32_t ring_nslots;
    /* counted since the last sample */
    uint64_t frames;
    uint64_t bytes;
    /* the last sample */
    bool has_rates;
    double fps;
    double bps;
    bool has_drops; /* some consumer reported lately */
    uint64_t drops_gap;
    uint64_t drops_late;
    double drops_per_s;
    /* the last TP_MONITOR_HISTORY samples, oldest first from history_next */
    float fps_history[TP_MONITOR_HISTORY];
    float drops_history[TP_MONITOR_HISTORY];
    uint32_t history_count;
    uint32_t history_next;
    /* announces and QoS (the latest report of each consumer) */
    int64_t last_announce_ns;
    tp_monitor_consumer_t qos[TP_MONITOR_MAX_CONSUMERS];
    size_t qos_count;
} tp_monitor_stream_t;

typedef struct tp_monitor
{
    uint32_t control_stream_id;
    tp_bus_t *bus;
    tp_bus_subscription_t *announces;
    tp_bus_subscription_t *descriptors;
    tp_bus_subscription_t *qos;
    tp_shm_allowed_dirs_t allowed;
    bool has_allowed;
    char driver_line[1400];
    bool driver_running;
    char instance_id[128];
    uint64_t driver_pid;
    tp_monitor_stream_t streams[TP_MONITOR_MAX_STREAMS];
    size_t count;
    uint64_t unknown_descriptors;
} tp_monitor_t;

/* The bus (bus_dir NULL: the default) and the descriptor (TP_DESCRIPTOR_STREAM_ID, 1100) and QoS
 * (TP_QOS_STREAM_ID, 1200) subscriptions; the announce one once the status file names its stream. */
int tp_monitor_open(tp_monitor_t *m, const char *bus_dir, uint32_t control_stream_id);
void tp_monitor_close(tp_monitor_t *m);
/* Read what arrived on the three streams. Returns the work done. */
int tp_monitor_poll(tp_monitor_t *m);
/* Read the driver's status file; -1 when there is none (driver_line says so). */
int tp_monitor_read_status(tp_monitor_t *m);
/* Close a window of window_s seconds: rates, drops, one more history sample; the counters start over. */
void tp_monitor_sample(tp_monitor_t *m, double window_s, int64_t now_ns);
/* The streams as a JSON array (rates, drops, history, consumers' QoS, announce age). */
void tp_monitor_streams_json(const tp_monitor_t *m, tp_strbuf_t *b, int64_t now_ns);

#endif
