/* A bridge instance: all its mappings over shared bridge channels; see tp_bridge.h. */
#include "bridge/tp_bridge.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "tp_sbe_bridge.h"
#include "tp_sbe_tracelink.h"
#include "tp_sbe_wire.h"

#define ATTACH_TIMEOUT_NS (10 * TP_NS_PER_S)
#define MAX_RANGE_TRIES 64
#define MAX_LOCAL_STREAMS (2 * TP_BRIDGE_MAX_MAPPINGS)
#define MAX_MESSAGE 65536
#define POLL_LIMIT 64

/* A local control stream read (sending host) or written (receiving host) for progress or QoS forwarding. */
typedef struct local_stream
{
    struct tp_bridge *bridge;
    uint32_t stream_id;
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
} local_stream_t;

typedef enum forward_kind
{
    FORWARD_NONE = 0,
    FORWARD_METADATA,
    FORWARD_TRACELINK,
    FORWARD_PROGRESS,
    FORWARD_QOS,
} forward_kind_t;

struct tp_bridge
{
    tp_bridge_config_t config;
    tp_client_t *client;
    int64_t now_ns;
    /* sending host */
    tp_bus_publication_t *payload_pub;
    tp_bus_publication_t *control_pub;
    tp_bus_publication_t *metadata_pub;
    tp_bus_subscription_t *announce_sub;
    tp_bus_subscription_t *local_metadata_sub;
    tp_bridge_sender_t *senders[TP_BRIDGE_MAX_MAPPINGS];
    const tp_bridge_mapping_config_t *sender_maps[TP_BRIDGE_MAX_MAPPINGS];
    uint32_t sender_count;
    /* receiving host */
    tp_bus_subscription_t *payload_sub;
    tp_bus_subscription_t *control_sub;
    tp_bus_subscription_t *metadata_sub;
    tp_bus_publication_t *local_metadata_pub;
    tp_bridge_receiver_t *receivers[TP_BRIDGE_MAX_MAPPINGS];
    const tp_bridge_mapping_config_t *receiver_maps[TP_BRIDGE_MAX_MAPPINGS];
    uint32_t receiver_count;
    /* local control streams of progress / QoS forwarding, shared by mappings naming the same id */
    local_stream_t local[MAX_LOCAL_STREAMS];
    uint32_t local_count;
    uint8_t scratch[MAX_MESSAGE];
    tp_bridge_counters_t counters;
};

/* ---- what a message is, and where its stream id lies ---- */

/* The forwarding kind of a message and the offset of its stream id field; FORWARD_NONE for anything else (another
 * schema, or a message that does not decode: the schema id is checked before any decoding, bridge spec 7.2). */
static forward_kind_t classify(const uint8_t *buffer, size_t length, size_t *stream_id_at)
{
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0)
    {
        return FORWARD_NONE;
    }
    *stream_id_at = TP_SBE_HEADER_LENGTH; /* every forwarded message has its stream id first in its block */
    if (h.schema_id == TP_TRACELINK_SCHEMA_ID && h.template_id == TP_TRACELINK_TRACE_LINK_SET_TEMPLATE_ID)
    {
        tp_tracelink_trace_link_set_t m;
        return tp_tracelink_trace_link_set_decode(&m, buffer, length) == 0 ? FORWARD_TRACELINK : FORWARD_NONE;
    }
    if (h.schema_id != TP_WIRE_SCHEMA_ID)
    {
        return FORWARD_NONE;
    }
    switch (h.template_id)
    {
    case TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID: {
        tp_wire_data_source_announce_t m;
        return tp_wire_data_source_announce_decode(&m, buffer, length) == 0 ? FORWARD_METADATA : FORWARD_NONE;
    }
    case TP_WIRE_DATA_SOURCE_META_TEMPLATE_ID: {
        tp_wire_data_source_meta_t m;
        return tp_wire_data_source_meta_decode(&m, buffer, length) == 0 ? FORWARD_METADATA : FORWARD_NONE;
    }
    case TP_WIRE_META_BLOB_ANNOUNCE_TEMPLATE_ID: {
        tp_wire_meta_blob_announce_t m;
        return tp_wire_meta_blob_announce_decode(&m, buffer, length) == 0 ? FORWARD_METADATA : FORWARD_NONE;
    }
    case TP_WIRE_META_BLOB_CHUNK_TEMPLATE_ID: {
        tp_wire_meta_blob_chunk_t m;
        return tp_wire_meta_blob_chunk_decode(&m, buffer, length) == 0 ? FORWARD_METADATA : FORWARD_NONE;
    }
    case TP_WIRE_META_BLOB_COMPLETE_TEMPLATE_ID: {
        tp_wire_meta_blob_complete_t m;
        return tp_wire_meta_blob_complete_decode(&m, buffer, length) == 0 ? FORWARD_METADATA : FORWARD_NONE;
    }
    case TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID: {
        tp_wire_frame_progress_t m;
        return tp_wire_frame_progress_decode(&m, buffer, length) == 0 ? FORWARD_PROGRESS : FORWARD_NONE;
    }
    case TP_WIRE_QOS_PRODUCER_TEMPLATE_ID: {
        tp_wire_qos_producer_t m;
        return tp_wire_qos_producer_decode(&m, buffer, length) == 0 ? FORWARD_QOS : FORWARD_NONE;
    }
    case TP_WIRE_QOS_CONSUMER_TEMPLATE_ID: {
        tp_wire_qos_consumer_t m;
        return tp_wire_qos_consumer_decode(&m, buffer, length) == 0 ? FORWARD_QOS : FORWARD_NONE;
    }
    default:
        return FORWARD_NONE;
    }
}

