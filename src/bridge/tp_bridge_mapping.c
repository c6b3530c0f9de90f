/* One bridge mapping, both ends; see tp_bridge_mapping.h. */
#include "bridge/tp_bridge_mapping.h"

#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "shm/tp_header_ring.h"

#define SEND_ATTEMPTS 1000
#define CHUNK_OVERHEAD 512 /* the chunk message's own fields, generously */

struct tp_bridge_sender
{
    tp_consumer_t *source;
    uint32_t stream_id;
    tp_bus_publication_t *payload;
    uint32_t chunk_bytes;
    uint32_t max_payload_bytes;
    bool is_integrity;
    uint64_t announced_epoch; /* of the latest announce forwarded (0: none yet) */
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    uint8_t *frame_copy;
    uint8_t *chunk;
    size_t chunk_capacity;
    int64_t stall_ns;     /* a frame not fully sent within this long is given up */
    bool has_frame;       /* a frame copied out, its chunks going out from next_chunk on */
    tp_bridge_frame_t frame;
    uint32_t chunk_count;
    uint32_t next_chunk;
    int64_t frame_started_ns;
    tp_bridge_sender_counters_t counters;
};

bool tp_bridge_offer(tp_bus_publication_t *pub, const uint8_t *buffer, size_t length)
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

/* Take one source frame: a private copy of header and payload first (the source may overwrite the slot while its
 * chunks go out), checked intact after the copy; its chunks then go out from do_work. */
static void on_source_frame(tp_bridge_sender_t *s, const tp_frame_t *frame)
{
    if (frame->epoch != s->announced_epoch)
    {
        s->counters.frames_unannounced++; /* receivers take no chunk of an epoch they were not told of */
        return;
    }
    uint32_t count = tp_bridge_chunk_count(frame->payload_length, s->chunk_bytes);
    if (frame->payload_length > s->max_payload_bytes || count > TP_BRIDGE_MAX_CHUNKS)
    {
        s->counters.frames_too_large++;
        return;
    }
    memcpy(s->header, frame->slot_, TP_BRIDGE_SLOT_HEADER_BYTES);
    if (tp_frame_copy_out(frame, s->frame_copy, s->max_payload_bytes) < 0)
    {
        s->counters.frames_lapped++;
        return;
    }
    s->frame = (tp_bridge_frame_t){ .stream_id = s->stream_id, .epoch = frame->epoch, .seq = frame->seq,
        .trace_id = frame->trace_id, .header = s->header, .payload = s->frame_copy,
        .payload_length = frame->payload_length };
    s->chunk_count = count;
    s->next_chunk = 0;
    s->has_frame = true;
}

/* Send the current frame's chunks, in index order (bridge spec 5.2), until it is out or the transport pushes back
 * (then the rest goes on the next duty cycle: a slow receiver slows the sender, it does not cut frames). A frame
 * still not out after stall_ns, or refused for good (no receiver), is given up: the receiver times it out. */
static int send_chunks(tp_bridge_sender_t *s, int64_t now_ns)
{
    int sent = 0;
    while (s->next_chunk < s->chunk_count)
    {
        int64_t n = tp_bridge_chunk_encode(s->chunk, s->chunk_capacity, &s->frame, s->next_chunk, s->chunk_bytes,
            s->is_integrity);
        int64_t rc = n < 0 ? -1 : tp_bus_offer(s->payload, s->chunk, (size_t)n);
        if (rc == TP_BUS_BACK_PRESSURED || rc == TP_BUS_ADMIN_ACTION)
        {
            tp_bus_publication_do_work(s->payload);
            if (now_ns - s->frame_started_ns > s->stall_ns)
            {
                break;
            }
            return sent;
        }
        if (rc < 0)
        {
            break;
        }
        s->next_chunk++;
        s->counters.chunks_sent++;
        sent++;
    }
    if (s->next_chunk == s->chunk_count)
    {
        s->counters.frames_sent++;
        s->counters.bytes_sent += s->frame.payload_length;
    }
    else
    {
        s->counters.frames_back_pressured++;
    }
    s->has_frame = false;
    return sent;
}

