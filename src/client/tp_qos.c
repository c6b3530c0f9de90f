/*
 * QoS: the reports producers and consumers send (tp_qos_send_*), and the monitor that aggregates them
 * (tp_qos.h). Sending is on the hot path's side (once per period from poll / do_work): encoded on the stack into a
 * bus claim, no allocation, lock or system call beyond what the bus offer does.
 */
#include <string.h>

#include "client/tp_qos_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "tensorpool/tp_qos.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define QOS_MAX_PARTIES 512

int tp_qos_sender_open(tp_qos_sender_t *s, tp_client_t *client)
{
    memset(s, 0, sizeof(*s));
    s->period_ns = (int64_t)client->config.qos_period_ms * TP_NS_PER_MS;
    s->next_ns = tp_client_now(client) + s->period_ns;
    if (client->qos_pub == NULL && tp_bus_publication_open(&client->qos_pub, client->bus, client->config.qos_channel,
            (int32_t)client->config.qos_stream_id, false) < 0)
    {
        return -1;
    }
    client->qos_users++;
    s->client = client;
    s->pub = client->qos_pub;
    return 0;
}

void tp_qos_sender_close(tp_qos_sender_t *s)
{
    if (s->client != NULL && --s->client->qos_users == 0)
    {
        tp_bus_publication_close(s->client->qos_pub);
        s->client->qos_pub = NULL;
    }
    s->client = NULL;
    s->pub = NULL;
}

bool tp_qos_sender_due(tp_qos_sender_t *s, int64_t now_ns)
{
    if (now_ns < s->next_ns)
    {
        return false;
    }
    s->next_ns = now_ns + s->period_ns;
    return true;
}

void tp_qos_send_producer(tp_qos_sender_t *s, uint32_t stream_id, uint32_t producer_id, uint64_t epoch,
    uint64_t current_seq)
{
    uint8_t buf[TP_SBE_HEADER_LENGTH + TP_WIRE_QOS_PRODUCER_BLOCK_LENGTH];
    tp_wire_qos_producer_enc_t e;
    tp_wire_qos_producer_enc_begin(&e, buf, sizeof(buf));
    tp_wire_qos_producer_set_stream_id(&e, stream_id);
    tp_wire_qos_producer_set_producer_id(&e, producer_id);
    tp_wire_qos_producer_set_epoch(&e, epoch);
    tp_wire_qos_producer_set_current_seq(&e, current_seq);
    tp_wire_qos_producer_set_watermark(&e, UINT32_MAX);
    int64_t n = tp_wire_qos_producer_enc_finish(&e);
    if (n > 0)
    {
        tp_bus_offer(s->pub, buf, (size_t)n); /* soft state: a lost report is followed by the next */
    }
}

void tp_qos_send_consumer(tp_qos_sender_t *s, uint32_t stream_id, uint32_t consumer_id, uint64_t epoch,
    uint64_t last_seq_seen, uint64_t drops_gap, uint64_t drops_late, uint8_t mode)
{
    uint8_t buf[TP_SBE_HEADER_LENGTH + TP_WIRE_QOS_CONSUMER_BLOCK_LENGTH];
    tp_wire_qos_consumer_enc_t e;
    tp_wire_qos_consumer_enc_begin(&e, buf, sizeof(buf));
    tp_wire_qos_consumer_set_stream_id(&e, stream_id);
    tp_wire_qos_consumer_set_consumer_id(&e, consumer_id);
    tp_wire_qos_consumer_set_epoch(&e, epoch);
    tp_wire_qos_consumer_set_last_seq_seen(&e, last_seq_seen);
    tp_wire_qos_consumer_set_drops_gap(&e, drops_gap);
    tp_wire_qos_consumer_set_drops_late(&e, drops_late);
    tp_wire_qos_consumer_set_mode(&e, mode);
    int64_t n = tp_wire_qos_consumer_enc_finish(&e);
    if (n > 0)
    {
        tp_bus_offer(s->pub, buf, (size_t)n);
    }
}

/* ---- the monitor ---- */

typedef struct party
{
    bool is_consumer;
    uint32_t stream_id;
    uint32_t id;
    uint64_t epoch;
    uint64_t seq;
    uint64_t drops_gap;
    uint64_t drops_late;
    uint8_t mode;
    double seq_rate_hz;
    double drop_rate_hz;
    int64_t last_seen_ns;
    uint64_t reports;
} party_t;

struct tp_qos_monitor
{
    tp_client_t *client;
    tp_bus_subscription_t *sub;
    int64_t stale_after_ns;
    party_t parties[QOS_MAX_PARTIES];
    size_t count;
    uint64_t ignored;
};

int tp_qos_monitor_open(tp_qos_monitor_t **out, tp_client_t *client, int64_t stale_after_ns)
{
    *out = NULL;
    tp_qos_monitor_t *m = NULL;
    if (tp_alloc((void **)&m, sizeof(*m)) < 0)
    {
        return -1;
    }
    if (tp_bus_subscription_open(&m->sub, client->bus, client->config.qos_channel,
            (int32_t)client->config.qos_stream_id, NULL, NULL, NULL) < 0)
    {
        tp_free(m);
        return -1;
    }
    m->client = client;
    m->stale_after_ns =
        stale_after_ns > 0 ? stale_after_ns : 3 * (int64_t)client->config.qos_period_ms * TP_NS_PER_MS;
    tp_client_retain(client);
    *out = m;
    return 0;
}

int tp_qos_monitor_close(tp_qos_monitor_t *m)
{
    if (m == NULL)
    {
        return 0;
    }
    tp_bus_subscription_close(m->sub);
    tp_client_t *client = m->client;
    tp_free(m);
    tp_client_release(client);
    return 0;
}

