/* One bridge mapping, both ends; see tp_bridge_mapping.h. */
#include "bridge/tp_bridge_mapping.h"

#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_wire.h"

#define SEND_ATTEMPTS 1000
#define CHUNK_OVERHEAD 512 /* the chunk message's own fields, generously */

struct tp_bridge_sender
{
    tp_consumer_t *source;
    uint32_t stream_id;
    tp_bus_subscription_t *announces;
    tp_bus_publication_t *payload;
    tp_bus_publication_t *control;
    uint32_t chunk_bytes;
    uint32_t max_payload_bytes;
    bool is_integrity;
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    uint8_t *frame_copy;
    uint8_t *chunk;
    size_t chunk_capacity;
    tp_bridge_sender_counters_t counters;
};

/* Offer, servicing the publication while back-pressured; false if it stays so. */
static bool offer(tp_bus_publication_t *pub, const uint8_t *buffer, size_t length)
{
    for (int i = 0; i < SEND_ATTEMPTS; i++)
    {
        int64_t rc = tp_bus_offer(pub, buffer, length);
        if (rc > 0)
        {
            return true;
        }
        if (rc != TP_BUS_BACK_PRESSURED && rc != TP_BUS_ADMIN_ACTION)
        {
            return false;
        }
        tp_bus_publication_do_work(pub);
    }
    return false;
}

static void on_source_frame(void *clientd, const tp_frame_t *frame)
{
    tp_bridge_sender_t *s = clientd;
    if (frame->payload_length > s->max_payload_bytes)
    {
        s->counters.frames_dropped++;
        return;
    }
    /* A private copy of header and payload first: the source may overwrite the slot while chunks go out. */
    memcpy(s->header, frame->slot_, TP_BRIDGE_SLOT_HEADER_BYTES);
    if (tp_frame_copy_out(frame, s->frame_copy, s->max_payload_bytes) < 0)
    {
        s->counters.frames_lapped++;
        return;
    }
    tp_bridge_frame_t f = { .stream_id = s->stream_id, .epoch = frame->epoch, .seq = frame->seq,
        .trace_id = frame->trace_id, .header = s->header, .payload = s->frame_copy,
        .payload_length = frame->payload_length };
    uint32_t count = tp_bridge_chunk_count(f.payload_length, s->chunk_bytes);
    for (uint32_t i = 0; i < count; i++)
    {
        int64_t n = tp_bridge_chunk_encode(s->chunk, s->chunk_capacity, &f, i, s->chunk_bytes, s->is_integrity);
        if (n < 0 || !offer(s->payload, s->chunk, (size_t)n))
        {
            s->counters.frames_dropped++; /* the receiver times the partial frame out */
            return;
        }
        s->counters.chunks_sent++;
    }
    s->counters.frames_sent++;
}

static void on_announce(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_sender_t *s = clientd;
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) == 0 &&
        tp_wire_shm_pool_announce_stream_id(&m) == s->stream_id && offer(s->control, buffer, length))
    {
        s->counters.announces_forwarded++; /* bridge spec 7: forwarded as it is */
    }
}

