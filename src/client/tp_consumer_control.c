/*
 * The consumer's control side (wire spec 10.1.2, 10.1.3, 5, 11): ConsumerHello at every attachment and every
 * hello period; the ConsumerConfig the driver answers with for this consumer, which grants a per-consumer
 * descriptor stream (the consumer then reads its descriptors there, and keeps the shared control stream for
 * everything else) or declines it (it stays on the shared stream); and local rate gating for RATE_LIMITED
 * without a stream of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/tp_consumer_internal.h"
#include "core/tp_clock.h"
#include "core/tp_log.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_wire.h"
#include "wire/tp_tensor.h"

_Static_assert((int)TP_PROGRESS_STARTED == (int)TP_WIRE_FRAME_PROGRESS_STATE_STARTED &&
        (int)TP_PROGRESS_PROGRESS == (int)TP_WIRE_FRAME_PROGRESS_STATE_PROGRESS &&
        (int)TP_PROGRESS_COMPLETE == (int)TP_WIRE_FRAME_PROGRESS_STATE_COMPLETE,
    "tp_progress_t.state carries the wire values");

/* An id to ask for when any will do: a request needs a non-zero id (wire spec 10.1.2); the driver hands out the
 * lowest free id of its range for one outside it. */
#define ANY_STREAM_ID 1

void tp_consumer_options_init(tp_consumer_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = TP_CONSUMER_STREAM;
    o->max_outstanding_seq_gap = TP_CONSUMER_DEFAULT_MAX_SEQ_GAP;
}

/* Wire spec 10.2.2: the prefix is layout-safe when the tensor is contiguous with payload_offset 0, or when
 * progress counts whole rows or columns (a valid progress stride): then whole units only. 0 otherwise. */
static uint64_t safe_prefix(const tp_tensor_desc_t *t, uint32_t payload_offset, uint64_t bytes_filled)
{
    if (t->progress_unit != TP_PROGRESS_UNIT_NONE)
    {
        return t->progress_stride_bytes > 0 ? bytes_filled / t->progress_stride_bytes * t->progress_stride_bytes : 0;
    }
    if (payload_offset != 0)
    {
        return 0;
    }
    tp_tensor_desc_t contiguous = *t;
    memset(contiguous.strides, 0, sizeof(contiguous.strides));
    int64_t have[TP_MAX_DIMS], want[TP_MAX_DIMS];
    uint64_t span;
    if (tp_tensor_resolve(t, have, &span) < 0 || tp_tensor_resolve(&contiguous, want, &span) < 0 ||
        memcmp(have, want, sizeof(int64_t) * t->ndims) != 0)
    {
        return 0;
    }
    return bytes_filled;
}

static int pool_of(const tp_client_lease_t *l, uint16_t pool_id)
{
    for (uint32_t i = 0; i < l->pool_count; i++)
    {
        if (l->pool_ids[i] == pool_id)
        {
            return (int)i;
        }
    }
    return -1;
}

/* A FrameProgress of our stream: check it against the slot (it must be that frame, being written or committed),
 * its length and the frame's earlier reports; then hand the safe prefix to the handler. */
static void on_progress(tp_consumer_t *c, const tp_control_event_t *e)
{
    tp_client_lease_t *l = &c->lease;
    if (!c->options.supports_progress || c->progress_handler == NULL || !l->is_valid || e->epoch != l->epoch)
    {
        return; /* not opted in (wire spec 10.2.2), or not the mapped epoch */
    }
    if (e->seq != c->progress_seq)
    {
        c->progress_seq = e->seq;
        c->progress_bytes = 0;
        c->progress_seq_dropped = false;
    }
    bool ok = !c->progress_seq_dropped && e->progress_state >= TP_WIRE_FRAME_PROGRESS_STATE_STARTED &&
              e->progress_state <= TP_WIRE_FRAME_PROGRESS_STATE_COMPLETE && e->bytes_filled >= c->progress_bytes;
    uint32_t index = (uint32_t)(e->seq & (l->nslots - 1));
    const uint8_t *slot = tp_header_slot_at(l->header.base, index);
    uint64_t word = tp_slot_read_begin(slot);
    tp_progress_t pr;
    memset(&pr, 0, sizeof(pr));
    tp_slot_fields_t fields;
    int pool = -1;
    if (ok)
    {
        /* The slot must hold this frame (being written, or already committed). */
        ok = word >> 1 == e->seq;
    }
    if (ok)
    {
        tp_slot_read_fields(slot, &fields);
        pool = pool_of(l, fields.pool_id);
        ok = pool >= 0 && e->bytes_filled <= fields.values_len_bytes &&
             tp_slot_payload_is_valid(&fields, index, l->nslots, l->strides[pool]) &&
             tp_tensor_header_decode(slot + TP_SLOT_TENSOR_HEADER_OFFSET, TP_TENSOR_HEADER_BYTES, &pr.tensor) == 0 &&
             tp_slot_read_still(slot, word);
    }
    if (!ok)
    {
        /* Wire spec 10.2.2: backwards, past the length, or not this frame: drop the frame's progress. */
        c->progress_seq_dropped = true;
        c->counters.progress_dropped++;
        return;
    }
    c->progress_bytes = e->bytes_filled;
    pr.stream_id = l->stream_id;
    pr.epoch = l->epoch;
    pr.seq = e->seq;
    pr.state = e->progress_state;
    pr.bytes_filled = e->bytes_filled;
    pr.values_len = fields.values_len_bytes;
    pr.prefix_bytes = safe_prefix(&pr.tensor, fields.payload_offset, e->bytes_filled);
    pr.prefix = pr.prefix_bytes > 0 ? tp_pool_slot_at(l->pools[pool].base, index, l->strides[pool]) : NULL;
    c->counters.progress++;
    c->progress_handler(c->progress_clientd, &pr);
}

