/*
 * Progress and QoS forwarding of a rate limiter (rate limiter spec 6.1): one subscription on the source stream id
 * (shared by every mapping; messages told apart by their streamId) and one publication on the destination stream
 * id. A FrameProgress (progress) or QosProducer / QosConsumer (QoS) of a mapping's source stream is republished
 * with streamId rewritten to that mapping's destination, every other field (seq included) unchanged; messages of
 * other streams, and anything that does not decode, are left alone (counted).
 */
#ifndef TP_RATELIMIT_FORWARD_H
#define TP_RATELIMIT_FORWARD_H

#include <stdint.h>

#include "tensorpool/tp_bus.h"

typedef enum tp_ratelimit_forward_kind
{
    TP_RATELIMIT_FORWARD_PROGRESS = 1,
    TP_RATELIMIT_FORWARD_QOS = 2,
} tp_ratelimit_forward_kind_t;

#define TP_RATELIMIT_FORWARD_MAX_ROUTES 64

typedef struct tp_ratelimit_forwarder
{
    tp_ratelimit_forward_kind_t kind;
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    uint32_t sources[TP_RATELIMIT_FORWARD_MAX_ROUTES];
    uint32_t dests[TP_RATELIMIT_FORWARD_MAX_ROUTES];
    uint32_t route_count;
    uint64_t forwarded;
    uint64_t ignored;   /* other streams, other message types */
    uint64_t malformed; /* did not decode */
    uint8_t scratch[1024];
} tp_ratelimit_forwarder_t;

int tp_ratelimit_forwarder_open(tp_ratelimit_forwarder_t *f, tp_bus_t *bus, tp_ratelimit_forward_kind_t kind,
    const char *channel, uint32_t source_stream_id, uint32_t dest_stream_id);
/* Messages of source_stream_id go out as dest_stream_id's. */
int tp_ratelimit_forwarder_route(tp_ratelimit_forwarder_t *f, uint32_t source_stream_id, uint32_t dest_stream_id);
int tp_ratelimit_forwarder_poll(tp_ratelimit_forwarder_t *f);
void tp_ratelimit_forwarder_close(tp_ratelimit_forwarder_t *f);

#endif
