/*
 * One bridge mapping, both ends (bridge spec 5-8), over bus channels (aeron:udp between hosts):
 *
 *   sender:   a consumer of the local stream. Each frame is copied out (payload and the 256-byte slot header,
 *             checked intact after the copy, so nothing torn is ever sent), split into BridgeFrameChunk messages
 *             on the payload channel; the stream's ShmPoolAnnounce messages from the local driver are forwarded
 *             on the control channel.
 *   receiver: the exclusive producer of the destination stream on its own host's driver. Announces gate and
 *             epoch the assembler (tp_bridge_chunk.h); each complete frame is written into the local pools under
 *             the source's seq, with the slot header's timestamp and meta_version, the tensor and the trace id,
 *             committed through the seqlock and described by a local FrameDescriptor.
 *
 * Both are duty cycles (do_work); neither waits: a frame the sender cannot send (back pressure) or the receiver
 * cannot place is dropped and counted.
 */
#ifndef TP_BRIDGE_MAPPING_H
#define TP_BRIDGE_MAPPING_H

#include <stdbool.h>
#include <stdint.h>

#include "bridge/tp_bridge_chunk.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

typedef struct tp_bridge_channels
{
    const char *payload_channel;
    uint32_t payload_stream_id;
    const char *control_channel;
    uint32_t control_stream_id;
} tp_bridge_channels_t;

typedef struct tp_bridge_sender_counters
{
    uint64_t frames_sent;
    uint64_t chunks_sent;
    uint64_t frames_lapped;    /* overwritten at the source while copied out */
    uint64_t frames_dropped;   /* too large, or the transport stayed back-pressured */
    uint64_t announces_forwarded;
} tp_bridge_sender_counters_t;

typedef struct tp_bridge_sender tp_bridge_sender_t;

/* Consume stream_id through client; read the driver's announces on announce_channel / announce_stream_id. */
int tp_bridge_sender_open(tp_bridge_sender_t **out, tp_client_t *client, tp_bus_t *bus, uint32_t stream_id,
    const char *announce_channel, uint32_t announce_stream_id, const tp_bridge_channels_t *channels,
    uint32_t chunk_bytes, uint32_t max_payload_bytes, bool is_integrity);
int tp_bridge_sender_do_work(tp_bridge_sender_t *s);
void tp_bridge_sender_counters(const tp_bridge_sender_t *s, tp_bridge_sender_counters_t *out);
void tp_bridge_sender_close(tp_bridge_sender_t *s);

typedef struct tp_bridge_receiver_counters
{
    uint64_t frames_rebuilt;     /* written into the local stream and described */
    uint64_t frames_not_placed;  /* complete, but no local lease or no local pool for them */
    uint64_t announces;
    uint64_t dest_reattaches;    /* the source started over: a new local epoch */
} tp_bridge_receiver_counters_t;

typedef struct tp_bridge_receiver tp_bridge_receiver_t;

/* Rebuild source_stream_id's frames as dest_stream_id's, attached through client's driver. */
int tp_bridge_receiver_open(tp_bridge_receiver_t **out, tp_client_t *client, tp_bus_t *bus, uint32_t source_stream_id,
    uint32_t dest_stream_id, const tp_bridge_channels_t *channels, const tp_bridge_assembler_limits_t *limits);
int tp_bridge_receiver_do_work(tp_bridge_receiver_t *r, int64_t now_ns);
bool tp_bridge_receiver_is_ready(const tp_bridge_receiver_t *r);
void tp_bridge_receiver_counters(const tp_bridge_receiver_t *r, tp_bridge_receiver_counters_t *out,
    uint64_t drops[TP_BRIDGE_DROP_KINDS]);
void tp_bridge_receiver_close(tp_bridge_receiver_t *r);

#endif
