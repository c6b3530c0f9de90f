/*
 * One bridge mapping's two ends (bridge spec 5-8). The bridge agent (tp_bridge.h) owns the transport
 * publications and subscriptions, shared by all mappings, and hands each end what is its own:
 *
 *   sender:   a consumer of the local stream. Each frame is copied out (payload and the 256-byte slot header,
 *             checked intact after the copy, so nothing torn is ever sent) and split into BridgeFrameChunk messages
 *             on the payload publication.
 *   receiver: the exclusive producer of the destination stream on its own host's driver. Forwarded announces gate
 *             and epoch the assembler (tp_bridge_chunk.h); each complete frame is written into the local pools
 *             (smallest stride that fits) under the source's seq, with the slot header's timestamp and meta_version,
 *             the tensor and the trace id, committed through the seqlock and described by a local FrameDescriptor.
 *
 * Both are duty cycles; neither waits: a frame the sender cannot send (back pressure) or the receiver cannot place
 * is dropped and counted.
 */
#ifndef TP_BRIDGE_MAPPING_H
#define TP_BRIDGE_MAPPING_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/tp_bridge_chunk.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

typedef struct tp_bridge_sender_counters
{
    uint64_t frames_sent;
    uint64_t chunks_sent;
    uint64_t bytes_sent;       /* payload bytes of the frames sent */
    uint64_t frames_lapped;    /* overwritten at the source while copied out */
    uint64_t frames_too_large; /* past bridge.max_payload_bytes or 65535 chunks */
    uint64_t frames_back_pressured; /* the transport refused, or pushed back past the stall time: not all sent */
    uint64_t frames_unannounced; /* of an epoch whose announce was not forwarded yet: the receiver would drop them */
} tp_bridge_sender_counters_t;

typedef struct tp_bridge_sender tp_bridge_sender_t;

typedef struct tp_bridge_sender_options
{
    uint32_t chunk_bytes;
    uint32_t max_payload_bytes;
    bool is_integrity;
    bool wants_progress; /* the source consumer follows progress, so that the producer sends FrameProgress */
    int64_t stall_ns;    /* a frame still not sent after this long is given up (0: 1 s) */
} tp_bridge_sender_options_t;

/* Consume stream_id through client (attaching in do_work) and send its frames on payload. */
int tp_bridge_sender_open(tp_bridge_sender_t **out, tp_client_t *client, uint32_t stream_id,
    tp_bus_publication_t *payload, const tp_bridge_sender_options_t *options);
/* Take source frames and send their chunks; a frame the transport will not take yet is continued next time. */
int tp_bridge_sender_do_work(tp_bridge_sender_t *s, int64_t now_ns);
/* The source's announce of epoch went to the receivers: frames of that epoch may follow it. */
void tp_bridge_sender_on_announce_forwarded(tp_bridge_sender_t *s, uint64_t epoch);
bool tp_bridge_sender_is_ready(const tp_bridge_sender_t *s);
uint32_t tp_bridge_sender_stream_id(const tp_bridge_sender_t *s);
void tp_bridge_sender_counters(const tp_bridge_sender_t *s, tp_bridge_sender_counters_t *out);
void tp_bridge_sender_close(tp_bridge_sender_t *s);

/* Offer, servicing the publication while back-pressured; false if it stays so or the offer failed. */
bool tp_bridge_offer(tp_bus_publication_t *pub, const uint8_t *buffer, size_t length);

typedef struct tp_bridge_receiver_counters
{
    uint64_t frames_rebuilt;      /* written into the local stream and described */
    uint64_t bytes_rebuilt;
    uint64_t frames_no_local_pool; /* complete, but larger than every local pool's stride (bridge spec 6) */
    uint64_t frames_not_attached; /* complete, but the local lease was not there (attaching, or a new epoch) */
    uint64_t announces;           /* forwarded announces taken */
    uint64_t announces_stale;     /* of an older epoch than one seen: ignored */
    uint64_t dest_reattaches;     /* the source started over: a new local epoch */
    uint64_t chunks;
    uint64_t drops[TP_BRIDGE_DROP_KINDS]; /* chunks or frames, by reason (tp_bridge_chunk.h) */
} tp_bridge_receiver_counters_t;

typedef struct tp_bridge_receiver tp_bridge_receiver_t;

/* Rebuild source_stream_id's frames into dest, a producer attached (or attaching) through client's driver, which
 * the receiver owns from now on (closed with it, even when opening fails). */
int tp_bridge_receiver_open(tp_bridge_receiver_t **out, tp_client_t *client, uint32_t source_stream_id,
    tp_producer_t *dest, const tp_bridge_assembler_limits_t *limits);
/* A chunk or a forwarded announce of the mapping's source stream (the agent dispatches by stream id). */
void tp_bridge_receiver_on_chunk(tp_bridge_receiver_t *r, const uint8_t *buffer, size_t length, int64_t now_ns);
void tp_bridge_receiver_on_announce(tp_bridge_receiver_t *r, const tp_bridge_announce_t *announce);
/* The source epoch of the latest announce taken (false before any). */
bool tp_bridge_receiver_source_epoch(const tp_bridge_receiver_t *r, uint64_t *epoch);
int tp_bridge_receiver_do_work(tp_bridge_receiver_t *r, int64_t now_ns);
bool tp_bridge_receiver_is_ready(const tp_bridge_receiver_t *r);
uint32_t tp_bridge_receiver_source_stream_id(const tp_bridge_receiver_t *r);
uint32_t tp_bridge_receiver_dest_stream_id(const tp_bridge_receiver_t *r);
void tp_bridge_receiver_counters(const tp_bridge_receiver_t *r, tp_bridge_receiver_counters_t *out);
void tp_bridge_receiver_close(tp_bridge_receiver_t *r);

#endif
