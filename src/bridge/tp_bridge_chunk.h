/*
 * Bridge frame chunks (bridge spec 5, 6): the sender splits a frame into BridgeFrameChunk messages, the receiver
 * validates every chunk and reassembles frames by (epoch, seq) and offset, in any order, until each is complete or
 * times out.
 *
 * Chunk sizing (the spec leaves chunk 0 open, since its 256-byte slot header does not fit beside chunk_bytes of
 * payload in mtu - 128): chunk 0 carries the slot header and chunk_bytes - 256 bytes of payload, every other chunk
 * chunk_bytes, so that every chunk is at most chunk_bytes + 256 bytes of data and none needs the transport to
 * fragment it when chunk_bytes is the MTU-derived default. Chunks go out in index order and tile the payload.
 *
 * The assembler owns a fixed number of in-flight frames, each with a buffer of max_payload_bytes and a record per
 * chunk, allocated once; nothing is allocated per chunk. A frame is delivered only when every chunk arrived, the
 * chunks tile the payload exactly, the trace id agreed on all of them, and the slot header passed the wire rules
 * (values_len_bytes equal to payloadLength, a valid tensor header).
 */
#ifndef TP_BRIDGE_CHUNK_H
#define TP_BRIDGE_CHUNK_H

#include <stdbool.h>
#include <stdint.h>

#include "tensorpool/tp_tensor.h"

#define TP_BRIDGE_SLOT_HEADER_BYTES 256
#define TP_BRIDGE_MAX_CHUNKS 65535

/* A frame to send, or a frame reassembled. */
typedef struct tp_bridge_frame
{
    uint32_t stream_id;
    uint64_t epoch;
    uint64_t seq;
    uint64_t trace_id;     /* 0: none */
    const uint8_t *header; /* the 256-byte slot header block */
    const uint8_t *payload;
    uint32_t payload_length;
} tp_bridge_frame_t;

/* How many chunks the frame takes at chunk_bytes per chunk (chunk 0 gives 256 of them to the header). */
uint32_t tp_bridge_chunk_count(uint32_t payload_length, uint32_t chunk_bytes);

/* Encode chunk `index` of frame into buf. Returns its length, or -1 when buf is too small or index is out of range.
 * With integrity, payloadCrc32c is the CRC32C of the header (chunk 0) and the chunk's payload bytes. */
int64_t tp_bridge_chunk_encode(uint8_t *buf, size_t capacity, const tp_bridge_frame_t *frame, uint32_t index,
    uint32_t chunk_bytes, bool is_integrity);

typedef enum tp_bridge_drop
{
    TP_BRIDGE_DROP_MALFORMED = 0,  /* did not decode */
    TP_BRIDGE_DROP_CHUNK_RULE,     /* count, index, offset, length, header or payload field out of rule */
    TP_BRIDGE_DROP_TOO_LARGE,      /* payloadLength or chunkLength past the configured or local bounds */
    TP_BRIDGE_DROP_CRC,            /* integrity on: a missing or wrong CRC32C */
    TP_BRIDGE_DROP_NO_ANNOUNCE,    /* no ShmPoolAnnounce for the stream yet */
    TP_BRIDGE_DROP_EPOCH,          /* not the epoch the latest announce named */
    TP_BRIDGE_DROP_CONFLICT,       /* a chunk disagreed with one already placed, or the trace id changed */
    TP_BRIDGE_DROP_INCOMPLETE,     /* the chunks did not tile the payload */
    TP_BRIDGE_DROP_HEADER,         /* the slot header broke a wire rule */
    TP_BRIDGE_DROP_POOL,           /* its source pool is not in the announce, or the payload exceeds its stride */
    TP_BRIDGE_DROP_TIMEOUT,        /* still incomplete at the assembly timeout */
    TP_BRIDGE_DROP_BUSY,           /* every in-flight slot held a newer frame */
    TP_BRIDGE_DROP_KINDS
} tp_bridge_drop_t;

/* The reason's name for status reports ("crc", "timeout", ...). */
const char *tp_bridge_drop_name(tp_bridge_drop_t why);

typedef struct tp_bridge_assembler_limits
{
    uint32_t chunk_bytes;       /* largest chunkLength accepted (the MTU-derived or configured chunk size) */
    uint32_t max_payload_bytes; /* bridge.max_payload_bytes, and the largest local stride */
    bool is_integrity;
    int64_t timeout_ns;         /* assembly timeout */
    uint32_t in_flight;         /* frames assembled at once (1..16) */
} tp_bridge_assembler_limits_t;

#define TP_BRIDGE_MAX_POOLS 16

/* What the receiver keeps of the latest forwarded ShmPoolAnnounce: the epoch and the source pools. */
typedef struct tp_bridge_announce
{
    uint64_t epoch;
    uint32_t pool_count;
    struct
    {
        uint16_t pool_id;
        uint32_t stride_bytes;
    } pools[TP_BRIDGE_MAX_POOLS];
} tp_bridge_announce_t;

typedef void (*tp_bridge_frame_handler_t)(void *clientd, const tp_bridge_frame_t *frame,
    const tp_tensor_desc_t *tensor);

typedef struct tp_bridge_assembler tp_bridge_assembler_t;

int tp_bridge_assembler_init(tp_bridge_assembler_t **out, uint32_t stream_id, const tp_bridge_assembler_limits_t *l,
    tp_bridge_frame_handler_t handler, void *clientd);
void tp_bridge_assembler_close(tp_bridge_assembler_t *a);
/* A (forwarded) ShmPoolAnnounce for the stream: chunks of its epoch are accepted from now on and frames are checked
 * against its pools; frames of another epoch in flight are dropped. An announce of an older epoch than the latest
 * is ignored (false): a higher epoch, once seen, is never given up for an older one. */
bool tp_bridge_assembler_on_announce(tp_bridge_assembler_t *a, const tp_bridge_announce_t *announce);
/* Decode a ShmPoolAnnounce message into what the assembler keeps; -1 if it is not one, or names too many pools. */
int tp_bridge_announce_decode(tp_bridge_announce_t *out, uint32_t *stream_id, const uint8_t *buffer, size_t length);
/* One BridgeFrameChunk message. Calls the handler when it completes a frame. */
void tp_bridge_assembler_on_chunk(tp_bridge_assembler_t *a, const uint8_t *buffer, size_t length, int64_t now_ns);
/* Drop frames older than the timeout. */
void tp_bridge_assembler_expire(tp_bridge_assembler_t *a, int64_t now_ns);
/* Drops by reason, and frames delivered. */
void tp_bridge_assembler_counters(const tp_bridge_assembler_t *a, uint64_t drops[TP_BRIDGE_DROP_KINDS],
    uint64_t *delivered);

#endif
