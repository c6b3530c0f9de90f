/* Bridge frame chunks; see tp_bridge_chunk.h. */
#include "bridge/tp_bridge_chunk.h"

#include <stdlib.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_crc32c.h"
#include "core/tp_err.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_bridge.h"
#include "tp_sbe_wire.h"
#include "wire/tp_tensor.h"

#define MAX_IN_FLIGHT 16

static uint32_t chunk0_payload(uint32_t chunk_bytes)
{
    return chunk_bytes > TP_BRIDGE_SLOT_HEADER_BYTES ? chunk_bytes - TP_BRIDGE_SLOT_HEADER_BYTES : 0;
}

uint32_t tp_bridge_chunk_count(uint32_t payload_length, uint32_t chunk_bytes)
{
    uint32_t first = chunk0_payload(chunk_bytes);
    if (payload_length <= first || chunk_bytes == 0)
    {
        return 1;
    }
    uint64_t rest = payload_length - first;
    uint64_t count = 1 + (rest + chunk_bytes - 1) / chunk_bytes;
    return count > TP_BRIDGE_MAX_CHUNKS ? 0 : (uint32_t)count; /* 0: the frame cannot be sent in chunks */
}

int64_t tp_bridge_chunk_encode(uint8_t *buf, size_t capacity, const tp_bridge_frame_t *f, uint32_t index,
    uint32_t chunk_bytes, bool is_integrity)
{
    uint32_t count = tp_bridge_chunk_count(f->payload_length, chunk_bytes);
    if (count == 0 || index >= count)
    {
        TP_SET_ERR(TP_E_INVALID, "chunk %u of a %u-byte frame at %u bytes a chunk", index, f->payload_length,
            chunk_bytes);
        return -1;
    }
    uint32_t first = chunk0_payload(chunk_bytes);
    uint32_t offset = index == 0 ? 0 : first + (index - 1) * chunk_bytes;
    uint32_t length = index == 0 ? (f->payload_length < first ? f->payload_length : first)
                                 : (f->payload_length - offset < chunk_bytes ? f->payload_length - offset : chunk_bytes);
    bool has_header = index == 0;
    uint32_t crc = 0;
    if (is_integrity)
    {
        /* Bridge spec 5.4: over headerBytes then payloadBytes on chunk 0, payloadBytes alone on the others. */
        crc = has_header ? tp_crc32c(0, f->header, TP_BRIDGE_SLOT_HEADER_BYTES) : 0;
        crc = tp_crc32c(crc, f->payload + offset, length);
        crc = crc == 0 ? 1 : crc; /* 0 means "no CRC"; a real zero CRC is vanishingly rare and would be refused */
    }
    tp_bridge_bridge_frame_chunk_enc_t e;
    tp_bridge_bridge_frame_chunk_enc_begin(&e, buf, capacity);
    tp_bridge_bridge_frame_chunk_set_stream_id(&e, f->stream_id);
    tp_bridge_bridge_frame_chunk_set_epoch(&e, f->epoch);
    tp_bridge_bridge_frame_chunk_set_seq(&e, f->seq);
    tp_bridge_bridge_frame_chunk_set_trace_id(&e, f->trace_id);
    tp_bridge_bridge_frame_chunk_set_chunk_index(&e, index);
    tp_bridge_bridge_frame_chunk_set_chunk_count(&e, count);
    tp_bridge_bridge_frame_chunk_set_chunk_offset(&e, offset);
    tp_bridge_bridge_frame_chunk_set_chunk_length(&e, length);
    tp_bridge_bridge_frame_chunk_set_payload_length(&e, f->payload_length);
    tp_bridge_bridge_frame_chunk_set_payload_crc32c(&e, crc);
    tp_bridge_bridge_frame_chunk_set_header_included(&e, has_header ? TP_BRIDGE_BOOL_TRUE : TP_BRIDGE_BOOL_FALSE);
    tp_bridge_bridge_frame_chunk_put_header_bytes(&e, f->header, has_header ? TP_BRIDGE_SLOT_HEADER_BYTES : 0);
    tp_bridge_bridge_frame_chunk_put_payload_bytes(&e, f->payload + offset, length);
    return tp_bridge_bridge_frame_chunk_enc_finish(&e);
}

