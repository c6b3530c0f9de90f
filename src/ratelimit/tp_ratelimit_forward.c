/* Progress and QoS forwarding of a rate limiter; see tp_ratelimit_forward.h. */
#include "ratelimit/tp_ratelimit_forward.h"

#include <string.h>

#include "core/tp_err.h"
#include "tp_sbe_wire.h"

int tp_ratelimit_forwarder_open(tp_ratelimit_forwarder_t *f, tp_bus_t *bus, tp_ratelimit_forward_kind_t kind,
    const char *channel, uint32_t source_stream_id, uint32_t dest_stream_id)
{
    memset(f, 0, sizeof(*f));
    f->kind = kind;
    if (source_stream_id == 0 || dest_stream_id == 0)
    {
        /* Rate limiter spec 8: no forwarding starts on a stream id of 0. */
        TP_SET_ERR(TP_E_CONFIG, "%s forwarding needs nonzero source and destination stream ids (have %u and %u)",
            kind == TP_RATELIMIT_FORWARD_PROGRESS ? "progress" : "QoS", source_stream_id, dest_stream_id);
        return -1;
    }
    if (tp_bus_subscription_open(&f->sub, bus, channel, (int32_t)source_stream_id, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&f->pub, bus, channel, (int32_t)dest_stream_id, false) < 0)
    {
        tp_ratelimit_forwarder_close(f);
        return -1;
    }
    return 0;
}

int tp_ratelimit_forwarder_route(tp_ratelimit_forwarder_t *f, uint32_t source_stream_id, uint32_t dest_stream_id)
{
    if (f->route_count == TP_RATELIMIT_FORWARD_MAX_ROUTES)
    {
        TP_SET_ERR(TP_E_CAPACITY, "at most %d forwarded streams", TP_RATELIMIT_FORWARD_MAX_ROUTES);
        return -1;
    }
    f->sources[f->route_count] = source_stream_id;
    f->dests[f->route_count] = dest_stream_id;
    f->route_count++;
    return 0;
}

/* Where the streamId field of a decoded message lies in its buffer, or -1 when it is not one we forward. */
static int64_t stream_id_offset(const tp_ratelimit_forwarder_t *f, const uint8_t *buffer, size_t length)
{
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID)
    {
        return -1;
    }
    if (f->kind == TP_RATELIMIT_FORWARD_PROGRESS && h.template_id == TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID)
    {
        tp_wire_frame_progress_t m;
        return tp_wire_frame_progress_decode(&m, buffer, length) < 0
            ? -2
            : (int64_t)(m.v.body.block - buffer) + TP_WIRE_FRAME_PROGRESS_STREAM_ID_OFFSET;
    }
    if (f->kind == TP_RATELIMIT_FORWARD_QOS && h.template_id == TP_WIRE_QOS_PRODUCER_TEMPLATE_ID)
    {
        tp_wire_qos_producer_t m;
        return tp_wire_qos_producer_decode(&m, buffer, length) < 0
            ? -2
            : (int64_t)(m.v.body.block - buffer) + TP_WIRE_QOS_PRODUCER_STREAM_ID_OFFSET;
    }
    if (f->kind == TP_RATELIMIT_FORWARD_QOS && h.template_id == TP_WIRE_QOS_CONSUMER_TEMPLATE_ID)
    {
        tp_wire_qos_consumer_t m;
        return tp_wire_qos_consumer_decode(&m, buffer, length) < 0
            ? -2
            : (int64_t)(m.v.body.block - buffer) + TP_WIRE_QOS_CONSUMER_STREAM_ID_OFFSET;
    }
    return -1;
}

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_ratelimit_forwarder_t *f = clientd;
    int64_t at = stream_id_offset(f, buffer, length);
    if (at < 0 || length > sizeof(f->scratch))
    {
        f->malformed += at == -2;
        f->ignored += at != -2;
        return;
    }
    uint32_t stream_id;
    memcpy(&stream_id, buffer + at, sizeof(stream_id));
    for (uint32_t i = 0; i < f->route_count; i++)
    {
        if (f->sources[i] == stream_id)
        {
            memcpy(f->scratch, buffer, length);
            memcpy(f->scratch + at, &f->dests[i], sizeof(uint32_t)); /* SBE is little-endian, as we are */
            if (tp_bus_offer(f->pub, f->scratch, length) > 0)
            {
                f->forwarded++;
            }
            return;
        }
    }
    f->ignored++; /* another stream's (our own forwarded messages included, when both ids are the same) */
}

int tp_ratelimit_forwarder_poll(tp_ratelimit_forwarder_t *f)
{
    tp_bus_publication_do_work(f->pub);
    return tp_bus_poll(f->sub, on_message, f, 64);
}

void tp_ratelimit_forwarder_close(tp_ratelimit_forwarder_t *f)
{
    tp_bus_subscription_close(f->sub);
    tp_bus_publication_close(f->pub);
    f->sub = NULL;
    f->pub = NULL;
}
