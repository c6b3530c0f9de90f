/*
 * The consumer: a consumer lease, its regions mapped read-only, and the read path of wire spec 8.3 / 15.19 for
 * every FrameDescriptor of its stream and epoch: the slot must hold that sequence committed and stable, with a
 * valid header and a payload inside its pool; then the handler sees the frame in place, and the slot is checked
 * again afterwards. Anything else is dropped and counted, never waited for.
 */
#include <string.h>

#include "client/tp_consumer_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_copy.h"
#include "core/tp_err.h"
#include "shm/tp_header_ring.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

int tp_consumer_open(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id,
    const tp_consumer_options_t *options, int64_t timeout_ns)
{
    *out = NULL;
    tp_consumer_t *c = NULL;
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        return -1;
    }
    /* Subscribe first: descriptors published after the attach answer are not missed. */
    if (tp_bus_subscription_open(&c->descriptors, client->bus, client->config.descriptor_channel,
            (int32_t)client->config.descriptor_stream_id, NULL, NULL, NULL) < 0)
    {
        tp_free(c);
        return -1;
    }
    if (tp_qos_sender_open(&c->qos, client) < 0 ||
        tp_client_lease_open(&c->lease, client, stream_id, TP_DRIVER_ROLE_CONSUMER,
            TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING, timeout_ns) < 0)
    {
        tp_qos_sender_close(&c->qos);
        tp_bus_subscription_close(c->descriptors);
        tp_free(c);
        return -1;
    }
    tp_consumer_control_init(c, options);
    *out = c;
    return 0;
}

int tp_consumer_attach(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id, int64_t timeout_ns)
{
    return tp_consumer_open(out, client, stream_id, NULL, timeout_ns < 0 ? 0 : timeout_ns);
}

int tp_consumer_attach_async(tp_consumer_t **out, tp_client_t *client, uint32_t stream_id)
{
    return tp_consumer_open(out, client, stream_id, NULL, -1);
}

/* After a new attachment (new epoch, maybe a new layout): forget the old epoch's sequence tracking. */
static void follow_lease(tp_consumer_t *c)
{
    if (c->generation != c->lease.generation)
    {
        c->generation = c->lease.generation;
        c->mask = c->lease.nslots - 1;
        c->has_expected = false;
        c->resync_to = 0;
    }
}

static int pool_index(const tp_client_lease_t *l, uint16_t pool_id)
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

/* The sequence the slot of seq holds now (committed or being written). */
static uint64_t slot_seq(const tp_consumer_t *c, uint64_t seq)
{
    return tp_slot_read_begin(tp_header_slot_at(c->lease.header.base, (uint32_t)(seq & c->mask))) >> 1;
}

/* Does the ring refute a claim (from a descriptor or from a slot) that the producer reached `claimed`? The producer
 * writes sequences in order, so once `claimed` was committed every slot holds a sequence above claimed - nslots: a
 * slot that still holds an older `seq`, committed, proves the claim false (a forged descriptor, a scribbled
 * seq_commit). One bad value must never make a consumer skip every frame that follows (our rule). */
static bool ring_refutes(const tp_consumer_t *c, uint64_t claimed, uint64_t seq)
{
    if (claimed - seq < c->lease.nslots)
    {
        return false;
    }
    uint64_t held = tp_slot_read_begin(tp_header_slot_at(c->lease.header.base, (uint32_t)(seq & c->mask)));
    return (held & 1) != 0 && (held >> 1) == seq;
}

/* The frame view of a slot that read stable as seq: false if its payload coordinates break a rule. */
static bool fill_view(const tp_consumer_t *c, uint64_t seq, const uint8_t *slot, const tp_slot_fields_t *fields,
    uint64_t seq_commit, tp_frame_t *f)
{
    const tp_client_lease_t *l = &c->lease;
    uint32_t index = (uint32_t)(seq & c->mask);
    int pool = pool_index(l, fields->pool_id);
    if (pool < 0 || !tp_slot_payload_is_valid(fields, index, l->nslots, l->strides[pool]))
    {
        return false;
    }
    f->stream_id = l->stream_id;
    f->epoch = l->epoch;
    f->seq = seq;
    f->timestamp_ns = fields->timestamp_ns;
    f->publish_timestamp_ns = 0;
    f->meta_version = fields->meta_version;
    f->trace_id = 0;
    f->pool_id = fields->pool_id;
    f->payload = tp_pool_slot_at(l->pools[pool].base, index, l->strides[pool]);
    f->payload_length = fields->values_len_bytes;
    f->slot_ = slot;
    f->seq_commit_ = seq_commit;
    f->copied_ = NULL;
    return true;
}

