/*
 * The supervisor (wire spec 10.5), embedded in the driver when `supervisor.enabled`: it follows the consumers'
 * hellos (on the control stream) and QoS reports, the producers' QoS reports, and the data sources' announces on
 * the metadata stream; it keeps, per party, when it was last heard of (stale after `supervisor.stale_after_ms`);
 * and it applies `[[supervisor_rules]]`: a consumer matching a rule (its stream, its stream's data source name)
 * is told the rule's mode and payload_fallback_uri in a ConsumerConfig on the control stream. That ConsumerConfig
 * repeats the consumer's per-consumer stream grant, if it has one, so the two answers never contradict.
 * Its view goes into the driver's status file.
 */
#include <inttypes.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_log.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_send.h"
#include "driver/tp_driver_supervisor.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

tp_driver_supervisor_party_t *tp_driver_supervisor_party(tp_driver_t *d, bool is_consumer, uint32_t stream_id,
    uint32_t id)
{
    tp_driver_supervisor_t *s = d->supervisor;
    tp_driver_supervisor_party_t *free_slot = NULL;
    for (uint32_t i = 0; i < TP_DRIVER_SUPERVISOR_MAX_PARTIES; i++)
    {
        tp_driver_supervisor_party_t *p = &s->parties[i];
        if (p->in_use && p->is_consumer == is_consumer && p->stream_id == stream_id && p->id == id)
        {
            return p;
        }
        if (!p->in_use && free_slot == NULL)
        {
            free_slot = p;
        }
    }
    if (free_slot == NULL)
    {
        return NULL;
    }
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->in_use = true;
    free_slot->is_consumer = is_consumer;
    free_slot->stream_id = stream_id;
    free_slot->id = id;
    free_slot->rule = -1;
    return free_slot;
}

static void copy_text(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    size_t n = b.length < capacity - 1 ? b.length : capacity - 1;
    memcpy(out, b.data, n);
    out[n] = '\0';
}

static const char *source_name(const tp_driver_supervisor_t *s, uint32_t stream_id)
{
    for (uint32_t i = 0; i < s->source_count; i++)
    {
        if (s->sources[i].stream_id == stream_id)
        {
            return s->sources[i].name;
        }
    }
    return "";
}

static int rule_for(const tp_driver_t *d, uint32_t stream_id)
{
    for (uint32_t i = 0; i < d->config.supervisor_rule_count; i++)
    {
        const tp_driver_supervisor_rule_t *r = &d->config.supervisor_rules[i];
        if ((r->stream_id == 0 || r->stream_id == stream_id) &&
            (r->data_source[0] == '\0' || strcmp(r->data_source, source_name(d->supervisor, stream_id)) == 0))
        {
            return (int)i;
        }
    }
    return -1;
}