int tp_bridge_sender_open(tp_bridge_sender_t **out, tp_client_t *client, uint32_t stream_id,
    tp_bus_publication_t *payload, const tp_bridge_sender_options_t *options)
{
    uint32_t chunk_bytes = options->chunk_bytes;
    uint32_t max_payload_bytes = options->max_payload_bytes;
    tp_consumer_options_t consumer;
    tp_consumer_options_init(&consumer);
    consumer.supports_progress = options->wants_progress;
    *out = NULL;
    tp_bridge_sender_t *s = NULL;
    if (tp_alloc((void **)&s, sizeof(*s)) < 0)
    {
        return -1;
    }
    s->stream_id = stream_id;
    s->payload = payload;
    s->chunk_bytes = chunk_bytes;
    s->max_payload_bytes = max_payload_bytes;
    s->is_integrity = options->is_integrity;
    s->stall_ns = options->stall_ns > 0 ? options->stall_ns : TP_NS_PER_S;
    s->chunk_capacity = (size_t)chunk_bytes + TP_BRIDGE_SLOT_HEADER_BYTES + CHUNK_OVERHEAD;
    if (tp_alloc((void **)&s->frame_copy, max_payload_bytes > 0 ? max_payload_bytes : 1) < 0 ||
        tp_alloc((void **)&s->chunk, s->chunk_capacity) < 0 ||
        tp_consumer_open(&s->source, client, stream_id, &consumer, -1) < 0)
    {
        TP_APPEND_ERR("bridge sender of stream %u", stream_id);
        tp_bridge_sender_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int tp_bridge_sender_do_work(tp_bridge_sender_t *s, int64_t now_ns)
{
    int work = 0;
    for (int i = 0; i < 16; i++)
    {
        if (!s->has_frame)
        {
            tp_frame_t frame;
            if (tp_consumer_next(s->source, &frame) <= 0)
            {
                break;
            }
            work++;
            on_source_frame(s, &frame);
            if (!s->has_frame)
            {
                continue; /* not sendable (unannounced, lapped, too large): the next one */
            }
            s->frame_started_ns = now_ns;
        }
        work += send_chunks(s, now_ns);
        if (s->has_frame)
        {
            break; /* back-pressured: the rest next time */
        }
    }
    return work;
}

void tp_bridge_sender_on_announce_forwarded(tp_bridge_sender_t *s, uint64_t epoch)
{
    s->announced_epoch = epoch;
}

bool tp_bridge_sender_is_ready(const tp_bridge_sender_t *s)
{
    return tp_consumer_is_attached(s->source);
}

uint32_t tp_bridge_sender_stream_id(const tp_bridge_sender_t *s)
{
    return s->stream_id;
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
    tp_free(s->frame_copy);
    tp_free(s->chunk);
    tp_free(s);
}

/* ---- receiver ---- */

struct tp_bridge_receiver
{
    tp_client_t *client;
    uint32_t source_stream_id;
    uint32_t dest_stream_id;
    tp_producer_t *dest;
    tp_bridge_assembler_t *assembler;
    bool has_source_epoch;
    uint64_t source_epoch;
    tp_bridge_receiver_counters_t counters;
};

/* Bridge spec 6 steps 7-11: the smallest local pool that fits, payload then slot header (source seq, the local
 * pool and slot, never the source's), commit through the seqlock, then the local FrameDescriptor. */
static void on_rebuilt(void *clientd, const tp_bridge_frame_t *f, const tp_tensor_desc_t *tensor)
{
    tp_bridge_receiver_t *r = clientd;
    int numbered = tp_producer_is_attached(r->dest) ? tp_producer_follow_seq(&r->dest, r->client, f->seq) : -1;
    r->counters.dest_reattaches += numbered == 1; /* the source started over: a new local epoch */
    if (numbered != 0)
    {
        r->counters.frames_not_attached++;
        return;
    }
    tp_claim_t claim;
    if (tp_producer_try_claim_by_size(r->dest, f->payload_length, &claim) != 0)
    {
        r->counters.frames_no_local_pool++;
        return;
    }
    memcpy(claim.buffer, f->payload, f->payload_length);
    tp_slot_fields_t fields;
    tp_slot_read_fields(f->header, &fields);
    claim.timestamp_ns = fields.timestamp_ns;
    if (tp_producer_commit(r->dest, &claim, f->payload_length, tensor, fields.meta_version, f->trace_id) < 0)
    {
        r->counters.frames_not_attached++;
        return;
    }
    r->counters.frames_rebuilt++;
    r->counters.bytes_rebuilt += f->payload_length;
}

int tp_bridge_receiver_open(tp_bridge_receiver_t **out, tp_client_t *client, uint32_t source_stream_id,
    tp_producer_t *dest, const tp_bridge_assembler_limits_t *limits)
{
    *out = NULL;
    tp_bridge_receiver_t *r = NULL;
    if (tp_alloc((void **)&r, sizeof(*r)) < 0)
    {
        tp_producer_close(dest);
        return -1;
    }
    r->client = client;
    r->source_stream_id = source_stream_id;
    r->dest_stream_id = tp_producer_stream_id(dest);
    r->dest = dest;
    if (tp_bridge_assembler_init(&r->assembler, source_stream_id, limits, on_rebuilt, r) < 0)
    {
        TP_APPEND_ERR("bridge receiver of stream %u as %u", source_stream_id, r->dest_stream_id);
        tp_bridge_receiver_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

void tp_bridge_receiver_on_chunk(tp_bridge_receiver_t *r, const uint8_t *buffer, size_t length, int64_t now_ns)
{
    r->counters.chunks++;
    tp_bridge_assembler_on_chunk(r->assembler, buffer, length, now_ns);
}

void tp_bridge_receiver_on_announce(tp_bridge_receiver_t *r, const tp_bridge_announce_t *announce)
{
    if (!tp_bridge_assembler_on_announce(r->assembler, announce))
    {
        r->counters.announces_stale++;
        return;
    }
    r->counters.announces++;
    r->has_source_epoch = true;
    r->source_epoch = announce->epoch;
}

bool tp_bridge_receiver_source_epoch(const tp_bridge_receiver_t *r, uint64_t *epoch)
{
    *epoch = r->source_epoch;
    return r->has_source_epoch;
}

int tp_bridge_receiver_do_work(tp_bridge_receiver_t *r, int64_t now_ns)
{
    int work = tp_producer_do_work(r->dest);
    tp_bridge_assembler_expire(r->assembler, now_ns);
    return work > 0 ? work : 0;
}

bool tp_bridge_receiver_is_ready(const tp_bridge_receiver_t *r)
{
    return tp_producer_is_attached(r->dest);
}

uint32_t tp_bridge_receiver_source_stream_id(const tp_bridge_receiver_t *r)
{
    return r->source_stream_id;
}

uint32_t tp_bridge_receiver_dest_stream_id(const tp_bridge_receiver_t *r)
{
    return r->dest_stream_id;
}

void tp_bridge_receiver_counters(const tp_bridge_receiver_t *r, tp_bridge_receiver_counters_t *out)
{
    *out = r->counters;
    uint64_t delivered;
    tp_bridge_assembler_counters(r->assembler, out->drops, &delivered);
}

void tp_bridge_receiver_close(tp_bridge_receiver_t *r)
{
    if (r == NULL)
    {
        return;
    }
    tp_producer_close(r->dest);
    tp_bridge_assembler_close(r->assembler);
    tp_free(r);
}
