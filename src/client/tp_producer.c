/*
 * The producer: a producer lease, its regions mapped writable, and the copy path (wire spec 8.3): slot index =
 * seq mod nslots, the payload into the same index of the smallest pool that fits, the header, the commit, and
 * only then FrameDescriptor on the descriptor stream, encoded straight into the bus log.
 */
#include <inttypes.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "client/tp_metadata_internal.h"
#include "client/tp_producer_consumers.h"
#include "client/tp_qos_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_copy.h"
#include "core/tp_err.h"
#include "shm/tp_header_ring.h"
#include "tensorpool/tp_trace.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "wire/tp_tensor.h"

#define DESCRIPTOR_BYTES (TP_SBE_HEADER_LENGTH + TP_WIRE_FRAME_DESCRIPTOR_BLOCK_LENGTH)

struct tp_producer
{
    tp_client_lease_t lease;
    tp_bus_publication_t *descriptors;
    uint64_t next_seq;
    uint64_t last_timestamp_ns; /* the last frame's slot timestamp: the next may not be older (wire spec 15.7) */
    bool is_publish_time_omitted; /* descriptors carry a null timestamp_ns (tp_producer_options_t) */
    uint32_t mask;
    uint32_t generation;
    bool has_claim;
    tp_metadata_publisher_t *meta;
    tp_qos_sender_t qos;
    tp_consumer_streams_t consumers;
    /* progress of the claimed frame (wire spec 10.2.2) */
    bool is_described;   /* its header is written (tp_producer_describe) */
    bool progress_started; /* STARTED went out for it */
    bool progress_reported; /* the application reported progress for it */
    uint32_t described_length;
    uint64_t progress_latest; /* the bytes last reported by the application */
    uint64_t progress_bytes;  /* the bytes in the last report sent */
    int64_t progress_ns;      /* when that report went out */
    int64_t progress_tat_ns;  /* the stream's progress rate cap (GCRA: theoretical arrival time of the next) */
    /* tracing (tp_trace.h): ids minted for frames offered without one */
    bool is_tracing;
    bool has_trace_node;
    tp_trace_id_gen_t trace_gen;
    uint64_t last_trace_id;
    /* the work of tp_producer_agent */
    tp_produce_fn_t produce;
    void *produce_clientd;
};

/* Hellos, consumer configs and revocations on the stream: the per-consumer descriptor streams follow them. */
static void on_control(void *owner, const tp_control_event_t *event)
{
    tp_producer_t *p = owner;
    tp_consumer_streams_on_event(&p->consumers, event);
}

void tp_producer_options_init(tp_producer_options_t *options)
{
    memset(options, 0, sizeof(*options));
}

int tp_producer_open(tp_producer_t **out, tp_client_t *client, uint32_t stream_id,
    const tp_producer_options_t *options, int64_t timeout_ns)
{
    *out = NULL;
    tp_producer_t *p = NULL;
    if (tp_alloc((void **)&p, sizeof(*p)) < 0)
    {
        return -1;
    }
    if (tp_bus_publication_open(&p->descriptors, client->bus, client->config.descriptor_channel,
            (int32_t)client->config.descriptor_stream_id, false) < 0)
    {
        tp_free(p);
        return -1;
    }
    if (tp_client_conductor_read_hellos(client->conductor) < 0 || tp_qos_sender_open(&p->qos, client) < 0 ||
        tp_metadata_publisher_open(&p->meta, client, stream_id) < 0)
    {
        tp_qos_sender_close(&p->qos);
        tp_bus_publication_close(p->descriptors);
        tp_free(p);
        return -1;
    }
    uint8_t publish_mode = options != NULL && options->create_stream ? TP_DRIVER_PUBLISH_MODE_EXISTING_OR_CREATE
                                                                      : TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING;
    if (tp_client_lease_open(&p->lease, client, stream_id, TP_DRIVER_ROLE_PRODUCER, publish_mode, timeout_ns) < 0)
    {
        tp_metadata_publisher_close(p->meta);
        tp_qos_sender_close(&p->qos);
        tp_bus_publication_close(p->descriptors);
        tp_free(p);
        return -1;
    }
    tp_consumer_streams_init(&p->consumers, client);
    p->is_publish_time_omitted = options != NULL && options->omit_publish_time;
    p->lease.observer = on_control;
    p->lease.owner = p;
    *out = p;
    return 0;
}

