/* The producer's per-consumer descriptor streams; see tp_producer_consumers.h. */
#include "client/tp_producer_consumers.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"

void tp_consumer_streams_init(tp_consumer_streams_t *s, tp_client_t *client)
{
    memset(s, 0, sizeof(*s));
    s->bus = client->bus;
    s->client = client;
    s->stale_after_ns = TP_PRODUCER_STALE_HELLOS * (int64_t)client->config.qos_period_ms * TP_NS_PER_MS;
}

static tp_consumer_stream_t *entry_for(tp_consumer_streams_t *s, uint32_t consumer_id, bool create)
{
    tp_consumer_stream_t *free_entry = NULL;
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        tp_consumer_stream_t *e = &s->entries[i];
        if (e->in_use && e->consumer_id == consumer_id)
        {
            return e;
        }
        if (!e->in_use && free_entry == NULL)
        {
            free_entry = e;
        }
    }
    if (!create || free_entry == NULL)
    {
        return NULL;
    }
    memset(free_entry, 0, sizeof(*free_entry));
    free_entry->in_use = true;
    free_entry->consumer_id = consumer_id;
    free_entry->mode = TP_WIRE_MODE_STREAM;
    free_entry->last_hello_ns = tp_client_now(s->client);
    return free_entry;
}

static void close_control(tp_consumer_stream_t *e)
{
    tp_bus_publication_close(e->control_pub);
    e->control_pub = NULL;
    e->control_stream_id = 0;
}

static void close_stream(tp_consumer_streams_t *s, tp_consumer_stream_t *e, const char *why)
{
    if (e->pub != NULL)
    {
        TP_LOG_I("client", "per-consumer descriptor stream %" PRIu32 " of consumer %" PRIu32 " closed: %s",
            e->stream_id, e->consumer_id, why);
        tp_bus_publication_close(e->pub);
        e->pub = NULL;
        e->stream_id = 0;
        s->open_count--;
    }
}

static void update_interval(tp_consumer_stream_t *e)
{
    /* Wire spec 11: max_rate_hz is authoritative in RATE_LIMITED mode; 0 means no cap (wire spec 5). */
    uint8_t mode = e->told_mode != 0 ? e->told_mode : e->mode;
    e->min_interval_ns = mode == TP_WIRE_MODE_RATE_LIMITED && e->max_rate_hz > 0
        ? (uint64_t)TP_NS_PER_S / e->max_rate_hz
        : 0;
}

void tp_consumer_streams_on_event(tp_consumer_streams_t *s, const tp_control_event_t *ev)
{
    if (ev->kind == TP_CONTROL_EVENT_HELLO)
    {
        tp_consumer_stream_t *e = entry_for(s, ev->client_id, true);
        if (e != NULL)
        {
            e->mode = ev->mode;
            e->max_rate_hz = ev->max_rate_hz;
            e->supports_progress = ev->supports_progress;
            e->progress_interval_us = ev->progress_interval_us;
            e->progress_bytes_delta = ev->progress_bytes_delta;
            e->last_hello_ns = tp_client_now(s->client);
            update_interval(e);
        }
        return;
    }
    if (ev->kind == TP_CONTROL_EVENT_REVOKED)
    {
        tp_consumer_stream_t *e = ev->role == TP_DRIVER_ROLE_CONSUMER ? entry_for(s, ev->client_id, false) : NULL;
        if (e != NULL)
        {
            close_stream(s, e, "its lease ended"); /* wire spec 5: the consumer left */
            close_control(e);
            e->in_use = false;
        }
        return;
    }
    if (ev->kind != TP_CONTROL_EVENT_CONSUMER_CONFIG)
    {
        return;
    }
    tp_consumer_stream_t *e = entry_for(s, ev->client_id, true);
    if (e == NULL)
    {
        return;
    }
    if (ev->mode == TP_WIRE_MODE_STREAM || ev->mode == TP_WIRE_MODE_RATE_LIMITED)
    {
        e->told_mode = ev->mode;
        update_interval(e);
    }
    /* The control stream first (wire spec 5: FrameProgress for this consumer). */
    bool control_granted = ev->control_channel[0] != '\0' && ev->control_stream_id != 0;
    if (!control_granted)
    {
        close_control(e);
    }
    else if (e->control_pub == NULL || e->control_stream_id != ev->control_stream_id)
    {
        close_control(e);
        if (tp_bus_publication_open(&e->control_pub, s->bus, ev->control_channel, (int32_t)ev->control_stream_id,
                false) == 0)
        {
            e->control_stream_id = ev->control_stream_id;
        }
        else
        {
            e->control_pub = NULL;
        }
    }
    bool granted = ev->descriptor_channel[0] != '\0' && ev->descriptor_stream_id != 0;
    if (!granted)
    {
        close_stream(s, e, "declined");
        return;
    }
    if (e->pub != NULL && e->stream_id == ev->descriptor_stream_id)
    {
        return; /* the same grant again (a repeated hello) */
    }
    close_stream(s, e, "granted another");
    if (tp_bus_publication_open(&e->pub, s->bus, ev->descriptor_channel, (int32_t)ev->descriptor_stream_id, false) <
        0)
    {
        TP_LOG_W("client", "per-consumer descriptor stream %" PRIu32 " on %s: %s", ev->descriptor_stream_id,
            ev->descriptor_channel, tp_errmsg());
        e->pub = NULL;
        return;
    }
    e->stream_id = ev->descriptor_stream_id;
    e->last_hello_ns = tp_client_now(s->client);
    s->open_count++;
    TP_LOG_I("client", "consumer %" PRIu32 ": its descriptors go to stream %" PRIu32 " too%s", e->consumer_id,
        e->stream_id, e->min_interval_ns != 0 ? " (rate limited)" : "");
}