/* Tell a consumer its rule's mode (and fallback), with its per-consumer grant repeated. */
static void apply_rule(tp_driver_t *d, tp_driver_supervisor_party_t *p, const char *descriptor_channel,
    const char *control_channel)
{
    int rule = rule_for(d, p->stream_id);
    if (rule < 0)
    {
        p->rule = -1;
        return;
    }
    const tp_driver_supervisor_rule_t *r = &d->config.supervisor_rules[rule];
    uint32_t granted = 0;
    uint32_t control_granted = 0;
    for (uint32_t i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        const tp_driver_lease_t *l = &d->leases[i];
        if (l->is_active && l->client_id == p->id && l->stream_id == p->stream_id &&
            l->role == TP_DRIVER_ROLE_CONSUMER)
        {
            granted = l->descriptor_stream_id;
            control_granted = l->control_stream_id;
        }
    }
    tp_wire_consumer_config_enc_t e;
    tp_wire_consumer_config_enc_begin(&e, d->scratch, TP_DRIVER_SCRATCH_BYTES);
    tp_wire_consumer_config_set_stream_id(&e, p->stream_id);
    tp_wire_consumer_config_set_consumer_id(&e, p->id);
    tp_wire_consumer_config_set_use_shm(&e, TP_WIRE_BOOL_TRUE);
    tp_wire_consumer_config_set_mode(&e, r->mode);
    tp_wire_consumer_config_set_descriptor_stream_id(&e, granted != 0 && descriptor_channel[0] != '\0' ? granted : 0);
    tp_wire_consumer_config_set_control_stream_id(&e,
        control_granted != 0 && control_channel[0] != '\0' ? control_granted : 0);
    tp_wire_consumer_config_put_payload_fallback_uri(&e, r->payload_fallback_uri, strlen(r->payload_fallback_uri));
    const char *channel = granted != 0 ? descriptor_channel : "";
    tp_wire_consumer_config_put_descriptor_channel(&e, channel, strlen(channel));
    const char *control = control_granted != 0 ? control_channel : "";
    tp_wire_consumer_config_put_control_channel(&e, control, strlen(control));
    if (tp_driver_publish(d, d->control_pub, d->scratch, tp_wire_consumer_config_enc_finish(&e)) == 0)
    {
        if (p->rule != rule)
        {
            TP_LOG_I("driver", "supervisor: consumer %" PRIu32 " of stream %" PRIu32 " told %s by rule %d",
                p->id, p->stream_id, r->mode == TP_WIRE_MODE_RATE_LIMITED ? "RATE_LIMITED" : "STREAM", rule);
        }
        p->rule = rule;
        d->supervisor->configs_sent++;
    }
}

void tp_driver_supervisor_on_hello(tp_driver_t *d, const uint8_t *buffer, size_t length)
{
    tp_wire_consumer_hello_t m;
    if (d->supervisor == NULL || tp_wire_consumer_hello_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_driver_supervisor_party_t *p = tp_driver_supervisor_party(d, true, tp_wire_consumer_hello_stream_id(&m),
        tp_wire_consumer_hello_consumer_id(&m));
    if (p == NULL)
    {
        return;
    }
    p->last_seen_ns = d->now_ns;
    p->mode = tp_wire_consumer_hello_mode(&m);
    p->max_rate_hz = tp_wire_consumer_hello_max_rate_hz(&m);
    p->hellos++;
    /* Every hello is answered while a rule applies (a consumer that restarted forgot what it was told). */
    char descriptor_channel[TP_CONFIG_STRING_MAX], control_channel[TP_CONFIG_STRING_MAX];
    copy_text(descriptor_channel, sizeof(descriptor_channel), tp_wire_consumer_hello_descriptor_channel(&m));
    copy_text(control_channel, sizeof(control_channel), tp_wire_consumer_hello_control_channel(&m));
    apply_rule(d, p, descriptor_channel, control_channel);
}

static void on_qos(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_driver_t *d = clientd;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID)
    {
        return;
    }
    if (h.template_id == TP_WIRE_QOS_CONSUMER_TEMPLATE_ID)
    {
        tp_wire_qos_consumer_t m;
        tp_driver_supervisor_party_t *p = tp_wire_qos_consumer_decode(&m, buffer, length) == 0
            ? tp_driver_supervisor_party(d, true, tp_wire_qos_consumer_stream_id(&m),
                  tp_wire_qos_consumer_consumer_id(&m))
            : NULL;
        if (p != NULL)
        {
            p->last_seen_ns = d->now_ns;
            p->seq = tp_wire_qos_consumer_last_seq_seen(&m);
            p->drops_gap = tp_wire_qos_consumer_drops_gap(&m);
            p->drops_late = tp_wire_qos_consumer_drops_late(&m);
            p->qos_reports++;
        }
    }
    else if (h.template_id == TP_WIRE_QOS_PRODUCER_TEMPLATE_ID)
    {
        tp_wire_qos_producer_t m;
        tp_driver_supervisor_party_t *p = tp_wire_qos_producer_decode(&m, buffer, length) == 0
            ? tp_driver_supervisor_party(d, false, tp_wire_qos_producer_stream_id(&m),
                  tp_wire_qos_producer_producer_id(&m))
            : NULL;
        if (p != NULL)
        {
            p->last_seen_ns = d->now_ns;
            p->seq = tp_wire_qos_producer_current_seq(&m);
            p->qos_reports++;
        }
    }
}