int tp_producer_attach(tp_producer_t **out, tp_client_t *client, uint32_t stream_id, int64_t timeout_ns)
{
    return tp_producer_open(out, client, stream_id, NULL, timeout_ns < 0 ? 0 : timeout_ns);
}

int tp_producer_attach_async(tp_producer_t **out, tp_client_t *client, uint32_t stream_id)
{
    return tp_producer_open(out, client, stream_id, NULL, -1);
}

/* A FrameDescriptor of this producer's stream and epoch into buf (DESCRIPTOR_BYTES). */
static bool encode_descriptor(const tp_producer_t *p, uint8_t *buf, size_t capacity, uint64_t seq,
    uint64_t timestamp_ns, uint32_t meta_version, uint64_t trace_id)
{
    tp_wire_frame_descriptor_enc_t e;
    tp_wire_frame_descriptor_enc_begin(&e, buf, capacity);
    tp_wire_frame_descriptor_set_stream_id(&e, p->lease.stream_id);
    tp_wire_frame_descriptor_set_epoch(&e, p->lease.epoch);
    tp_wire_frame_descriptor_set_seq(&e, seq);
    tp_wire_frame_descriptor_set_timestamp_ns(&e, p->is_publish_time_omitted ? UINT64_MAX : timestamp_ns);
    tp_wire_frame_descriptor_set_meta_version(&e, meta_version);
    tp_wire_frame_descriptor_set_trace_id(&e, trace_id);
    return tp_wire_frame_descriptor_enc_finish(&e) == DESCRIPTOR_BYTES;
}

static int64_t publish_descriptor(tp_producer_t *p, uint64_t seq, uint64_t timestamp_ns, uint32_t meta_version,
    uint64_t trace_id)
{
    tp_bus_claim_t claim;
    int64_t rc = tp_bus_try_claim(p->descriptors, DESCRIPTOR_BYTES, &claim);
    if (rc == TP_BUS_NOT_CONNECTED)
    {
        /* Nobody on the shared stream, but perhaps consumers of their own streams. */
        uint8_t buf[DESCRIPTOR_BYTES];
        if (p->consumers.open_count > 0 &&
            encode_descriptor(p, buf, sizeof(buf), seq, timestamp_ns, meta_version, trace_id))
        {
            tp_consumer_streams_publish(&p->consumers, buf, DESCRIPTOR_BYTES, timestamp_ns);
        }
        return 0; /* nobody subscribes to descriptors: the frame is in SHM for whoever comes */
    }
    if (rc < 0)
    {
        return rc;
    }
    if (!encode_descriptor(p, claim.buffer, claim.length, seq, timestamp_ns, meta_version, trace_id))
    {
        tp_bus_abort(p->descriptors, &claim);
        return -1;
    }
    if (p->consumers.open_count > 0)
    {
        /* The same descriptor to the per-consumer streams (copied before the claim is handed over). */
        uint8_t copy[DESCRIPTOR_BYTES];
        memcpy(copy, claim.buffer, DESCRIPTOR_BYTES);
        int64_t rc2 = tp_bus_commit(p->descriptors, &claim);
        tp_consumer_streams_publish(&p->consumers, copy, DESCRIPTOR_BYTES, timestamp_ns);
        return rc2;
    }
    return tp_bus_commit(p->descriptors, &claim);
}

static void send_progress(tp_producer_t *p, uint64_t seq, uint64_t bytes, uint8_t state)
{
    uint8_t buf[TP_SBE_HEADER_LENGTH + TP_WIRE_FRAME_PROGRESS_BLOCK_LENGTH];
    tp_wire_frame_progress_enc_t e;
    tp_wire_frame_progress_enc_begin(&e, buf, sizeof(buf));
    tp_wire_frame_progress_set_stream_id(&e, p->lease.stream_id);
    tp_wire_frame_progress_set_epoch(&e, p->lease.epoch);
    tp_wire_frame_progress_set_seq(&e, seq);
    tp_wire_frame_progress_set_payload_bytes_filled(&e, bytes);
    tp_wire_frame_progress_set_state(&e, state);
    int64_t n = tp_wire_frame_progress_enc_finish(&e);
    if (n > 0 && tp_consumer_streams_send_progress(&p->consumers, buf, (size_t)n))
    {
        tp_client_conductor_send(p->lease.client->conductor, buf, (size_t)n);
    }
}

