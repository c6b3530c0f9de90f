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
#include "tp_sbe_wire.h"

/* An id to ask for when any will do: a request needs a non-zero id (wire spec 10.1.2); the driver hands out the
 * lowest free id of its range for one outside it. */
#define ANY_STREAM_ID 1

void tp_consumer_options_init(tp_consumer_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->mode = TP_CONSUMER_STREAM;
}

/* The driver's ConsumerConfig for this consumer (through the client's control-stream notices). */
static void on_control(void *owner, const tp_proxy_event_t *e)
{
    tp_consumer_t *c = owner;
    if (e->kind != TP_PROXY_EVENT_CONSUMER_CONFIG || e->client_id != c->lease.client_id || !c->lease.is_valid)
    {
        return;
    }
    /* Wire spec 10.1.3: an empty channel (or id 0) is the only "not assigned"; a half is treated as a decline. */
    bool granted = e->descriptor_channel[0] != '\0' && e->descriptor_stream_id != 0;
    c->grant.is_pending = true;
    c->grant.descriptor_stream_id = granted ? e->descriptor_stream_id : 0;
    snprintf(c->grant.descriptor_channel, sizeof(c->grant.descriptor_channel), "%s",
        granted ? e->descriptor_channel : "");
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
    tp_wire_consumer_hello_set_supports_progress(&e, TP_WIRE_BOOL_FALSE);
    tp_wire_consumer_hello_set_mode(&e, o->mode == TP_CONSUMER_RATE_LIMITED ? TP_WIRE_MODE_RATE_LIMITED
                                                                           : TP_WIRE_MODE_STREAM);
    tp_wire_consumer_hello_set_max_rate_hz(&e, o->max_rate_hz);
    tp_wire_consumer_hello_set_expected_layout_version(&e, TP_LAYOUT_VERSION);
    tp_wire_consumer_hello_set_progress_interval_us(&e, UINT32_MAX);
    tp_wire_consumer_hello_set_progress_bytes_delta(&e, UINT32_MAX);
    tp_wire_consumer_hello_set_progress_major_delta_units(&e, UINT32_MAX);
    /* Wire spec 10.1.2: a channel never goes without a non-zero stream id, nor the reverse. */
    tp_wire_consumer_hello_set_descriptor_stream_id(&e,
        asks ? (o->descriptor_stream_id != 0 ? o->descriptor_stream_id : ANY_STREAM_ID) : 0);
    tp_wire_consumer_hello_set_control_stream_id(&e, 0);
    tp_wire_consumer_hello_put_descriptor_channel(&e, asks ? c->options_channel : "",
        asks ? strlen(c->options_channel) : 0);
    tp_wire_consumer_hello_put_control_channel(&e, "", 0);
    int64_t n = tp_wire_consumer_hello_enc_finish(&e);
    if (n > 0)
    {
        tp_driver_proxy_send(c->lease.client->proxy, buf, (size_t)n);
    }
}

static void close_own(tp_consumer_t *c)
{
    tp_bus_subscription_close(c->own);
    c->own = NULL;
    c->own_stream_id = 0;
}

static void apply_grant(tp_consumer_t *c)
{
    c->grant.is_pending = false;
    uint32_t id = c->grant.descriptor_stream_id;
    if (id == c->own_stream_id)
    {
        return;
    }
    close_own(c);
    if (id == 0)
    {
        /* Wire spec 10.1.3: declined; stay on the shared stream (and gate locally when rate limited). */
        TP_LOG_I("client", "consumer %" PRIu32 " of stream %" PRIu32 " stays on the shared descriptor stream",
            c->lease.client_id, c->lease.stream_id);
        return;
    }
    if (tp_bus_subscription_open(c->lease.client->bus, &c->own, c->grant.descriptor_channel, (int32_t)id, NULL, NULL,
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
}

void tp_consumer_control_close(tp_consumer_t *c)
{
    close_own(c);
    c->lease.observer = NULL;
}

bool tp_consumer_rate_allows(tp_consumer_t *c, uint64_t timestamp_ns)
{
    if (c->options.mode != TP_CONSUMER_RATE_LIMITED || c->options.max_rate_hz == 0 || c->own != NULL)
    {
        return true;
    }
    /* Wire spec 11: the descriptor's publish time when it has one, else the local clock. */
    uint64_t t = timestamp_ns != 0 ? timestamp_ns : (uint64_t)tp_clock_monotonic_ns();
    uint64_t interval = (uint64_t)TP_NS_PER_S / c->options.max_rate_hz;
    if (c->last_gate_ns != 0 && t - c->last_gate_ns < interval)
    {
        return false;
    }
    c->last_gate_ns = t;
    return true;
}