static void read_frame(tp_consumer_t *c, uint64_t seq, uint64_t trace_id, uint64_t publish_ns)
{
    tp_client_lease_t *l = &c->lease;
    uint32_t index = (uint32_t)(seq & c->mask);
    const uint8_t *slot = tp_header_slot_at(l->header.base, index);
    tp_frame_t f;
    tp_slot_fields_t fields;
    uint64_t seq_commit = 0;
    tp_slot_status_t st = tp_slot_snapshot(slot, seq, &fields, &f.tensor, &seq_commit);
    uint64_t head = st == TP_SLOT_SEQ_MISMATCH ? tp_slot_read_begin(slot) >> 1 : 0;
    if (head > seq && (head & c->mask) != index)
    {
        c->counters.drops_invalid++; /* a sequence that cannot be in this slot: the slot was scribbled on */
        return;
    }
    if (head > seq)
    {
        c->counters.drops_gap++; /* overwritten before we got to it */
        uint32_t max_gap = c->options.max_outstanding_seq_gap;
        if (max_gap != 0 && head - seq > max_gap)
        {
            /* Wire spec 15.4: this far behind, resync: drop the backlog up to the newest frame we know of without
             * reading its slots (all overwritten or about to be), and carry on from there. */
            c->resync_to = head;
            c->counters.resyncs++;
        }
        return;
    }
    if (st == TP_SLOT_INVALID_HEADER)
    {
        c->counters.drops_invalid++;
        return;
    }
    if (st != TP_SLOT_OK)
    {
        c->counters.drops_late++;
        return;
    }
    if (!fill_view(c, seq, slot, &fields, seq_commit, &f))
    {
        c->counters.drops_invalid++;
        return;
    }
    f.trace_id = trace_id;
    f.publish_timestamp_ns = publish_ns;
    c->delivered++;
    if (c->is_pulling)
    {
        c->pulled_copied = 0;
        f.copied_ = &c->pulled_copied;
        c->pulled = f;
        c->has_pulled = true; /* settled (accepted or late) at the next call */
        return;
    }
    int copied = 0;
    f.copied_ = &copied;
    c->handler(c->clientd, &f);
    /* The producer may have lapped us while the handler read in place; a validated copy is safe regardless. */
    if (copied || tp_slot_read_still(slot, seq_commit))
    {
        c->counters.frames++;
    }
    else
    {
        c->counters.drops_late++;
    }
}