/* ---- reassembly ---- */

typedef struct chunk_record
{
    uint32_t offset;
    uint32_t length; /* 0: not received */
} chunk_record_t;

typedef struct in_flight
{
    bool is_used;
    uint64_t epoch;
    uint64_t seq;
    uint64_t trace_id;
    uint32_t payload_length;
    uint32_t chunk_count;
    uint32_t chunks_received;
    uint64_t bytes_received;
    bool has_header;
    int64_t started_ns;
    uint8_t header[TP_BRIDGE_SLOT_HEADER_BYTES];
    uint8_t *payload;       /* max_payload_bytes */
    chunk_record_t *chunks; /* TP_BRIDGE_MAX_CHUNKS */
} in_flight_t;

struct tp_bridge_assembler
{
    uint32_t stream_id;
    tp_bridge_assembler_limits_t limits;
    tp_bridge_frame_handler_t handler;
    void *clientd;
    bool has_announce;
    uint64_t epoch;
    tp_bridge_announce_t announce;
    in_flight_t frames[MAX_IN_FLIGHT];
    uint64_t drops[TP_BRIDGE_DROP_KINDS];
    uint64_t delivered;
    chunk_record_t *sorted; /* scratch for the tiling check */
};

int tp_bridge_assembler_init(tp_bridge_assembler_t **out, uint32_t stream_id, const tp_bridge_assembler_limits_t *l,
    tp_bridge_frame_handler_t handler, void *clientd)
{
    *out = NULL;
    if (l->in_flight == 0 || l->in_flight > MAX_IN_FLIGHT || l->chunk_bytes == 0 || l->max_payload_bytes == 0)
    {
        TP_SET_ERR(TP_E_INVALID, "assembler limits: 1..%d frames in flight, nonzero chunk and payload sizes",
            MAX_IN_FLIGHT);
        return -1;
    }
    tp_bridge_assembler_t *a = NULL;
    if (tp_alloc((void **)&a, sizeof(*a)) < 0)
    {
        return -1;
    }
    a->stream_id = stream_id;
    a->limits = *l;
    a->handler = handler;
    a->clientd = clientd;
    if (tp_alloc((void **)&a->sorted, sizeof(chunk_record_t) * TP_BRIDGE_MAX_CHUNKS) < 0)
    {
        tp_bridge_assembler_close(a);
        return -1;
    }
    for (uint32_t i = 0; i < l->in_flight; i++)
    {
        if (tp_alloc((void **)&a->frames[i].payload, l->max_payload_bytes) < 0 ||
            tp_alloc((void **)&a->frames[i].chunks, sizeof(chunk_record_t) * TP_BRIDGE_MAX_CHUNKS) < 0)
        {
            tp_bridge_assembler_close(a);
            return -1;
        }
        memset(a->frames[i].chunks, 0, sizeof(chunk_record_t) * TP_BRIDGE_MAX_CHUNKS);
    }
    *out = a;
    return 0;
}

void tp_bridge_assembler_close(tp_bridge_assembler_t *a)
{
    if (a == NULL)
    {
        return;
    }
    for (uint32_t i = 0; i < MAX_IN_FLIGHT; i++)
    {
        tp_free(a->frames[i].payload);
        tp_free(a->frames[i].chunks);
    }
    tp_free(a->sorted);
    tp_free(a);
}

static void release(in_flight_t *f)
{
    if (f->is_used)
    {
        memset(f->chunks, 0, sizeof(chunk_record_t) * f->chunk_count);
    }
    f->is_used = false;
}

static void drop(tp_bridge_assembler_t *a, in_flight_t *f, tp_bridge_drop_t why)
{
    a->drops[why]++;
    if (f != NULL)
    {
        release(f);
    }
}

const char *tp_bridge_drop_name(tp_bridge_drop_t why)
{
    static const char *const names[TP_BRIDGE_DROP_KINDS] = { "malformed", "chunk_rule", "too_large", "crc",
        "no_announce", "epoch", "conflict", "incomplete", "header", "pool", "timeout", "busy" };
    return why < TP_BRIDGE_DROP_KINDS ? names[why] : "?";
}