int tp_bridge_sender_open(tp_bridge_sender_t **out, tp_client_t *client, tp_bus_t *bus, uint32_t stream_id,
    const char *announce_channel, uint32_t announce_stream_id, const tp_bridge_channels_t *channels,
    uint32_t chunk_bytes, uint32_t max_payload_bytes, bool is_integrity)
{
    *out = NULL;
    tp_bridge_sender_t *s = NULL;
    if (tp_alloc((void **)&s, sizeof(*s)) < 0)
    {
        return -1;
    }
    s->stream_id = stream_id;
    s->chunk_bytes = chunk_bytes;
    s->max_payload_bytes = max_payload_bytes;
    s->is_integrity = is_integrity;
    s->chunk_capacity = (size_t)chunk_bytes + TP_BRIDGE_SLOT_HEADER_BYTES + CHUNK_OVERHEAD;
    if (tp_alloc((void **)&s->frame_copy, max_payload_bytes > 0 ? max_payload_bytes : 1) < 0 ||
        tp_alloc((void **)&s->chunk, s->chunk_capacity) < 0 ||
        tp_bus_publication_open(&s->payload, bus, channels->payload_channel, (int32_t)channels->payload_stream_id,
            false) < 0 ||
        tp_bus_publication_open(&s->control, bus, channels->control_channel, (int32_t)channels->control_stream_id,
            false) < 0 ||
        tp_bus_subscription_open(&s->announces, bus, announce_channel, (int32_t)announce_stream_id, NULL, NULL,
            NULL) < 0 ||
        tp_consumer_attach_async(&s->source, client, stream_id) < 0)
    {
        TP_APPEND_ERR("bridge sender of stream %u", stream_id);
        tp_bridge_sender_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int tp_bridge_sender_do_work(tp_bridge_sender_t *s)
{
    int work = tp_bus_poll(s->announces, on_announce, s, 16);
    int frames = tp_consumer_poll(s->source, on_source_frame, s, 16);
    work = (work > 0 ? work : 0) + (frames > 0 ? frames : 0);
    tp_bus_publication_do_work(s->payload);
    tp_bus_publication_do_work(s->control);
    return work;
}

void tp_bridge_sender_counters(const tp_bridge_sender_t *s, tp_bridge_sender_counters_t *out)
{
    *out = s->counters;
}

void tp_bridge_sender_close(tp_bridge_sender_t *s)
{
    if (s == NULL)
    {
        return;
    }
    tp_consumer_close(s->source);
    tp_bus_subscription_close(s->announces);
    tp_bus_publication_close(s->payload);
    tp_bus_publication_close(s->control);
    tp_free(s->frame_copy);
    tp_free(s->chunk);
    tp_free(s);
}

/* ---- receiver ---- */

struct tp_bridge_receiver
{
    tp_client_t *client;
    uint32_t source_stream_id;
    tp_producer_t *dest;
    tp_bus_subscription_t *payload;
    tp_bus_subscription_t *control;
    tp_bridge_assembler_t *assembler;
    int64_t now_ns;
    tp_bridge_receiver_counters_t counters;
};

static void on_rebuilt(void *clientd, const tp_bridge_frame_t *f, const tp_tensor_desc_t *tensor)
{
    tp_bridge_receiver_t *r = clientd;
    tp_claim_t claim;
    int numbered = tp_producer_is_attached(r->dest) ? tp_producer_follow_seq(&r->dest, r->client, f->seq) : -1;
    r->counters.dest_reattaches += numbered == 1; /* the source started over: a new local epoch */
    if (numbered != 0 || tp_producer_try_claim_by_size(r->dest, f->payload_length, &claim) != 0)
    {
        r->counters.frames_not_placed++;
        return;
    }
    memcpy(claim.buffer, f->payload, f->payload_length);
    tp_slot_fields_t fields;
    tp_slot_read_fields(f->header, &fields);
    claim.timestamp_ns = fields.timestamp_ns;
    if (tp_producer_commit(r->dest, &claim, f->payload_length, tensor, fields.meta_version, f->trace_id) < 0)
    {
        r->counters.frames_not_placed++;
        return;
    }
    r->counters.frames_rebuilt++;
}

static void on_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_receiver_t *r = clientd;
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) == 0 &&
        tp_wire_shm_pool_announce_stream_id(&m) == r->source_stream_id)
    {
        r->counters.announces++;
        tp_bridge_assembler_on_announce(r->assembler, tp_wire_shm_pool_announce_epoch(&m));
    }
}

static void on_chunk(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_receiver_t *r = clientd;
    tp_bridge_assembler_on_chunk(r->assembler, buffer, length, r->now_ns);
}

int tp_bridge_receiver_open(tp_bridge_receiver_t **out, tp_client_t *client, tp_bus_t *bus, uint32_t source_stream_id,
    uint32_t dest_stream_id, const tp_bridge_channels_t *channels, const tp_bridge_assembler_limits_t *limits)
{
    *out = NULL;
    tp_bridge_receiver_t *r = NULL;
    if (tp_alloc((void **)&r, sizeof(*r)) < 0)
    {
        return -1;
    }
    r->client = client;
    r->source_stream_id = source_stream_id;
    if (tp_bridge_assembler_init(&r->assembler, source_stream_id, limits, on_rebuilt, r) < 0 ||
        tp_bus_subscription_open(&r->payload, bus, channels->payload_channel, (int32_t)channels->payload_stream_id,
            NULL, NULL, NULL) < 0 ||
        tp_bus_subscription_open(&r->control, bus, channels->control_channel, (int32_t)channels->control_stream_id,
            NULL, NULL, NULL) < 0 ||
        tp_producer_attach_async(&r->dest, client, dest_stream_id) < 0)
    {
        TP_APPEND_ERR("bridge receiver of stream %u as %u", source_stream_id, dest_stream_id);
        tp_bridge_receiver_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

int tp_bridge_receiver_do_work(tp_bridge_receiver_t *r, int64_t now_ns)
{
    r->now_ns = now_ns;
    int work = tp_producer_do_work(r->dest);
    int c = tp_bus_poll(r->control, on_control, r, 16);
    int p = tp_bus_poll(r->payload, on_chunk, r, 256);
    tp_bridge_assembler_expire(r->assembler, now_ns);
    return work + (c > 0 ? c : 0) + (p > 0 ? p : 0);
}

bool tp_bridge_receiver_is_ready(const tp_bridge_receiver_t *r)
{
    return tp_producer_is_attached(r->dest);
}

void tp_bridge_receiver_counters(const tp_bridge_receiver_t *r, tp_bridge_receiver_counters_t *out,
    uint64_t drops[TP_BRIDGE_DROP_KINDS])
{
    *out = r->counters;
    uint64_t delivered;
    tp_bridge_assembler_counters(r->assembler, drops, &delivered);
}

void tp_bridge_receiver_close(tp_bridge_receiver_t *r)
{
    if (r == NULL)
    {
        return;
    }
    tp_producer_close(r->dest);
    tp_bus_subscription_close(r->payload);
    tp_bus_subscription_close(r->control);
    tp_bridge_assembler_close(r->assembler);
    tp_free(r);
}