/* The driver's ConsumerConfig for this consumer, and the producer's FrameProgress (through the client's
 * control-stream notices). */
static void on_control(void *owner, const tp_control_event_t *e)
{
    tp_consumer_t *c = owner;
    if (e->kind == TP_CONTROL_EVENT_PROGRESS)
    {
        if (c->own_control == NULL)
        {
            on_progress(c, e); /* with a control stream of its own, progress comes from there only */
        }
        return;
    }
    if (e->kind != TP_CONTROL_EVENT_CONSUMER_CONFIG || e->client_id != c->lease.client_id || !c->lease.is_valid)
    {
        return;
    }
    /* Wire spec 10.1.3: an empty channel (or id 0) is the only "not assigned"; a half is treated as a decline. */
    bool granted = e->descriptor_channel[0] != '\0' && e->descriptor_stream_id != 0;
    c->grant.is_pending = true;
    c->grant.mode = e->mode;
    c->grant.descriptor_stream_id = granted ? e->descriptor_stream_id : 0;
    snprintf(c->grant.descriptor_channel, sizeof(c->grant.descriptor_channel), "%s",
        granted ? e->descriptor_channel : "");
    bool control_granted = e->control_channel[0] != '\0' && e->control_stream_id != 0;
    c->grant.control_stream_id = control_granted ? e->control_stream_id : 0;
    snprintf(c->grant.control_channel, sizeof(c->grant.control_channel), "%s",
        control_granted ? e->control_channel : "");
}

void tp_consumer_control_init(tp_consumer_t *c, const tp_consumer_options_t *options)
{
    if (options != NULL)
    {
        c->options = *options;
    }
    else
    {
        tp_consumer_options_init(&c->options);
    }
    const char *channel = c->options.descriptor_channel;
    tp_client_t *client = c->lease.client;
    snprintf(c->options_channel, sizeof(c->options_channel), "%s",
        channel != NULL && channel[0] != '\0' ? channel : client->config.descriptor_channel);
    c->options.descriptor_channel = c->options_channel;
    const char *control = c->options.control_channel;
    snprintf(c->options_control_channel, sizeof(c->options_control_channel), "%s",
        control != NULL && control[0] != '\0' ? control : client->config.control_channel);
    c->options.control_channel = c->options_control_channel;
    c->hello_period_ns = (int64_t)client->config.qos_period_ms * TP_NS_PER_MS;
    c->lease.observer = on_control;
    c->lease.owner = c;
}