/* Common checks before a claim: attached, layout of the current attachment, no claim outstanding. */
static int claim_ready(tp_producer_t *p)
{
    tp_client_lease_t *l = &p->lease;
    if (!l->is_valid)
    {
        return TP_PRODUCER_NOT_ATTACHED; /* expected while attaching: a sentinel, nothing formatted */
    }
    if (p->has_claim)
    {
        TP_SET_ERR(TP_E_STATE, "a claimed slot (seq %" PRIu64 ") must be committed or aborted first", p->next_seq);
        return -1;
    }
    if (p->generation != l->generation)
    {
        p->generation = l->generation; /* a new epoch, perhaps a new layout; seq keeps increasing */
        p->mask = l->nslots - 1;
    }
    return 0;
}

/* Claim slot seq mod nslots in pool index `pool`: the slot reads as being written from now on. */
static void claim_slot(tp_producer_t *p, int pool, tp_claim_t *claim)
{
    tp_client_lease_t *l = &p->lease;
    uint64_t seq = p->next_seq;
    uint32_t index = (uint32_t)(seq & p->mask);
    tp_slot_begin_write(tp_header_slot_at(l->header.base, index), seq);
    claim->buffer = tp_pool_slot_at(l->pools[pool].base, index, l->strides[pool]);
    claim->capacity = l->strides[pool];
    claim->pool_id = l->pool_ids[pool];
    claim->seq = seq;
    claim->generation_ = l->generation;
    claim->timestamp_ns = 0;
    p->is_described = false;
    p->progress_started = false;
    p->progress_reported = false;
    p->progress_latest = 0;
    p->progress_bytes = 0;
    p->has_claim = true;
}

int tp_producer_try_claim(tp_producer_t *p, uint16_t pool_id, tp_claim_t *claim)
{
    int ready = claim_ready(p);
    if (ready < 0)
    {
        return ready;
    }
    for (uint32_t i = 0; i < p->lease.pool_count; i++)
    {
        if (p->lease.pool_ids[i] == pool_id)
        {
            claim_slot(p, (int)i, claim);
            return 0;
        }
    }
    TP_SET_ERR(TP_E_INVALID, "stream %" PRIu32 " has no pool %u", p->lease.stream_id, pool_id);
    return -1;
}

int tp_producer_try_claim_by_size(tp_producer_t *p, uint32_t length, tp_claim_t *claim)
{
    int ready = claim_ready(p);
    if (ready < 0)
    {
        return ready;
    }
    tp_client_lease_t *l = &p->lease;
    int pool = tp_pool_select(l->strides, (int)l->pool_count, length);
    if (pool < 0)
    {
        TP_SET_ERR(TP_E_INVALID, "a %" PRIu32 "-byte payload fits no pool of stream %" PRIu32
            " (largest stride %" PRIu32 ")", length, l->stream_id, l->strides[l->pool_count - 1]);
        return -1;
    }
    claim_slot(p, pool, claim);
    return 0;
}

/* Commit with the tensor already validated (by tp_producer_commit, or by offer_frame before it claimed). */
static int64_t commit_validated(tp_producer_t *p, tp_claim_t *claim, uint32_t length, const tp_tensor_desc_t *tensor,
    uint32_t meta_version, uint64_t trace_id);

int64_t tp_producer_commit(tp_producer_t *p, tp_claim_t *claim, uint32_t length, const tp_tensor_desc_t *tensor,
    uint32_t meta_version, uint64_t trace_id)
{
    if (p->has_claim && claim->seq == p->next_seq && tp_tensor_validate_length(tensor, length) < 0)
    {
        tp_producer_abort(p, claim);
        return -1;
    }
    return commit_validated(p, claim, length, tensor, meta_version, trace_id);
}