static void on_descriptor(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_consumer_t *c = clientd;
    tp_sbe_header_t h;
    tp_wire_frame_descriptor_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_FRAME_DESCRIPTOR_TEMPLATE_ID || h.version > TP_WIRE_SCHEMA_VERSION ||
        tp_wire_frame_descriptor_decode(&m, buffer, length) < 0)
    {
        c->counters.descriptors_ignored++;
        return;
    }
    uint64_t epoch = tp_wire_frame_descriptor_epoch(&m);
    if (tp_wire_frame_descriptor_stream_id(&m) != c->lease.stream_id)
    {
        c->counters.descriptors_ignored++;
        return;
    }
    if (c->lease.is_valid && !c->lease.is_lost && epoch > c->lease.epoch)
    {
        /* A newer epoch (a new producer): ours is over. Believed only once the driver announced it (its announce goes
         * out before the new producer is answered, so it is already on the bus): a forged descriptor alone must not
         * make us detach. Then drop everything of ours and map the new regions now, so that this frame and the
         * next are read from them (wire spec 15.21, driver spec 6). */
        if (c->lease.announced_epoch < epoch)
        {
            tp_client_lease_poll_notices(&c->lease);
        }
        if (c->lease.announced_epoch >= epoch)
        {
            tp_client_lease_remap(&c->lease, REMAP_WAIT_NS);
            follow_lease(c);
        }
    }
    if (!c->lease.is_valid || c->lease.is_lost || c->lease.is_superseded || epoch != c->lease.epoch)
    {
        c->counters.descriptors_ignored++; /* not mapped, or another epoch: dropped (wire spec 15.21) */
        return;
    }
    uint64_t seq = tp_wire_frame_descriptor_seq(&m);
    if (c->has_expected && seq < c->expected_seq && ring_refutes(c, c->expected_seq - 1, seq))
    {
        c->counters.seq_refuted++; /* what we expected came from a bad value: start again from this frame */
        c->has_expected = false;
        c->resync_to = 0;
    }
    if (c->has_expected && seq < c->expected_seq)
    {
        c->counters.descriptors_ignored++; /* a duplicate or a stale descriptor */
        return;
    }
    if ((!c->has_expected || seq > c->expected_seq) && slot_seq(c, seq) < seq)
    {
        /* Published only after its commit, a real descriptor's frame is in its slot or was overwritten by a newer
         * one: this one names a frame the producer has not written. Believing it would skip the frames before it. */
        c->counters.seq_refuted++;
        c->counters.descriptors_ignored++;
        return;
    }
    if (c->has_expected && seq > c->expected_seq)
    {
        if (c->own != NULL && c->options.mode == TP_CONSUMER_RATE_LIMITED)
        {
            c->counters.rate_limited += seq - c->expected_seq; /* thinned for us by the producer, not lost */
        }
        else
        {
            c->counters.drops_gap += seq - c->expected_seq;
        }
    }
    c->has_expected = true;
    c->expected_seq = seq + 1;
    if (seq < c->resync_to && ring_refutes(c, c->resync_to, seq))
    {
        c->counters.seq_refuted++; /* the slot that made us resync was scribbled on: read this frame after all */
        c->resync_to = 0;
    }
    if (seq < c->resync_to)
    {
        c->counters.drops_gap++; /* skipped by a resync */
        return;
    }
    uint64_t publish_ns = tp_wire_frame_descriptor_has_timestamp_ns(&m) ? tp_wire_frame_descriptor_timestamp_ns(&m) : 0;
    if (!tp_consumer_rate_allows(c, publish_ns, seq))
    {
        c->counters.rate_limited++; /* RATE_LIMITED on the shared stream: let through at most max_rate_hz */
        return;
    }
    read_frame(c, seq, tp_wire_frame_descriptor_has_trace_id(&m) ? tp_wire_frame_descriptor_trace_id(&m) : 0,
        publish_ns);
}

/* Between frames: the lease's tick, and the QoS report when due (wire spec 10.4.1). */
static void housekeeping(tp_consumer_t *c)
{
    int64_t now = tp_client_now(c->lease.client);
    tp_client_lease_tick(&c->lease, now);
    tp_consumer_control_tick(c, now);
    if (c->lease.is_valid && tp_qos_sender_due(&c->qos, now))
    {
        tp_qos_send_consumer(&c->qos, c->lease.stream_id, c->lease.client_id, c->lease.epoch,
            c->has_expected ? c->expected_seq - 1 : 0, c->counters.drops_gap, c->counters.drops_late,
            c->options.mode == TP_CONSUMER_RATE_LIMITED ? TP_WIRE_MODE_RATE_LIMITED : TP_WIRE_MODE_STREAM);
    }
}

/* The frame handed out by tp_consumer_next: accepted if copied out intact or still unchanged, else late. */
static void settle_pulled(tp_consumer_t *c)
{
    if (!c->has_pulled)
    {
        return;
    }
    c->has_pulled = false;
    if (c->pulled_copied || tp_slot_read_still(c->pulled.slot_, c->pulled.seq_commit_))
    {
        c->counters.frames++;
    }
    else
    {
        c->counters.drops_late++;
    }
}

int tp_consumer_next(tp_consumer_t *c, tp_frame_t *out)
{
    settle_pulled(c);
    housekeeping(c);
    follow_lease(c);
    c->delivered = 0;
    if (c->lease.state == TP_LEASE_ATTACHING)
    {
        return 0;
    }
    c->is_pulling = true;
    for (int i = 0; i < 64 && c->delivered == 0; i++)
    {
        int n = tp_bus_poll(c->own != NULL ? c->own : c->descriptors, on_descriptor, c, 1);
        if (n <= 0)
        {
            c->is_pulling = false;
            return n < 0 ? -1 : 0;
        }
    }
    c->is_pulling = false;
    if (c->delivered == 0)
    {
        return 0;
    }
    *out = c->pulled;
    return 1;
}