static uint32_t stream_id_of(const uint8_t *buffer, size_t at)
{
    uint32_t id;
    memcpy(&id, buffer + at, sizeof(id)); /* SBE is little-endian, as we are */
    return id;
}

static bool is_enabled(const tp_bridge_config_t *c, forward_kind_t kind)
{
    return (kind == FORWARD_METADATA && c->is_metadata_forwarded) ||
        (kind == FORWARD_TRACELINK && c->is_tracelink_forwarded) || (kind == FORWARD_PROGRESS && c->forward_progress) ||
        (kind == FORWARD_QOS && c->forward_qos);
}

static const tp_bridge_mapping_config_t *sent_mapping(const tp_bridge_t *b, uint32_t source_stream_id)
{
    for (uint32_t i = 0; i < b->sender_count; i++)
    {
        if (b->sender_maps[i]->source_stream_id == source_stream_id)
        {
            return b->sender_maps[i];
        }
    }
    return NULL;
}

static int received_mapping(const tp_bridge_t *b, uint32_t source_stream_id)
{
    for (uint32_t i = 0; i < b->receiver_count; i++)
    {
        if (b->receiver_maps[i]->source_stream_id == source_stream_id)
        {
            return (int)i;
        }
    }
    return -1;
}

static void forward(tp_bridge_t *b, tp_bus_publication_t *pub, const uint8_t *buffer, size_t length, uint64_t *counter)
{
    if (tp_bridge_offer(pub, buffer, length))
    {
        (*counter)++;
    }
    else
    {
        b->counters.forward_failed++;
    }
}

/* ---- sending host: what the local driver and the local streams say about sent streams ---- */

static void on_local_announce(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_t *b = clientd;
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0)
    {
        return;
    }
    uint32_t stream_id = tp_wire_shm_pool_announce_stream_id(&m);
    for (uint32_t i = 0; i < b->sender_count; i++)
    {
        if (b->sender_maps[i]->source_stream_id == stream_id)
        {
            uint64_t before = b->counters.announces_forwarded;
            forward(b, b->control_pub, buffer, length, &b->counters.announces_forwarded); /* as it is (7.2) */
            if (b->counters.announces_forwarded != before)
            {
                tp_bridge_sender_on_announce_forwarded(b->senders[i], tp_wire_shm_pool_announce_epoch(&m));
            }
            return;
        }
    }
}

static void on_local_metadata(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_t *b = clientd;
    size_t at;
    forward_kind_t kind = classify(buffer, length, &at);
    if ((kind == FORWARD_METADATA || kind == FORWARD_TRACELINK) && is_enabled(&b->config, kind) &&
        sent_mapping(b, stream_id_of(buffer, at)) != NULL)
    {
        forward(b, b->metadata_pub, buffer, length,
            kind == FORWARD_METADATA ? &b->counters.metadata_forwarded : &b->counters.tracelinks_forwarded);
    }
}

/* Progress and QoS of a sent stream, on the mapping's source control (or QoS) stream: to the bridge control
 * channel, stream id = source_stream_id as it already is (bridge spec 9). */