static int64_t commit_validated(tp_producer_t *p, tp_claim_t *claim, uint32_t length, const tp_tensor_desc_t *tensor,
    uint32_t meta_version, uint64_t trace_id)
{
    tp_client_lease_t *l = &p->lease;
    if (!p->has_claim || claim->seq != p->next_seq)
    {
        TP_SET_ERR(TP_E_STATE, "no such claimed slot to commit");
        return -1;
    }
    if (!l->is_valid || claim->generation_ != l->generation)
    {
        p->has_claim = false; /* the regions it pointed into belong to a lost attachment */
        TP_SET_ERR(TP_E_STATE, "the lease was lost while the slot was claimed; the frame is dropped");
        return -1;
    }
    if (length > claim->capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "%" PRIu32 " bytes committed into a %" PRIu32 "-byte slot", length, claim->capacity);
        tp_producer_abort(p, claim);
        return -1;
    }
    uint64_t timestamp_ns = claim->timestamp_ns;
    if (timestamp_ns == 0)
    {
        timestamp_ns = (uint64_t)tp_client_now(l->client); /* vDSO by default, no system call */
        timestamp_ns = timestamp_ns > p->last_timestamp_ns ? timestamp_ns : p->last_timestamp_ns;
    }
    else if (timestamp_ns < p->last_timestamp_ns)
    {
        TP_SET_ERR(TP_E_INVALID, "capture timestamp %" PRIu64 " ns is older than the previous frame's %" PRIu64
            " ns; slot timestamps never go back (wire spec 15.7)", timestamp_ns, p->last_timestamp_ns);
        tp_producer_abort(p, claim);
        return -1;
    }
    uint64_t seq = claim->seq;
    uint32_t index = (uint32_t)(seq & p->mask);
    if (meta_version == 0)
    {
        meta_version = tp_metadata_version(p->meta); /* wire spec 10.3.2: the version that applies to the frame */
    }
    uint8_t *slot = tp_header_slot_at(l->header.base, index);
    uint8_t tensor_header[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(tensor_header, tensor);
    tp_slot_fields_t fields = { .values_len_bytes = length, .payload_slot = index, .pool_id = claim->pool_id,
        .payload_offset = 0, .meta_version = meta_version, .timestamp_ns = timestamp_ns };
    tp_slot_write_header(slot, &fields, tensor_header);
    tp_slot_commit(slot, seq);
    if (p->progress_started)
    {
        send_progress(p, seq, length, TP_WIRE_FRAME_PROGRESS_STATE_COMPLETE); /* then the descriptor */
        p->progress_started = false;
    }
    p->has_claim = false;
    p->next_seq++;
    p->last_timestamp_ns = timestamp_ns;
    if (trace_id == 0 && p->is_tracing)
    {
        trace_id = tp_trace_id_next(&p->trace_gen, tp_clock_realtime_ns()); /* T-6.3-1: a root frame (vDSO) */
    }
    p->last_trace_id = trace_id;
    /* Wire spec 8.3, 10.2.1: the descriptor goes out only after the commit, stamped with the publish time. */
    int64_t rc = publish_descriptor(p, seq, (uint64_t)tp_client_now(l->client), meta_version, trace_id);
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_STATE, "frame %" PRIu64 " is committed but its descriptor was not published (bus %" PRId64 ")",
            seq, rc);
        return -1;
    }
    return (int64_t)seq;
}

