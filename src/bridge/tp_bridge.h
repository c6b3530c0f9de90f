/*
 * A bridge instance (bridge spec 1.1): every mapping of a tp_bridge_config_t, each sent or received on this host,
 * over one set of bridge channels shared by all mappings:
 *
 *   payload channel   BridgeFrameChunk (schema 902), told apart by their source stream id
 *   control channel   the source streams' ShmPoolAnnounce, and FrameProgress / QoS when forwarded (schema 900)
 *   metadata channel  DataSourceAnnounce / DataSourceMeta / meta blobs (and TraceLinkSet, schema 904)
 *
 * On the sending host the bridge reads the local driver's announces, the local metadata stream and the mappings'
 * source control streams, and forwards what belongs to a sent stream unchanged (its stream id is the source id
 * already). On the receiving host it checks each control message's schema before decoding it, hands chunks and
 * announces to the mapping of their source stream, and republishes forwarded metadata on the local metadata stream
 * (stream id rewritten to the mapping's metadata_stream_id) and forwarded progress / QoS on the mapping's
 * dest_control_stream_id / dest_qos_stream_id (stream id rewritten to dest_stream_id). Source pool announces are
 * never republished locally: the destination stream has its own driver and its own announces.
 *
 * The receiving mappings attach their destination streams at open (waiting for the driver's answer): a
 * destination that already has a producer fails the open; a mapping with dest_stream_id = 0 takes the first id of
 * bridge.dest_stream_id_range the driver grants (as a dynamic stream). Sending mappings attach to their sources in
 * the duty cycle, so a source may appear later.
 */
#ifndef TP_BRIDGE_H
#define TP_BRIDGE_H

#include <stdint.h>

#include "bridge/tp_bridge_config.h"
#include "bridge/tp_bridge_mapping.h"
#include "core/tp_strbuf.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

typedef struct tp_bridge_counters
{
    uint64_t announces_forwarded;  /* sender: local announces of sent streams put on the control channel */
    uint64_t metadata_forwarded;   /* sender: metadata messages put on the metadata channel */
    uint64_t tracelinks_forwarded;
    uint64_t progress_forwarded;   /* sender: FrameProgress put on the control channel */
    uint64_t qos_forwarded;
    uint64_t metadata_republished; /* receiver: forwarded metadata published locally */
    uint64_t tracelinks_republished;
    uint64_t progress_republished;
    uint64_t qos_republished;
    uint64_t progress_dropped;     /* receiver: forwarded progress of no mapping, or of another source epoch */
    uint64_t control_unknown;      /* receiver: control/metadata messages of other schemas or of no mapping */
    uint64_t forward_failed;       /* a forward or republish the transport refused (nobody subscribed locally,
                                    * no receiver connected, or back pressure that did not clear) */
} tp_bridge_counters_t;

typedef struct tp_bridge tp_bridge_t;

/* Open every mapping of config (copied) through client and bus. Fails with the mapping and the reason. */
int tp_bridge_open(tp_bridge_t **out, tp_client_t *client, tp_bus_t *bus, const tp_bridge_config_t *config);
/* One duty cycle at now_ns (CLOCK_MONOTONIC, or the caller's clock: assembly timeouts use it). */
int tp_bridge_do_work(tp_bridge_t *b, int64_t now_ns);
void tp_bridge_counters(const tp_bridge_t *b, tp_bridge_counters_t *out);
/* The configuration in force: dest_stream_id of a mapping allocated from the range is filled in. */
const tp_bridge_config_t *tp_bridge_config_of(const tp_bridge_t *b);
uint32_t tp_bridge_sender_count(const tp_bridge_t *b);
const tp_bridge_sender_t *tp_bridge_sender_at(const tp_bridge_t *b, uint32_t i);
uint32_t tp_bridge_receiver_count(const tp_bridge_t *b);
const tp_bridge_receiver_t *tp_bridge_receiver_at(const tp_bridge_t *b, uint32_t i);
/* Everything above as one JSON object (what `tp bridge status` reads). */
void tp_bridge_status_json(const tp_bridge_t *b, tp_strbuf_t *out);
void tp_bridge_close(tp_bridge_t *b);

#endif