static void on_local_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    local_stream_t *ls = clientd;
    tp_bridge_t *b = ls->bridge;
    size_t at;
    forward_kind_t kind = classify(buffer, length, &at);
    if ((kind != FORWARD_PROGRESS && kind != FORWARD_QOS) || !is_enabled(&b->config, kind))
    {
        return;
    }
    const tp_bridge_mapping_config_t *m = sent_mapping(b, stream_id_of(buffer, at));
    uint32_t want = m == NULL ? 0 : kind == FORWARD_PROGRESS ? m->source_control_stream_id : m->source_qos_stream_id;
    if (m != NULL && want == ls->stream_id)
    {
        forward(b, b->control_pub, buffer, length,
            kind == FORWARD_PROGRESS ? &b->counters.progress_forwarded : &b->counters.qos_forwarded);
    }
}

/* ---- receiving host ---- */

static void on_chunk(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_t *b = clientd;
    tp_bridge_bridge_frame_chunk_t m;
    int i = tp_bridge_bridge_frame_chunk_decode(&m, buffer, length) == 0
        ? received_mapping(b, tp_bridge_bridge_frame_chunk_stream_id(&m))
        : (b->receiver_count == 1 ? 0 : -1); /* a malformed chunk: counted by the only mapping there is */
    if (i >= 0)
    {
        tp_bridge_receiver_on_chunk(b->receivers[i], buffer, length, b->now_ns);
    }
    else
    {
        b->counters.control_unknown++; /* another instance's stream, or our own sent ones looped back */
    }
}

static local_stream_t *local_stream(tp_bridge_t *b, uint32_t stream_id)
{
    for (uint32_t i = 0; i < b->local_count; i++)
    {
        if (b->local[i].stream_id == stream_id)
        {
            return &b->local[i];
        }
    }
    return NULL;
}

/* Forwarded progress or QoS: republished on the destination's local stream with the stream id rewritten to
 * dest_stream_id, everything else as received (bridge spec 9). */
static void republish_control(tp_bridge_t *b, forward_kind_t kind, const uint8_t *buffer, size_t length, size_t at)
{
    int i = received_mapping(b, stream_id_of(buffer, at));
    if (i < 0 || length > sizeof(b->scratch))
    {
        b->counters.progress_dropped += kind == FORWARD_PROGRESS; /* the mapping cannot be determined */
        b->counters.control_unknown += kind != FORWARD_PROGRESS;
        return;
    }
    const tp_bridge_mapping_config_t *m = b->receiver_maps[i];
    uint64_t epoch;
    if (kind == FORWARD_PROGRESS)
    {
        tp_wire_frame_progress_t p;
        tp_wire_frame_progress_decode(&p, buffer, length);
        /* Progress of a source epoch the mapping is not assembling is of no frame it will ever publish. */
        if (!tp_bridge_receiver_source_epoch(b->receivers[i], &epoch) || tp_wire_frame_progress_epoch(&p) != epoch)
        {
            b->counters.progress_dropped++;
            return;
        }
    }
    local_stream_t *ls = local_stream(b, kind == FORWARD_PROGRESS ? m->dest_control_stream_id : m->dest_qos_stream_id);
    if (ls == NULL || ls->pub == NULL)
    {
        b->counters.progress_dropped += kind == FORWARD_PROGRESS; /* a control stream id of 0: not forwarded */
        return;
    }
    uint32_t dest = tp_bridge_receiver_dest_stream_id(b->receivers[i]);
    memcpy(b->scratch, buffer, length);
    memcpy(b->scratch + at, &dest, sizeof(dest));
    forward(b, ls->pub, b->scratch, length,
        kind == FORWARD_PROGRESS ? &b->counters.progress_republished : &b->counters.qos_republished);
}

static void on_bridge_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_t *b = clientd;
    tp_sbe_header_t h;
    /* Bridge spec 7.2: schema 900 and 902 share this channel; the schema id decides before anything is decoded. */
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID)
    {
        b->counters.control_unknown++;
        return;
    }
    if (h.template_id == TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID)
    {
        tp_bridge_announce_t announce;
        uint32_t stream_id;
        int i = tp_bridge_announce_decode(&announce, &stream_id, buffer, length) == 0 ? received_mapping(b, stream_id)
                                                                                      : -1;
        if (i >= 0)
        {
            tp_bridge_receiver_on_announce(b->receivers[i], &announce); /* kept, never republished locally */
        }
        else
        {
            b->counters.control_unknown++;
        }
        return;
    }
    size_t at;
    forward_kind_t kind = classify(buffer, length, &at);
    if ((kind == FORWARD_PROGRESS || kind == FORWARD_QOS) && is_enabled(&b->config, kind))
    {
        republish_control(b, kind, buffer, length, at);
        return;
    }
    b->counters.control_unknown++;
}