/* The claimed slot's header, written now so that consumers following its progress can interpret the prefix. */
int tp_producer_describe(tp_producer_t *p, tp_claim_t *claim, uint32_t length, const tp_tensor_desc_t *tensor,
    uint32_t meta_version)
{
    tp_client_lease_t *l = &p->lease;
    if (!p->has_claim || claim->seq != p->next_seq || !l->is_valid || claim->generation_ != l->generation)
    {
        TP_SET_ERR(TP_E_STATE, "no such claimed slot to describe");
        return -1;
    }
    if (length > claim->capacity || tp_tensor_validate_length(tensor, length) < 0)
    {
        if (length > claim->capacity)
        {
            TP_SET_ERR(TP_E_INVALID, "%" PRIu32 " bytes described for a %" PRIu32 "-byte slot", length,
                claim->capacity);
        }
        return -1;
    }
    uint32_t index = (uint32_t)(claim->seq & p->mask);
    uint8_t tensor_header[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(tensor_header, tensor);
    tp_slot_fields_t fields = { .values_len_bytes = length, .payload_slot = index, .pool_id = claim->pool_id,
        .payload_offset = 0, .meta_version = meta_version != 0 ? meta_version : tp_metadata_version(p->meta),
        .timestamp_ns = claim->timestamp_ns };
    tp_slot_write_header(tp_header_slot_at(l->header.base, index), &fields, tensor_header);
    p->is_described = true;
    p->described_length = length;
    return 0;
}

/* Wire spec 10.2.2: the stream's progress reports, whichever frame they belong to, at most
 * TP_PROGRESS_MAX_RATE_HZ on average with bursts of TP_PROGRESS_BURST (a generic cell rate: each report moves the
 * theoretical arrival time one period on; one is allowed while that time is less than a burst ahead of now). */
static bool progress_rate_allows(tp_producer_t *p, int64_t now_ns)
{
    const int64_t period = TP_NS_PER_S / TP_PROGRESS_MAX_RATE_HZ;
    if (p->progress_tat_ns - now_ns > (TP_PROGRESS_BURST - 1) * period)
    {
        return false;
    }
    p->progress_tat_ns = (p->progress_tat_ns > now_ns ? p->progress_tat_ns : now_ns) + period;
    return true;
}

/* Send the frame's latest reported state if the policy lets it go now: STARTED first, then PROGRESS once the
 * interval elapsed and the bytes advanced by the delta, all under the stream's rate cap. An update held back is
 * not lost: the latest state goes out from tp_producer_do_work as soon as it may. 1 when a report went out. */
static int progress_flush(tp_producer_t *p, int64_t now_ns)
{
    int64_t interval_ns;
    uint64_t delta;
    if (!p->has_claim || !p->progress_reported ||
        !tp_consumer_streams_progress_policy(&p->consumers, &interval_ns, &delta))
    {
        return 0;
    }
    if (p->progress_started && (p->progress_latest - p->progress_bytes < delta || now_ns - p->progress_ns < interval_ns))
    {
        return 0; /* throttled */
    }
    if (!progress_rate_allows(p, now_ns))
    {
        return 0; /* over the stream's cap: the latest state waits */
    }
    send_progress(p, p->next_seq, p->progress_latest,
        p->progress_started ? TP_WIRE_FRAME_PROGRESS_STATE_PROGRESS : TP_WIRE_FRAME_PROGRESS_STATE_STARTED);
    p->progress_started = true;
    p->progress_ns = now_ns;
    p->progress_bytes = p->progress_latest;
    return 1;
}

int tp_producer_progress(tp_producer_t *p, tp_claim_t *claim, uint64_t bytes_filled)
{
    if (!p->has_claim || claim->seq != p->next_seq || !p->is_described)
    {
        TP_SET_ERR(TP_E_STATE, "progress needs a claimed slot described with tp_producer_describe");
        return -1;
    }
    /* Wire spec 10.2.2: never beyond the frame's length, never backwards. */
    if (bytes_filled > p->described_length || bytes_filled < p->progress_latest)
    {
        TP_SET_ERR(TP_E_INVALID, "progress %" PRIu64 " bytes: the frame has %" PRIu32 " and %" PRIu64
            " were reported already", bytes_filled, p->described_length, p->progress_latest);
        return -1;
    }
    p->progress_latest = bytes_filled;
    p->progress_reported = true;
    return progress_flush(p, tp_client_now(p->lease.client));
}

int tp_producer_abort(tp_producer_t *p, tp_claim_t *claim)
{
    if (!p->has_claim || claim->seq != p->next_seq)
    {
        TP_SET_ERR(TP_E_STATE, "no such claimed slot to abort");
        return -1;
    }
    /* The slot stays "being written" for a sequence never published: readers of its older frame drop it, as
     * they would have once it was overwritten. The sequence is used again by the next claim. */
    p->has_claim = false;
    return 0;
}

int64_t tp_producer_offer_frame_at(tp_producer_t *p, const void *payload, uint32_t length,
    const tp_tensor_desc_t *tensor, uint32_t meta_version, uint64_t trace_id, uint64_t timestamp_ns)
{
    if (tp_tensor_validate_length(tensor, length) < 0)
    {
        return -1;
    }
    if (timestamp_ns != 0 && timestamp_ns < p->last_timestamp_ns)
    {
        TP_SET_ERR(TP_E_INVALID, "capture timestamp %" PRIu64 " ns is older than the previous frame's %" PRIu64
            " ns; slot timestamps never go back (wire spec 15.7)", timestamp_ns, p->last_timestamp_ns);
        return -1; /* refused before a slot is claimed or a byte copied */
    }
    tp_claim_t claim;
    int claimed = tp_producer_try_claim_by_size(p, length, &claim);
    if (claimed < 0)
    {
        return claimed;
    }
    tp_copy_payload(claim.buffer, payload, length);
    claim.timestamp_ns = timestamp_ns;
    return commit_validated(p, &claim, length, tensor, meta_version, trace_id);
}

int64_t tp_producer_offer_frame(tp_producer_t *p, const void *payload, uint32_t length, const tp_tensor_desc_t *tensor,
    uint32_t meta_version, uint64_t trace_id)
{
    return tp_producer_offer_frame_at(p, payload, length, tensor, meta_version, trace_id, 0);
}

int tp_producer_do_work(tp_producer_t *p)
{
    int64_t now = tp_client_now(p->lease.client);
    int work = tp_client_lease_tick(&p->lease, now);
    if (p->lease.is_valid)
    {
        work += tp_bus_publication_do_work(p->descriptors);
        tp_metadata_publisher_set_identity(p->meta, p->lease.client_id, p->lease.epoch);
        work += tp_metadata_publisher_do_work(p->meta);
        work += tp_consumer_streams_tick(&p->consumers, now);
        if (p->progress_reported && (!p->progress_started || p->progress_latest > p->progress_bytes))
        {
            work += progress_flush(p, now); /* a held-back update, once its interval elapsed */
        }
        if (tp_qos_sender_due(&p->qos, now))
        {
            /* Wire spec 10.4.2: the sequence of the newest frame published (0 before the first). */
            tp_qos_send_producer(&p->qos, p->lease.stream_id, p->lease.client_id, p->lease.epoch,
                p->next_seq > 0 ? p->next_seq - 1 : 0);
            work++;
        }
    }
    return work;
}

tp_metadata_publisher_t *tp_producer_metadata(tp_producer_t *p)
{
    if (p->lease.is_valid)
    {
        tp_metadata_publisher_set_identity(p->meta, p->lease.client_id, p->lease.epoch);
    }
    return p->meta;
}

uint32_t tp_producer_stream_id(const tp_producer_t *p)
{
    return p->lease.stream_id;
}

/* The node id is fixed the first time tracing needs it and kept for the producer's life (T-6.2-2), even when a
 * later attachment is granted another. */
static int fix_trace_node(tp_producer_t *p, uint32_t node_id)
{
    if (tp_trace_id_gen_init(&p->trace_gen, node_id) < 0)
    {
        TP_APPEND_ERR("tracing on stream %" PRIu32, p->lease.stream_id);
        return -1;
    }
    p->has_trace_node = true;
    return 0;
}

int tp_producer_set_tracing(tp_producer_t *p, bool is_enabled)
{
    if (is_enabled && !p->has_trace_node)
    {
        if (p->lease.node_id == 0)
        {
            TP_SET_ERR(TP_E_STATE, "stream %" PRIu32 ": no node id yet to mint trace ids with (attach first, or set "
                "one with tp_producer_set_trace_node_id)", p->lease.stream_id);
            return -1;
        }
        if (fix_trace_node(p, p->lease.node_id) < 0)
        {
            return -1;
        }
    }
    p->is_tracing = is_enabled;
    return 0;
}

int tp_producer_set_trace_node_id(tp_producer_t *p, uint32_t node_id)
{
    return fix_trace_node(p, node_id);
}

uint32_t tp_producer_node_id(const tp_producer_t *p)
{
    return p->has_trace_node ? p->trace_gen.node_id : p->lease.node_id;
}

uint64_t tp_producer_last_trace_id(const tp_producer_t *p)
{
    return p->last_trace_id;
}

uint64_t tp_producer_epoch(const tp_producer_t *p)
{
    return p->lease.epoch;
}

uint32_t tp_producer_consumer_streams(const tp_producer_t *p)
{
    return p->consumers.open_count;
}

uint32_t tp_producer_consumer_requests(const tp_producer_t *p, tp_consumer_request_t *out, uint32_t capacity)
{
    uint32_t n = 0;
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        const tp_consumer_stream_t *e = &p->consumers.entries[i];
        if (e->in_use)
        {
            if (n < capacity)
            {
                uint8_t mode = e->told_mode != 0 ? e->told_mode : e->mode;
                out[n] = (tp_consumer_request_t){ .consumer_id = e->consumer_id,
                    .is_rate_limited = mode == TP_WIRE_MODE_RATE_LIMITED, .max_rate_hz = e->max_rate_hz };
            }
            n++;
        }
    }
    return n;
}