static party_t *party_for(tp_qos_monitor_t *m, bool is_consumer, uint32_t stream_id, uint32_t id)
{
    for (size_t i = 0; i < m->count; i++)
    {
        party_t *p = &m->parties[i];
        if (p->is_consumer == is_consumer && p->stream_id == stream_id && p->id == id)
        {
            return p;
        }
    }
    if (m->count == QOS_MAX_PARTIES)
    {
        return NULL;
    }
    party_t *p = &m->parties[m->count++];
    memset(p, 0, sizeof(*p));
    p->is_consumer = is_consumer;
    p->stream_id = stream_id;
    p->id = id;
    return p;
}

/* A new report: rates from the previous one (same epoch, time moved on). */
static void report(party_t *p, uint64_t epoch, uint64_t seq, uint64_t drops, int64_t now)
{
    if (p->reports > 0 && epoch == p->epoch && now > p->last_seen_ns && seq >= p->seq)
    {
        double dt = (double)(now - p->last_seen_ns) / 1e9;
        uint64_t before = p->drops_gap + p->drops_late;
        p->seq_rate_hz = (double)(seq - p->seq) / dt;
        p->drop_rate_hz = drops >= before ? (double)(drops - before) / dt : 0;
    }
    else
    {
        p->seq_rate_hz = 0;
        p->drop_rate_hz = 0;
    }
    p->epoch = epoch;
    p->seq = seq;
    p->last_seen_ns = now;
    p->reports++;
}

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_qos_monitor_t *m = clientd;
    tp_sbe_header_t h;
    int64_t now = tp_client_now(m->client);
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.version > TP_WIRE_SCHEMA_VERSION)
    {
        m->ignored++;
        return;
    }
    if (h.template_id == TP_WIRE_QOS_PRODUCER_TEMPLATE_ID)
    {
        tp_wire_qos_producer_t q;
        party_t *p = tp_wire_qos_producer_decode(&q, buffer, length) == 0
            ? party_for(m, false, tp_wire_qos_producer_stream_id(&q), tp_wire_qos_producer_producer_id(&q))
            : NULL;
        if (p != NULL)
        {
            report(p, tp_wire_qos_producer_epoch(&q), tp_wire_qos_producer_current_seq(&q), 0, now);
            return;
        }
    }
    else if (h.template_id == TP_WIRE_QOS_CONSUMER_TEMPLATE_ID)
    {
        tp_wire_qos_consumer_t q;
        party_t *p = tp_wire_qos_consumer_decode(&q, buffer, length) == 0
            ? party_for(m, true, tp_wire_qos_consumer_stream_id(&q), tp_wire_qos_consumer_consumer_id(&q))
            : NULL;
        if (p != NULL)
        {
            uint64_t gap = tp_wire_qos_consumer_drops_gap(&q);
            uint64_t late = tp_wire_qos_consumer_drops_late(&q);
            report(p, tp_wire_qos_consumer_epoch(&q), tp_wire_qos_consumer_last_seq_seen(&q), gap + late, now);
            p->drops_gap = gap;
            p->drops_late = late;
            p->mode = tp_wire_qos_consumer_mode(&q);
            return;
        }
    }
    m->ignored++;
}

int tp_qos_monitor_poll(tp_qos_monitor_t *m, int limit)
{
    return tp_bus_poll(m->sub, on_message, m, limit);
}

static bool is_stale(const tp_qos_monitor_t *m, const party_t *p, int64_t now)
{
    return now - p->last_seen_ns > m->stale_after_ns;
}

size_t tp_qos_monitor_producers(const tp_qos_monitor_t *m, tp_qos_producer_view_t *out, size_t capacity)
{
    int64_t now = tp_client_now(m->client);
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
    {
        const party_t *p = &m->parties[i];
        if (p->is_consumer)
        {
            continue;
        }
        if (n < capacity)
        {
            out[n] = (tp_qos_producer_view_t){ .stream_id = p->stream_id, .producer_id = p->id, .epoch = p->epoch,
                .current_seq = p->seq, .seq_rate_hz = p->seq_rate_hz, .last_seen_ns = p->last_seen_ns,
                .reports = p->reports, .is_stale = is_stale(m, p, now) };
        }
        n++;
    }
    return n;
}

size_t tp_qos_monitor_consumers(const tp_qos_monitor_t *m, tp_qos_consumer_view_t *out, size_t capacity)
{
    int64_t now = tp_client_now(m->client);
    size_t n = 0;
    for (size_t i = 0; i < m->count; i++)
    {
        const party_t *p = &m->parties[i];
        if (!p->is_consumer)
        {
            continue;
        }
        if (n < capacity)
        {
            out[n] = (tp_qos_consumer_view_t){ .stream_id = p->stream_id, .consumer_id = p->id, .epoch = p->epoch,
                .last_seq_seen = p->seq, .drops_gap = p->drops_gap, .drops_late = p->drops_late, .mode = p->mode,
                .seq_rate_hz = p->seq_rate_hz, .drop_rate_hz = p->drop_rate_hz, .last_seen_ns = p->last_seen_ns,
                .reports = p->reports, .is_stale = is_stale(m, p, now) };
        }
        n++;
    }
    return n;
}

void tp_qos_monitor_stream_drops(const tp_qos_monitor_t *m, uint32_t stream_id, uint64_t *drops_gap,
    uint64_t *drops_late)
{
    int64_t now = tp_client_now(m->client);
    *drops_gap = 0;
    *drops_late = 0;
    for (size_t i = 0; i < m->count; i++)
    {
        const party_t *p = &m->parties[i];
        if (p->is_consumer && p->stream_id == stream_id && !is_stale(m, p, now))
        {
            *drops_gap += p->drops_gap;
            *drops_late += p->drops_late;
        }
    }
}