/* Forwarded metadata: republished on the local metadata stream, stream id rewritten to the mapping's
 * metadata_stream_id, meta_version and everything else as received (bridge spec 7.1). */
static void on_bridge_metadata(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_bridge_t *b = clientd;
    size_t at;
    forward_kind_t kind = classify(buffer, length, &at);
    int i = kind == FORWARD_NONE ? -1 : received_mapping(b, stream_id_of(buffer, at));
    if ((kind != FORWARD_METADATA && kind != FORWARD_TRACELINK) || !is_enabled(&b->config, kind) || i < 0 ||
        length > sizeof(b->scratch))
    {
        b->counters.control_unknown++;
        return;
    }
    const tp_bridge_mapping_config_t *m = b->receiver_maps[i];
    uint32_t id = m->metadata_stream_id != 0 ? m->metadata_stream_id : tp_bridge_receiver_dest_stream_id(b->receivers[i]);
    memcpy(b->scratch, buffer, length);
    memcpy(b->scratch + at, &id, sizeof(id));
    forward(b, b->local_metadata_pub, b->scratch, length,
        kind == FORWARD_METADATA ? &b->counters.metadata_republished : &b->counters.tracelinks_republished);
}

/* ---- open ---- */

static int open_local_stream(tp_bridge_t *b, tp_bus_t *bus, uint32_t stream_id, bool is_read)
{
    if (stream_id == 0)
    {
        return 0;
    }
    local_stream_t *ls = local_stream(b, stream_id);
    if (ls == NULL)
    {
        ls = &b->local[b->local_count++]; /* at most two per mapping: fits */
        ls->bridge = b;
        ls->stream_id = stream_id;
    }
    const char *channel = b->config.driver_control_channel;
    if (is_read && ls->sub == NULL)
    {
        return tp_bus_subscription_open(&ls->sub, bus, channel, (int32_t)stream_id, NULL, NULL, NULL);
    }
    if (!is_read && ls->pub == NULL)
    {
        return tp_bus_publication_open(&ls->pub, bus, channel, (int32_t)stream_id, false);
    }
    return 0;
}

static bool is_id_taken(const tp_bridge_t *b, uint32_t id)
{
    for (uint32_t i = 0; i < b->config.mapping_count; i++)
    {
        if (!b->config.mappings[i].is_sender && b->config.mappings[i].dest_stream_id == id)
        {
            return true;
        }
    }
    return false;
}

/* The destination stream: the configured one (which must have no producer: bridge spec 4), or the first id of
 * bridge.dest_stream_id_range the driver grants. Either may be a stream of the driver's configuration or one it
 * creates (its policies.allow_dynamic_streams and driver.stream_id_range decide). */
static int attach_dest(tp_bridge_t *b, tp_bridge_mapping_config_t *m, tp_producer_t **dest)
{
    tp_producer_options_t options;
    tp_producer_options_init(&options);
    options.create_stream = true;
    if (m->dest_stream_id != 0)
    {
        return tp_producer_open(dest, b->client, m->dest_stream_id, &options, ATTACH_TIMEOUT_NS);
    }
    const tp_config_range_t *range = &b->config.dest_stream_id_range;
    int tries = 0;
    for (uint64_t id = range->start; id <= range->end && tries < MAX_RANGE_TRIES; id++)
    {
        if (is_id_taken(b, (uint32_t)id))
        {
            continue;
        }
        tries++;
        if (tp_producer_open(dest, b->client, (uint32_t)id, &options, ATTACH_TIMEOUT_NS) == 0)
        {
            m->dest_stream_id = (uint32_t)id;
            m->metadata_stream_id = m->metadata_stream_id != 0 ? m->metadata_stream_id : (uint32_t)id;
            return 0;
        }
        if (tp_errcode() == TP_E_TIMEOUT)
        {
            return -1; /* no driver: every other id would wait as long */
        }
    }
    TP_APPEND_ERR("no stream id of bridge.dest_stream_id_range %u-%u was granted (%d tried)", range->start,
        range->end, tries);
    return -1;
}