int tp_consumer_poll(tp_consumer_t *c, tp_frame_handler_t handler, void *clientd, int limit)
{
    settle_pulled(c);
    c->handler = handler;
    c->clientd = clientd;
    c->delivered = 0;
    follow_lease(c);
    /* While an attach is out, descriptors wait in the bus: those of the epoch being mapped are read once it is. */
    if (c->lease.state != TP_LEASE_ATTACHING &&
        tp_bus_poll(c->own != NULL ? c->own : c->descriptors, on_descriptor, c, limit) < 0)
    {
        return -1;
    }
    housekeeping(c);
    follow_lease(c);
    return c->delivered;
}

void tp_consumer_counters(const tp_consumer_t *c, tp_consumer_counters_t *out)
{
    *out = c->counters;
    out->remaps = c->lease.remaps;
    out->regions_damaged = c->lease.damaged;
    out->lease_losses = c->lease.revocations;
}

uint64_t tp_consumer_lease_id(const tp_consumer_t *c)
{
    return c->lease.lease_id;
}

uint32_t tp_consumer_stream_id(const tp_consumer_t *c)
{
    return c->lease.stream_id;
}

uint64_t tp_consumer_epoch(const tp_consumer_t *c)
{
    return c->lease.epoch;
}

uint32_t tp_consumer_descriptor_stream_id(const tp_consumer_t *c)
{
    return c->own_stream_id;
}

bool tp_consumer_is_attached(const tp_consumer_t *c)
{
    return c->lease.is_valid;
}

const char *tp_consumer_last_error(const tp_consumer_t *c)
{
    return c->lease.last_error;
}

int tp_consumer_close(tp_consumer_t *c)
{
    if (c == NULL)
    {
        return 0;
    }
    settle_pulled(c);
    tp_consumer_control_close(c);
    tp_qos_sender_close(&c->qos);
    tp_bus_subscription_close(c->descriptors);
    tp_client_lease_close(&c->lease);
    tp_free(c);
    return 0;
}

static int consumer_agent_work(void *state, int64_t now_ns)
{
    (void)now_ns;
    tp_consumer_t *c = state;
    return tp_consumer_poll(c, c->agent_handler, c->agent_clientd, 64);
}

void tp_consumer_agent(tp_agent_t *out, tp_consumer_t *c, tp_frame_handler_t handler, void *clientd)
{
    c->agent_handler = handler;
    c->agent_clientd = clientd;
    memset(out, 0, sizeof(*out));
    out->name = "tp-consumer";
    out->do_work = consumer_agent_work;
    out->state = c;
}

int tp_consumer_read(tp_consumer_t *c, uint64_t seq, tp_frame_t *out)
{
    const tp_client_lease_t *l = &c->lease;
    if (!l->is_valid || l->is_lost || l->is_superseded || c->generation != l->generation)
    {
        return 0;
    }
    const uint8_t *slot = tp_header_slot_at(l->header.base, (uint32_t)(seq & c->mask));
    tp_slot_fields_t fields;
    uint64_t seq_commit = 0;
    if (tp_slot_snapshot(slot, seq, &fields, &out->tensor, &seq_commit) != TP_SLOT_OK)
    {
        return 0; /* not written yet, being written, overwritten, or a header that breaks a rule */
    }
    return fill_view(c, seq, slot, &fields, seq_commit, out) ? 1 : 0;
}

bool tp_frame_is_intact(const tp_frame_t *f)
{
    return tp_slot_read_still(f->slot_, f->seq_commit_);
}

int tp_frame_copy_out(const tp_frame_t *f, void *dst, size_t capacity)
{
    if (capacity < f->payload_length)
    {
        TP_SET_ERR(TP_E_INVALID, "%u-byte frame, %zu-byte buffer", f->payload_length, capacity);
        return -1;
    }
    tp_copy_payload(dst, f->payload, f->payload_length);
    if (!tp_frame_is_intact(f))
    {
        return -1;
    }
    if (f->copied_ != NULL)
    {
        *f->copied_ = 1;
    }
    return 0;
}

int tp_consumer_wait(tp_consumer_t *c, int64_t timeout_ns)
{
    int64_t bound = timeout_ns < 100 * TP_NS_PER_MS ? timeout_ns : 100 * TP_NS_PER_MS;
    if (bound <= 0)
    {
        return 0;
    }
    return tp_bus_subscription_park(c->own != NULL ? c->own : c->descriptors, bound);
}

int tp_consumer_payload_region(const tp_consumer_t *c, const tp_frame_t *frame, tp_region_info_t *out)
{
    return tp_client_lease_region_of(&c->lease, frame->payload, out);
}
