/*
 * The producer's per-consumer descriptor streams (wire spec 5, 10.1.3, 11; driver spec 11). The driver grants a
 * consumer a stream of its own in ConsumerConfig; the producer, seeing the grant and the consumer's hellos on
 * the control stream, publishes that consumer's descriptors there too, thinned to the consumer's max_rate_hz when
 * it asked for RATE_LIMITED (the shared stream is never thinned). A stream is closed when the driver declines or
 * revokes it (the consumer's lease ended) or when the consumer went quiet: no hello for four hello periods.
 */
#ifndef TP_PRODUCER_CONSUMERS_H
#define TP_PRODUCER_CONSUMERS_H

#include "client/tp_client_internal.h"

#define TP_PRODUCER_MAX_CONSUMERS 32
#define TP_PRODUCER_STALE_HELLOS 4

typedef struct tp_consumer_stream
{
    bool in_use;
    uint32_t consumer_id;
    uint8_t mode;          /* TP_WIRE_MODE_* from its latest hello */
    uint8_t told_mode;     /* the mode a ConsumerConfig gave it (a supervisor's), 0: none; it wins */
    uint32_t max_rate_hz;  /* from its latest hello */
    int64_t last_hello_ns;
    tp_bus_publication_t *pub; /* its descriptor stream, when granted */
    uint32_t stream_id;
    tp_bus_publication_t *control_pub; /* its control stream (FrameProgress only), when granted */
    uint32_t control_stream_id;
    uint64_t min_interval_ns; /* RATE_LIMITED with a cap: 1 s / max_rate_hz, else 0 */
    uint64_t last_sent_ns;
    bool supports_progress;        /* from its latest hello */
    uint32_t progress_interval_us; /* its hint, UINT32_MAX: none */
    uint32_t progress_bytes_delta; /* its hint, UINT32_MAX: none */
} tp_consumer_stream_t;

typedef struct tp_consumer_streams
{
    tp_bus_t *bus;
    tp_client_t *client;
    int64_t stale_after_ns;
    uint32_t open_count;
    uint64_t thinned; /* descriptors not sent to a rate-limited consumer */
    tp_consumer_stream_t entries[TP_PRODUCER_MAX_CONSUMERS];
} tp_consumer_streams_t;

void tp_consumer_streams_init(tp_consumer_streams_t *s, tp_client_t *client);
/* A hello, a ConsumerConfig or a revocation on the producer's stream. */
void tp_consumer_streams_on_event(tp_consumer_streams_t *s, const tp_control_event_t *event);
/* Close the streams of consumers that went quiet. Returns the work done. */
int tp_consumer_streams_tick(tp_consumer_streams_t *s, int64_t now_ns);
/* Hot path: offer an encoded FrameDescriptor to every per-consumer stream that wants it now. */
void tp_consumer_streams_publish(tp_consumer_streams_t *s, const uint8_t *descriptor, size_t length,
    uint64_t publish_ns);
void tp_consumer_streams_close(tp_consumer_streams_t *s);
/* Send an encoded FrameProgress on the control streams of the consumers that follow progress and have one
 * (wire spec 5: nothing else goes there). true if some consumer that follows progress has none: then it goes on
 * the shared control stream too. */
bool tp_consumer_streams_send_progress(tp_consumer_streams_t *s, const uint8_t *message, size_t length);

/* Wire spec 10.2.2: producer floors for FrameProgress (at most this often, at least this many bytes apart). */
#define TP_PROGRESS_MIN_INTERVAL_NS (250 * 1000)
#define TP_PROGRESS_MIN_BYTES_DELTA (64 * 1024)
/* ... and a cap on each stream's progress reports, across frames: 2 kHz on average, bursts of 4. */
#define TP_PROGRESS_MAX_RATE_HZ 2000
#define TP_PROGRESS_BURST 4

/* The progress policy: false when no live consumer supports progress (nothing is to be sent); else the most
 * aggressive hints of the consumers that do (the smallest interval and delta), but not below the floors. */
bool tp_consumer_streams_progress_policy(const tp_consumer_streams_t *s, int64_t *interval_ns, uint64_t *bytes_delta);

#endif