static int open_receivers(tp_bridge_t *b, tp_bus_t *bus)
{
    const tp_bridge_config_t *c = &b->config;
    tp_bridge_assembler_limits_t limits = { .chunk_bytes = tp_bridge_config_chunk_bytes(c),
        .max_payload_bytes = c->max_payload_bytes, .is_integrity = c->integrity_crc32c,
        .timeout_ns = (int64_t)c->assembly_timeout_ms * TP_NS_PER_MS, .in_flight = 4 };
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        tp_bridge_mapping_config_t *m = &b->config.mappings[i];
        if (m->is_sender)
        {
            continue;
        }
        tp_producer_t *dest = NULL;
        tp_bridge_receiver_t *r = NULL;
        if (attach_dest(b, m, &dest) < 0 || tp_bridge_receiver_open(&r, b->client, m->source_stream_id, dest, &limits) < 0)
        {
            TP_APPEND_ERR("mapping %u -> %u (receive)", m->source_stream_id, m->dest_stream_id);
            return -1;
        }
        b->receivers[b->receiver_count] = r;
        b->receiver_maps[b->receiver_count++] = m;
        if ((c->forward_progress && open_local_stream(b, bus, m->dest_control_stream_id, false) < 0) ||
            (c->forward_qos && open_local_stream(b, bus, m->dest_qos_stream_id, false) < 0))
        {
            return -1;
        }
    }
    if (b->receiver_count == 0)
    {
        return 0;
    }
    bool has_metadata = c->is_metadata_forwarded || c->is_tracelink_forwarded;
    return tp_bus_subscription_open(&b->payload_sub, bus, c->payload_channel, (int32_t)c->payload_stream_id, NULL,
               NULL, NULL) < 0 ||
            tp_bus_subscription_open(&b->control_sub, bus, c->control_channel, (int32_t)c->control_stream_id, NULL,
                NULL, NULL) < 0 ||
            (has_metadata &&
                (tp_bus_subscription_open(&b->metadata_sub, bus, c->metadata_channel, (int32_t)c->metadata_stream_id,
                     NULL, NULL, NULL) < 0 ||
                    tp_bus_publication_open(&b->local_metadata_pub, bus, c->local_metadata_channel,
                        (int32_t)c->source_metadata_stream_id, false) < 0))
        ? -1
        : 0;
}

static int open_senders(tp_bridge_t *b, tp_bus_t *bus)
{
    const tp_bridge_config_t *c = &b->config;
    bool has_senders = false;
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        has_senders |= c->mappings[i].is_sender;
    }
    if (!has_senders)
    {
        return 0;
    }
    bool has_metadata = c->is_metadata_forwarded || c->is_tracelink_forwarded;
    uint32_t announce_id = c->driver_announce_stream_id != 0 ? c->driver_announce_stream_id : c->driver_control_stream_id;
    if (tp_bus_publication_open(&b->payload_pub, bus, c->payload_channel, (int32_t)c->payload_stream_id, false) < 0 ||
        tp_bus_publication_open(&b->control_pub, bus, c->control_channel, (int32_t)c->control_stream_id, false) < 0 ||
        tp_bus_subscription_open(&b->announce_sub, bus, c->driver_control_channel, (int32_t)announce_id, NULL, NULL,
            NULL) < 0 ||
        (has_metadata &&
            (tp_bus_publication_open(&b->metadata_pub, bus, c->metadata_channel, (int32_t)c->metadata_stream_id,
                 false) < 0 ||
                tp_bus_subscription_open(&b->local_metadata_sub, bus, c->local_metadata_channel,
                    (int32_t)c->source_metadata_stream_id, NULL, NULL, NULL) < 0)))
    {
        return -1;
    }
    for (uint32_t i = 0; i < c->mapping_count; i++)
    {
        const tp_bridge_mapping_config_t *m = &c->mappings[i];
        if (!m->is_sender)
        {
            continue;
        }
        tp_bridge_sender_t *s = NULL;
        tp_bridge_sender_options_t options = { .chunk_bytes = tp_bridge_config_chunk_bytes(c),
            .max_payload_bytes = c->max_payload_bytes, .is_integrity = c->integrity_crc32c,
            .wants_progress = c->forward_progress,
            .stall_ns = (int64_t)c->assembly_timeout_ms * TP_NS_PER_MS };
        if (tp_bridge_sender_open(&s, b->client, m->source_stream_id, b->payload_pub, &options) < 0)
        {
            TP_APPEND_ERR("mapping %u -> %u (send)", m->source_stream_id, m->dest_stream_id);
            return -1;
        }
        b->senders[b->sender_count] = s;
        b->sender_maps[b->sender_count++] = m;
        if ((c->forward_progress && open_local_stream(b, bus, m->source_control_stream_id, true) < 0) ||
            (c->forward_qos && open_local_stream(b, bus, m->source_qos_stream_id, true) < 0))
        {
            return -1;
        }
    }
    return 0;
}