static void send_hello(tp_consumer_t *c)
{
    uint8_t buf[512];
    const tp_consumer_options_t *o = &c->options;
    bool asks = o->per_consumer_descriptors;
    tp_wire_consumer_hello_enc_t e;
    tp_wire_consumer_hello_enc_begin(&e, buf, sizeof(buf));
    tp_wire_consumer_hello_set_stream_id(&e, c->lease.stream_id);
    tp_wire_consumer_hello_set_consumer_id(&e, c->lease.client_id);
    tp_wire_consumer_hello_set_supports_shm(&e, TP_WIRE_BOOL_TRUE);
    tp_wire_consumer_hello_set_supports_progress(&e, o->supports_progress ? TP_WIRE_BOOL_TRUE : TP_WIRE_BOOL_FALSE);
    tp_wire_consumer_hello_set_mode(&e, o->mode == TP_CONSUMER_RATE_LIMITED ? TP_WIRE_MODE_RATE_LIMITED
                                                                           : TP_WIRE_MODE_STREAM);
    tp_wire_consumer_hello_set_max_rate_hz(&e, o->max_rate_hz);
    tp_wire_consumer_hello_set_expected_layout_version(&e, TP_LAYOUT_VERSION);
    /* Wire spec 10.1.2: hints are null unless given. */
    tp_wire_consumer_hello_set_progress_interval_us(&e,
        o->supports_progress && o->progress_interval_us != 0 ? o->progress_interval_us : UINT32_MAX);
    tp_wire_consumer_hello_set_progress_bytes_delta(&e,
        o->supports_progress && o->progress_bytes_delta != 0 ? o->progress_bytes_delta : UINT32_MAX);
    tp_wire_consumer_hello_set_progress_major_delta_units(&e, UINT32_MAX);
    /* Wire spec 10.1.2: a channel never goes without a non-zero stream id, nor the reverse. */
    tp_wire_consumer_hello_set_descriptor_stream_id(&e,
        asks ? (o->descriptor_stream_id != 0 ? o->descriptor_stream_id : ANY_STREAM_ID) : 0);
    bool asks_control = o->per_consumer_control;
    tp_wire_consumer_hello_set_control_stream_id(&e,
        asks_control ? (o->control_stream_id != 0 ? o->control_stream_id : ANY_STREAM_ID) : 0);
    tp_wire_consumer_hello_put_descriptor_channel(&e, asks ? c->options_channel : "",
        asks ? strlen(c->options_channel) : 0);
    tp_wire_consumer_hello_put_control_channel(&e, asks_control ? c->options_control_channel : "",
        asks_control ? strlen(c->options_control_channel) : 0);
    int64_t n = tp_wire_consumer_hello_enc_finish(&e);
    if (n > 0)
    {
        tp_client_conductor_send(c->lease.client->conductor, buf, (size_t)n);
    }
}

static void close_own(tp_consumer_t *c)
{
    tp_bus_subscription_close(c->own);
    c->own = NULL;
    c->own_stream_id = 0;
    tp_bus_subscription_close(c->own_control);
    c->own_control = NULL;
    c->own_control_stream_id = 0;
}

/* Wire spec 5: a granted control stream carries this consumer's FrameProgress; everything else stays on the
 * shared control stream. */
static void apply_control_grant(tp_consumer_t *c)
{
    uint32_t id = c->grant.control_stream_id;
    if (id == c->own_control_stream_id)
    {
        return;
    }
    tp_bus_subscription_close(c->own_control);
    c->own_control = NULL;
    c->own_control_stream_id = 0;
    if (id != 0 && tp_bus_subscription_open(&c->own_control, c->lease.client->bus, c->grant.control_channel,
                       (int32_t)id, NULL, NULL, NULL) == 0)
    {
        c->own_control_stream_id = id;
    }
    else
    {
        c->own_control = NULL;
    }
}

static void apply_grant(tp_consumer_t *c)
{
    c->grant.is_pending = false;
    if (c->grant.mode == TP_WIRE_MODE_STREAM || c->grant.mode == TP_WIRE_MODE_RATE_LIMITED)
    {
        /* Wire spec 10.5: a supervisor may switch our mode; our max_rate_hz stays the one we asked for. */
        if (c->told_mode != c->grant.mode)
        {
            TP_LOG_I("client", "consumer %" PRIu32 " of stream %" PRIu32 " told %s", c->lease.client_id,
                c->lease.stream_id, c->grant.mode == TP_WIRE_MODE_RATE_LIMITED ? "RATE_LIMITED" : "STREAM");
        }
        c->told_mode = c->grant.mode;
    }
    apply_control_grant(c);
    uint32_t id = c->grant.descriptor_stream_id;
    if (id == c->own_stream_id)
    {
        return;
    }
    tp_bus_subscription_close(c->own);
    c->own = NULL;
    c->own_stream_id = 0;
    if (id == 0)
    {
        /* Wire spec 10.1.3: declined; stay on the shared stream (and gate locally when rate limited). */
        TP_LOG_I("client", "consumer %" PRIu32 " of stream %" PRIu32 " stays on the shared descriptor stream",
            c->lease.client_id, c->lease.stream_id);
        return;
    }
    if (tp_bus_subscription_open(&c->own, c->lease.client->bus, c->grant.descriptor_channel, (int32_t)id, NULL, NULL,
            NULL) < 0)
    {
        TP_LOG_W("client", "per-consumer descriptor stream %" PRIu32 " on %s: %s; staying on the shared stream", id,
            c->grant.descriptor_channel, tp_errmsg());
        c->own = NULL;
        return;
    }
    c->own_stream_id = id;
    TP_LOG_I("client", "consumer %" PRIu32 " of stream %" PRIu32 " reads its descriptors on stream %" PRIu32,
        c->lease.client_id, c->lease.stream_id, id);
}