static void on_metadata(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_driver_t *d = clientd;
    tp_driver_supervisor_t *s = d->supervisor;
    tp_sbe_header_t h;
    tp_wire_data_source_announce_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID ||
        tp_wire_data_source_announce_decode(&m, buffer, length) < 0)
    {
        return;
    }
    uint32_t stream_id = tp_wire_data_source_announce_stream_id(&m);
    tp_driver_supervisor_source_t *src = NULL;
    for (uint32_t i = 0; i < s->source_count && src == NULL; i++)
    {
        src = s->sources[i].stream_id == stream_id ? &s->sources[i] : NULL;
    }
    if (src == NULL && s->source_count < TP_DRIVER_SUPERVISOR_MAX_SOURCES)
    {
        src = &s->sources[s->source_count++];
        src->stream_id = stream_id;
    }
    if (src != NULL)
    {
        tp_sbe_bytes_t name = tp_wire_data_source_announce_name(&m);
        size_t n = name.length < sizeof(src->name) - 1 ? name.length : sizeof(src->name) - 1;
        memcpy(src->name, name.data, n);
        src->name[n] = '\0';
    }
}

int tp_driver_supervisor_open(tp_driver_t *d)
{
    if (!d->config.supervisor_enabled)
    {
        return 0;
    }
    if (tp_alloc((void **)&d->supervisor, sizeof(*d->supervisor)) < 0 ||
        tp_bus_subscription_open(&d->supervisor->qos_sub, d->bus, d->config.qos_channel,
            (int32_t)d->config.qos_stream_id, NULL, NULL, NULL) < 0 ||
        tp_bus_subscription_open(&d->supervisor->metadata_sub, d->bus, d->config.metadata_channel,
            (int32_t)d->config.metadata_stream_id, NULL, NULL, NULL) < 0)
    {
        TP_APPEND_ERR("starting the supervisor");
        return -1;
    }
    TP_LOG_I("driver", "supervisor: %" PRIu32 " rule(s), stale after %" PRIu32 " ms", d->config.supervisor_rule_count,
        d->config.supervisor_stale_after_ms);
    return 0;
}

void tp_driver_supervisor_close(tp_driver_t *d)
{
    if (d->supervisor != NULL)
    {
        tp_bus_subscription_close(d->supervisor->qos_sub);
        tp_bus_subscription_close(d->supervisor->metadata_sub);
        tp_free(d->supervisor);
        d->supervisor = NULL;
    }
}

int tp_driver_supervisor_do_work(tp_driver_t *d)
{
    tp_driver_supervisor_t *s = d->supervisor;
    if (s == NULL)
    {
        return 0;
    }
    int work = tp_bus_poll(s->qos_sub, on_qos, d, 64);
    work += tp_bus_poll(s->metadata_sub, on_metadata, d, 64);
    int64_t stale_ns = (int64_t)d->config.supervisor_stale_after_ms * 1000000;
    for (uint32_t i = 0; i < TP_DRIVER_SUPERVISOR_MAX_PARTIES; i++)
    {
        tp_driver_supervisor_party_t *p = &s->parties[i];
        bool is_stale = p->in_use && d->now_ns - p->last_seen_ns > stale_ns;
        if (p->in_use && is_stale != p->is_stale)
        {
            p->is_stale = is_stale;
            d->is_status_dirty = true;
            TP_LOG_I("driver", "supervisor: %s %" PRIu32 " of stream %" PRIu32 " is %s", p->is_consumer ? "consumer"
                : "producer", p->id, p->stream_id, is_stale ? "stale" : "back");
        }
    }
    return work > 0 ? work : 0;
}