int tp_bridge_open(tp_bridge_t **out, tp_client_t *client, tp_bus_t *bus, const tp_bridge_config_t *config)
{
    *out = NULL;
    tp_bridge_t *b = NULL;
    if (tp_alloc((void **)&b, sizeof(*b)) < 0)
    {
        return -1;
    }
    b->config = *config;
    b->client = client;
    if (tp_bridge_config_check_directions(config) < 0 || open_receivers(b, bus) < 0 || open_senders(b, bus) < 0)
    {
        TP_APPEND_ERR("bridge %s", config->instance_id);
        tp_bridge_close(b);
        return -1;
    }
    *out = b;
    return 0;
}

/* ---- duty cycle ---- */

static int polled(int n)
{
    return n > 0 ? n : 0;
}

int tp_bridge_do_work(tp_bridge_t *b, int64_t now_ns)
{
    b->now_ns = now_ns;
    int work = 0;
    if (b->sender_count > 0)
    {
        work += polled(tp_bus_poll(b->announce_sub, on_local_announce, b, POLL_LIMIT));
        if (b->local_metadata_sub != NULL)
        {
            work += polled(tp_bus_poll(b->local_metadata_sub, on_local_metadata, b, POLL_LIMIT));
        }
        for (uint32_t i = 0; i < b->sender_count; i++)
        {
            work += tp_bridge_sender_do_work(b->senders[i], now_ns);
        }
        tp_bus_publication_do_work(b->payload_pub);
        tp_bus_publication_do_work(b->control_pub);
        if (b->metadata_pub != NULL)
        {
            tp_bus_publication_do_work(b->metadata_pub);
        }
    }
    for (uint32_t i = 0; i < b->local_count; i++)
    {
        local_stream_t *ls = &b->local[i];
        if (ls->sub != NULL)
        {
            work += polled(tp_bus_poll(ls->sub, on_local_control, ls, POLL_LIMIT));
        }
    }
    if (b->receiver_count > 0)
    {
        work += polled(tp_bus_poll(b->control_sub, on_bridge_control, b, POLL_LIMIT));
        if (b->metadata_sub != NULL)
        {
            work += polled(tp_bus_poll(b->metadata_sub, on_bridge_metadata, b, POLL_LIMIT));
        }
        work += polled(tp_bus_poll(b->payload_sub, on_chunk, b, 1024));
        for (uint32_t i = 0; i < b->receiver_count; i++)
        {
            work += tp_bridge_receiver_do_work(b->receivers[i], now_ns);
        }
    }
    return work;
}

void tp_bridge_counters(const tp_bridge_t *b, tp_bridge_counters_t *out)
{
    *out = b->counters;
}

const tp_bridge_config_t *tp_bridge_config_of(const tp_bridge_t *b)
{
    return &b->config;
}

uint32_t tp_bridge_sender_count(const tp_bridge_t *b)
{
    return b->sender_count;
}

const tp_bridge_sender_t *tp_bridge_sender_at(const tp_bridge_t *b, uint32_t i)
{
    return i < b->sender_count ? b->senders[i] : NULL;
}

uint32_t tp_bridge_receiver_count(const tp_bridge_t *b)
{
    return b->receiver_count;
}

const tp_bridge_receiver_t *tp_bridge_receiver_at(const tp_bridge_t *b, uint32_t i)
{
    return i < b->receiver_count ? b->receivers[i] : NULL;
}

void tp_bridge_close(tp_bridge_t *b)
{
    if (b == NULL)
    {
        return;
    }
    for (uint32_t i = 0; i < b->sender_count; i++)
    {
        tp_bridge_sender_close(b->senders[i]);
    }
    for (uint32_t i = 0; i < b->receiver_count; i++)
    {
        tp_bridge_receiver_close(b->receivers[i]);
    }
    for (uint32_t i = 0; i < b->local_count; i++)
    {
        tp_bus_subscription_close(b->local[i].sub);
        tp_bus_publication_close(b->local[i].pub);
    }
    tp_bus_publication_close(b->payload_pub);
    tp_bus_publication_close(b->control_pub);
    tp_bus_publication_close(b->metadata_pub);
    tp_bus_subscription_close(b->announce_sub);
    tp_bus_subscription_close(b->local_metadata_sub);
    tp_bus_subscription_close(b->payload_sub);
    tp_bus_subscription_close(b->control_sub);
    tp_bus_subscription_close(b->metadata_sub);
    tp_bus_publication_close(b->local_metadata_pub);
    tp_free(b);
}