void tp_consumer_control_tick(tp_consumer_t *c, int64_t now_ns)
{
    if (!c->lease.is_valid)
    {
        if (c->own != NULL)
        {
            close_own(c); /* the grant belonged to the lease that ended */
        }
        c->grant.is_pending = false;
        return;
    }
    if (c->hello_generation != c->lease.generation || now_ns >= c->next_hello_ns)
    {
        /* Wire spec 10.1.2: at startup (every new attachment) and periodically (our liveness for the producer). */
        if (c->hello_generation != c->lease.generation && c->own != NULL)
        {
            close_own(c);
        }
        c->hello_generation = c->lease.generation;
        c->next_hello_ns = now_ns + c->hello_period_ns;
        send_hello(c);
    }
    if (c->grant.is_pending)
    {
        apply_grant(c);
    }
    tp_consumer_control_poll(c);
}

void tp_consumer_control_close(tp_consumer_t *c)
{
    close_own(c);
    c->lease.observer = NULL;
}

bool tp_consumer_rate_allows(tp_consumer_t *c, uint64_t timestamp_ns, uint64_t seq)
{
    bool is_rate_limited = c->told_mode != 0 ? c->told_mode == TP_WIRE_MODE_RATE_LIMITED
                                             : c->options.mode == TP_CONSUMER_RATE_LIMITED;
    if (!is_rate_limited || c->options.max_rate_hz == 0 || c->own != NULL)
    {
        return true;
    }
    /* Wire spec 11: the descriptor's publish time when it has one, else the slot's capture time, else the local
     * clock. */
    uint64_t t = timestamp_ns;
    if (t == 0 && c->lease.is_valid)
    {
        t = tp_slot_timestamp_of(tp_header_slot_at(c->lease.header.base, (uint32_t)(seq & (c->lease.nslots - 1))), seq);
    }
    t = t != 0 ? t : (uint64_t)tp_client_now(c->lease.client);
    uint64_t interval = (uint64_t)TP_NS_PER_S / c->options.max_rate_hz;
    if (c->last_gate_ns != 0 && t - c->last_gate_ns < interval)
    {
        return false;
    }
    c->last_gate_ns = t;
    return true;
}

void tp_consumer_set_progress_handler(tp_consumer_t *c, tp_progress_handler_t handler, void *clientd)
{
    c->progress_handler = handler;
    c->progress_clientd = clientd;
}

tp_consumer_mode_t tp_consumer_mode(const tp_consumer_t *c)
{
    if (c->told_mode != 0)
    {
        return c->told_mode == TP_WIRE_MODE_RATE_LIMITED ? TP_CONSUMER_RATE_LIMITED : TP_CONSUMER_STREAM;
    }
    return c->options.mode;
}

/* FrameProgress on the consumer's own control stream. */
static void on_own_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_consumer_t *c = clientd;
    tp_sbe_header_t h;
    tp_wire_frame_progress_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_FRAME_PROGRESS_TEMPLATE_ID || tp_wire_frame_progress_decode(&m, buffer, length) < 0 ||
        tp_wire_frame_progress_stream_id(&m) != c->lease.stream_id)
    {
        return;
    }
    tp_control_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = TP_CONTROL_EVENT_PROGRESS;
    e.stream_id = c->lease.stream_id;
    e.epoch = tp_wire_frame_progress_epoch(&m);
    e.seq = tp_wire_frame_progress_seq(&m);
    e.bytes_filled = tp_wire_frame_progress_payload_bytes_filled(&m);
    e.progress_state = tp_wire_frame_progress_state(&m);
    on_progress(c, &e);
}

int tp_consumer_control_poll(tp_consumer_t *c)
{
    return c->own_control != NULL ? tp_bus_poll(c->own_control, on_own_control, c, 64) : 0;
}

uint32_t tp_consumer_control_stream_id(const tp_consumer_t *c)
{
    return c->own_control_stream_id;
}