int tp_producer_skip_to(tp_producer_t *p, uint64_t seq)
{
    if (p->has_claim)
    {
        TP_SET_ERR(TP_E_STATE, "a claimed slot (seq %" PRIu64 ") must be committed or aborted first", p->next_seq);
        return -1;
    }
    if (seq < p->next_seq)
    {
        TP_SET_ERR(TP_E_INVALID, "sequence %" PRIu64 " is behind the next one, %" PRIu64 ": sequences never go back",
            seq, p->next_seq);
        return -1;
    }
    p->next_seq = seq;
    return 0;
}

int tp_producer_follow_seq(tp_producer_t **producer, tp_client_t *client, uint64_t seq)
{
    tp_producer_t *p = *producer;
    if (seq >= p->next_seq)
    {
        return tp_producer_skip_to(p, seq);
    }
    tp_producer_t *fresh = NULL;
    if (tp_producer_attach_async(&fresh, client, p->lease.stream_id) < 0)
    {
        return -1;
    }
    tp_producer_close(p);
    *producer = fresh;
    return 1;
}

uint64_t tp_producer_next_seq(const tp_producer_t *p)
{
    return p->next_seq;
}

uint32_t tp_producer_pools(const tp_producer_t *p, uint16_t *pool_ids, uint32_t *strides, uint32_t capacity)
{
    const tp_client_lease_t *l = &p->lease;
    if (!l->is_valid)
    {
        return 0;
    }
    for (uint32_t i = 0; i < l->pool_count && i < capacity; i++)
    {
        pool_ids[i] = l->pool_ids[i];
        strides[i] = l->strides[i];
    }
    return l->pool_count;
}