int tp_consumer_streams_tick(tp_consumer_streams_t *s, int64_t now_ns)
{
    int work = 0;
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        tp_consumer_stream_t *e = &s->entries[i];
        if (e->in_use && now_ns - e->last_hello_ns > s->stale_after_ns)
        {
            /* Wire spec 10.1.3: no hello (or QoS) for several intervals: the consumer is gone. */
            close_stream(s, e, "the consumer went quiet");
            close_control(e);
            e->in_use = false;
            work++;
        }
        else if (e->in_use)
        {
            /* Per-consumer streams on UDP need servicing; IPC ones return at once. */
            work += (e->pub != NULL ? tp_bus_publication_do_work(e->pub) : 0) +
                (e->control_pub != NULL ? tp_bus_publication_do_work(e->control_pub) : 0);
        }
    }
    return work;
}

void tp_consumer_streams_publish(tp_consumer_streams_t *s, const uint8_t *descriptor, size_t length,
    uint64_t publish_ns)
{
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        tp_consumer_stream_t *e = &s->entries[i];
        if (e->pub == NULL)
        {
            continue;
        }
        if (e->min_interval_ns != 0 && e->last_sent_ns != 0 && publish_ns - e->last_sent_ns < e->min_interval_ns)
        {
            s->thinned++;
            continue;
        }
        if (tp_bus_offer(e->pub, descriptor, length) > 0)
        {
            e->last_sent_ns = publish_ns;
        }
    }
}

void tp_consumer_streams_close(tp_consumer_streams_t *s)
{
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        close_stream(s, &s->entries[i], "the producer closed");
        close_control(&s->entries[i]);
        s->entries[i].in_use = false;
    }
}

bool tp_consumer_streams_progress_policy(const tp_consumer_streams_t *s, int64_t *interval_ns, uint64_t *bytes_delta)
{
    bool any = false;
    int64_t interval = INT64_MAX;
    uint64_t delta = UINT64_MAX;
    bool hinted_interval = false, hinted_delta = false;
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        const tp_consumer_stream_t *e = &s->entries[i];
        if (!e->in_use || !e->supports_progress)
        {
            continue;
        }
        any = true;
        if (e->progress_interval_us != UINT32_MAX && (int64_t)e->progress_interval_us * 1000 < interval)
        {
            interval = (int64_t)e->progress_interval_us * 1000;
            hinted_interval = true;
        }
        if (e->progress_bytes_delta != UINT32_MAX && e->progress_bytes_delta < delta)
        {
            delta = e->progress_bytes_delta;
            hinted_delta = true;
        }
    }
    /* Wire spec 10.2.2: without hints the defaults (250 us, 64 KiB), and never finer than the floors. */
    *interval_ns = !hinted_interval || interval < TP_PROGRESS_MIN_INTERVAL_NS ? TP_PROGRESS_MIN_INTERVAL_NS : interval;
    *bytes_delta = !hinted_delta || delta < TP_PROGRESS_MIN_BYTES_DELTA ? TP_PROGRESS_MIN_BYTES_DELTA : delta;
    return any;
}

bool tp_consumer_streams_send_progress(tp_consumer_streams_t *s, const uint8_t *message, size_t length)
{
    bool shared = false;
    for (int i = 0; i < TP_PRODUCER_MAX_CONSUMERS; i++)
    {
        tp_consumer_stream_t *e = &s->entries[i];
        if (!e->in_use || !e->supports_progress)
        {
            continue;
        }
        if (e->control_pub != NULL)
        {
            tp_bus_offer(e->control_pub, message, length);
        }
        else
        {
            shared = true;
        }
    }
    return shared;
}