bool tp_bridge_assembler_on_announce(tp_bridge_assembler_t *a, const tp_bridge_announce_t *announce)
{
    if (a->has_announce && announce->epoch < a->epoch)
    {
        return false; /* bridge spec 8: after a higher epoch, an older one is not taken back */
    }
    if (a->has_announce && announce->epoch != a->epoch)
    {
        for (uint32_t i = 0; i < a->limits.in_flight; i++)
        {
            if (a->frames[i].is_used)
            {
                drop(a, &a->frames[i], TP_BRIDGE_DROP_EPOCH); /* a new source epoch: what was in flight is gone */
            }
        }
    }
    a->has_announce = true;
    a->epoch = announce->epoch;
    a->announce = *announce;
    return true;
}

int tp_bridge_announce_decode(tp_bridge_announce_t *out, uint32_t *stream_id, const uint8_t *buffer, size_t length)
{
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0)
    {
        return -1;
    }
    memset(out, 0, sizeof(*out));
    *stream_id = tp_wire_shm_pool_announce_stream_id(&m);
    out->epoch = tp_wire_shm_pool_announce_epoch(&m);
    tp_wire_shm_pool_announce_payload_pools_t g;
    uint16_t count = tp_wire_shm_pool_announce_payload_pools(&m, &g);
    if (count > TP_BRIDGE_MAX_POOLS)
    {
        return -1;
    }
    while (tp_wire_shm_pool_announce_payload_pools_next(&g))
    {
        out->pools[out->pool_count].pool_id = tp_wire_shm_pool_announce_payload_pools_pool_id(&g);
        out->pools[out->pool_count].stride_bytes = tp_wire_shm_pool_announce_payload_pools_stride_bytes(&g);
        out->pool_count++;
    }
    return out->pool_count == count ? 0 : -1;
}

/* Bridge spec 6: the frame's source pool must be one the latest announce named, and the payload must fit its
 * stride. */
static bool fits_source_pool(const tp_bridge_assembler_t *a, uint16_t pool_id, uint32_t payload_length)
{
    for (uint32_t i = 0; i < a->announce.pool_count; i++)
    {
        if (a->announce.pools[i].pool_id == pool_id)
        {
            return payload_length <= a->announce.pools[i].stride_bytes;
        }
    }
    return false;
}

/* The frame (epoch, seq) in flight, or a slot for it: a free one, else the oldest (which is dropped). */
static in_flight_t *frame_for(tp_bridge_assembler_t *a, uint64_t seq, int64_t now_ns)
{
    in_flight_t *free_slot = NULL;
    in_flight_t *oldest = NULL;
    for (uint32_t i = 0; i < a->limits.in_flight; i++)
    {
        in_flight_t *f = &a->frames[i];
        if (f->is_used && f->epoch == a->epoch && f->seq == seq)
        {
            return f;
        }
        if (!f->is_used && free_slot == NULL)
        {
            free_slot = f;
        }
        if (f->is_used && (oldest == NULL || f->seq < oldest->seq))
        {
            oldest = f;
        }
    }
    in_flight_t *f = free_slot;
    if (f == NULL)
    {
        if (oldest->seq > seq)
        {
            return NULL; /* every slot holds a newer frame: this one is late */
        }
        drop(a, oldest, TP_BRIDGE_DROP_TIMEOUT); /* superseded before it completed */
        f = oldest;
    }
    f->is_used = true;
    f->epoch = a->epoch;
    f->seq = seq;
    f->chunk_count = 0;
    f->chunks_received = 0;
    f->bytes_received = 0;
    f->has_header = false;
    f->started_ns = now_ns;
    return f;
}