const char *tp_producer_last_error(const tp_producer_t *p)
{
    return p->lease.last_error;
}

uint64_t tp_producer_lease_id(const tp_producer_t *p)
{
    return p->lease.lease_id;
}

bool tp_producer_is_attached(const tp_producer_t *p)
{
    return p->lease.is_valid;
}

int tp_producer_close(tp_producer_t *p)
{
    if (p == NULL)
    {
        return 0;
    }
    tp_consumer_streams_close(&p->consumers);
    p->lease.observer = NULL;
    tp_bus_publication_close(p->descriptors);
    tp_qos_sender_close(&p->qos);
    tp_metadata_publisher_close(p->meta);
    tp_client_lease_close(&p->lease);
    tp_free(p);
    return 0;
}

static int producer_agent_work(void *state, int64_t now_ns)
{
    (void)now_ns;
    tp_producer_t *p = state;
    int work = p->produce(p->produce_clientd, p);
    if (work < 0)
    {
        return -1;
    }
    return work + tp_producer_do_work(p);
}

void tp_producer_agent(tp_agent_t *out, tp_producer_t *p, tp_produce_fn_t produce, void *clientd)
{
    p->produce = produce;
    p->produce_clientd = clientd;
    memset(out, 0, sizeof(*out));
    out->name = "tp-producer";
    out->do_work = producer_agent_work;
    out->state = p;
}

int tp_producer_payload_region(const tp_producer_t *p, const tp_claim_t *claim, tp_region_info_t *out)
{
    return tp_client_lease_region_of(&p->lease, claim->buffer, out);
}