static int by_offset(const void *x, const void *y)
{
    const chunk_record_t *a = x;
    const chunk_record_t *b = y;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Every chunk is here: do they tile [0, payloadLength) exactly, and is the slot header sound? */
static void complete(tp_bridge_assembler_t *a, in_flight_t *f)
{
    memcpy(a->sorted, f->chunks, sizeof(chunk_record_t) * f->chunk_count);
    qsort(a->sorted, f->chunk_count, sizeof(chunk_record_t), by_offset);
    uint64_t at = 0;
    for (uint32_t i = 0; i < f->chunk_count; i++)
    {
        if (a->sorted[i].offset != at)
        {
            drop(a, f, TP_BRIDGE_DROP_INCOMPLETE); /* a hole or an overlap */
            return;
        }
        at += a->sorted[i].length;
    }
    if (at != f->payload_length)
    {
        drop(a, f, TP_BRIDGE_DROP_INCOMPLETE);
        return;
    }
    /* Bridge spec 6: values_len_bytes equals payloadLength, and the tensor header is valid for it. */
    tp_slot_fields_t fields;
    tp_slot_read_fields(f->header, &fields);
    uint32_t embedded_length;
    memcpy(&embedded_length, f->header + TP_SLOT_TENSOR_HEADER_OFFSET - 4, sizeof(embedded_length));
    tp_tensor_desc_t tensor;
    if (fields.values_len_bytes != f->payload_length || fields.payload_offset != 0 || embedded_length != 192 ||
        tp_tensor_header_check(f->header + TP_SLOT_TENSOR_HEADER_OFFSET, 192, fields.values_len_bytes, &tensor) < 0)
    {
        drop(a, f, TP_BRIDGE_DROP_HEADER);
        return;
    }
    if (!fits_source_pool(a, fields.pool_id, f->payload_length))
    {
        drop(a, f, TP_BRIDGE_DROP_POOL);
        return;
    }
    tp_bridge_frame_t frame = { .stream_id = a->stream_id, .epoch = f->epoch, .seq = f->seq, .trace_id = f->trace_id,
        .header = f->header, .payload = f->payload, .payload_length = f->payload_length };
    a->delivered++;
    a->handler(a->clientd, &frame, &tensor);
    release(f);
}

/* The chunk's own rules (bridge spec 5.2): what a chunk must say of itself, before it touches any frame. */
static int check_chunk(const tp_bridge_assembler_t *a, const tp_bridge_bridge_frame_chunk_t *m)
{
    uint32_t count = tp_bridge_bridge_frame_chunk_chunk_count(m);
    uint32_t index = tp_bridge_bridge_frame_chunk_chunk_index(m);
    uint32_t offset = tp_bridge_bridge_frame_chunk_chunk_offset(m);
    uint32_t length = tp_bridge_bridge_frame_chunk_chunk_length(m);
    uint32_t payload_length = tp_bridge_bridge_frame_chunk_payload_length(m);
    uint8_t has_header = tp_bridge_bridge_frame_chunk_header_included(m);
    tp_sbe_bytes_t header = tp_bridge_bridge_frame_chunk_header_bytes(m);
    tp_sbe_bytes_t payload = tp_bridge_bridge_frame_chunk_payload_bytes(m);
    if (payload_length > a->limits.max_payload_bytes || length > a->limits.chunk_bytes)
    {
        return TP_BRIDGE_DROP_TOO_LARGE;
    }
    if (count == 0 || count > TP_BRIDGE_MAX_CHUNKS || index >= count || has_header > 1 ||
        (index == 0) != (has_header == 1) || (index == 0 && offset != 0) ||
        header.length != (has_header ? TP_BRIDGE_SLOT_HEADER_BYTES : 0) || payload.length != length ||
        (uint64_t)offset + length > payload_length || (length == 0 && payload_length > 0))
    {
        return TP_BRIDGE_DROP_CHUNK_RULE;
    }
    if (a->limits.is_integrity)
    {
        uint32_t crc = tp_bridge_bridge_frame_chunk_payload_crc32c(m);
        uint32_t want = has_header ? tp_crc32c(0, header.data, header.length) : 0;
        want = tp_crc32c(want, payload.data, payload.length);
        want = want == 0 ? 1 : want;
        if (crc == 0 || crc != want)
        {
            return TP_BRIDGE_DROP_CRC;
        }
    }
    return -1;
}

void tp_bridge_assembler_on_chunk(tp_bridge_assembler_t *a, const uint8_t *buffer, size_t length, int64_t now_ns)
{
    tp_bridge_bridge_frame_chunk_t m;
    if (tp_bridge_bridge_frame_chunk_decode(&m, buffer, length) < 0 ||
        tp_bridge_bridge_frame_chunk_stream_id(&m) != a->stream_id)
    {
        drop(a, NULL, TP_BRIDGE_DROP_MALFORMED);
        return;
    }
    if (!a->has_announce)
    {
        drop(a, NULL, TP_BRIDGE_DROP_NO_ANNOUNCE);
        return;
    }
    if (tp_bridge_bridge_frame_chunk_epoch(&m) != a->epoch)
    {
        drop(a, NULL, TP_BRIDGE_DROP_EPOCH);
        return;
    }
    int rule = check_chunk(a, &m);
    if (rule >= 0)
    {
        drop(a, NULL, (tp_bridge_drop_t)rule);
        return;
    }
    in_flight_t *f = frame_for(a, tp_bridge_bridge_frame_chunk_seq(&m), now_ns);
    if (f == NULL)
    {
        drop(a, NULL, TP_BRIDGE_DROP_BUSY);
        return;
    }
    uint32_t count = tp_bridge_bridge_frame_chunk_chunk_count(&m);
    uint32_t index = tp_bridge_bridge_frame_chunk_chunk_index(&m);
    uint32_t offset = tp_bridge_bridge_frame_chunk_chunk_offset(&m);
    uint32_t chunk_length = tp_bridge_bridge_frame_chunk_chunk_length(&m);
    uint32_t payload_length = tp_bridge_bridge_frame_chunk_payload_length(&m);
    uint64_t trace_id = tp_bridge_bridge_frame_chunk_trace_id(&m);
    tp_sbe_bytes_t payload = tp_bridge_bridge_frame_chunk_payload_bytes(&m);
    if (f->chunk_count == 0)
    {
        f->chunk_count = count;
        f->payload_length = payload_length;
        f->trace_id = trace_id;
    }
    else if (f->chunk_count != count || f->payload_length != payload_length || f->trace_id != trace_id)
    {
        drop(a, f, TP_BRIDGE_DROP_CONFLICT); /* the frame's chunks disagree with each other */
        return;
    }
    chunk_record_t *c = &f->chunks[index];
    if (c->length != 0 || (index == 0 && f->has_header))
    {
        /* Seen before: an identical duplicate is ignored, anything else ends the frame. */
        bool is_same = c->offset == offset && c->length == chunk_length &&
            memcmp(f->payload + offset, payload.data, chunk_length) == 0 &&
            (index != 0 || memcmp(f->header, tp_bridge_bridge_frame_chunk_header_bytes(&m).data,
                               TP_BRIDGE_SLOT_HEADER_BYTES) == 0);
        if (!is_same)
        {
            drop(a, f, TP_BRIDGE_DROP_CONFLICT);
        }
        return;
    }
    if (f->bytes_received + chunk_length > payload_length)
    {
        drop(a, f, TP_BRIDGE_DROP_CONFLICT); /* more bytes than the frame has: chunks overlap */
        return;
    }
    memcpy(f->payload + offset, payload.data, chunk_length);
    c->offset = offset;
    c->length = chunk_length; /* 0 only for the single chunk of an empty frame (check_chunk) */
    if (index == 0)
    {
        memcpy(f->header, tp_bridge_bridge_frame_chunk_header_bytes(&m).data, TP_BRIDGE_SLOT_HEADER_BYTES);
        f->has_header = true;
    }
    f->chunks_received++;
    f->bytes_received += chunk_length;
    if (f->chunks_received == f->chunk_count)
    {
        complete(a, f);
    }
}

void tp_bridge_assembler_expire(tp_bridge_assembler_t *a, int64_t now_ns)
{
    for (uint32_t i = 0; i < a->limits.in_flight; i++)
    {
        in_flight_t *f = &a->frames[i];
        if (f->is_used && now_ns - f->started_ns > a->limits.timeout_ns)
        {
            drop(a, f, TP_BRIDGE_DROP_TIMEOUT);
        }
    }
}

void tp_bridge_assembler_counters(const tp_bridge_assembler_t *a, uint64_t drops[TP_BRIDGE_DROP_KINDS],
    uint64_t *delivered)
{
    memcpy(drops, a->drops, sizeof(a->drops));
    *delivered = a->delivered;
}
