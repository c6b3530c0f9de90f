/* TraceLinkSet emission: a preallocated ring drained onto the metadata stream, dropping rather than waiting. */
#include "tensorpool/tp_trace.h"

#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_err.h"

#define DEFAULT_CAPACITY 1024
#define MAX_ENCODED (8 + 28 + 4 + 8 * TP_TRACE_MAX_PARENTS)

struct tp_trace_emitter
{
    tp_client_t *client;
    tp_bus_publication_t *pub;
    uint32_t capacity;
    uint32_t head; /* next to publish */
    uint32_t count;
    tp_trace_link_t *queue;
    tp_trace_emitter_counters_t counters;
};

int tp_trace_emitter_init(tp_trace_emitter_t **out, tp_client_t *client, uint32_t capacity)
{
    *out = NULL;
    tp_trace_emitter_t *e = NULL;
    if (tp_alloc((void **)&e, sizeof(*e)) < 0)
    {
        return -1;
    }
    e->client = client;
    e->capacity = capacity == 0 ? DEFAULT_CAPACITY : capacity;
    if (tp_alloc((void **)&e->queue, (size_t)e->capacity * sizeof(tp_trace_link_t)) < 0 ||
        tp_bus_publication_open(&e->pub, client->bus, client->config.metadata_channel,
            (int32_t)client->config.metadata_stream_id, false) < 0)
    {
        TP_APPEND_ERR("opening the TraceLinkSet publication (metadata stream %u)", client->config.metadata_stream_id);
        tp_free(e->queue);
        tp_free(e);
        return -1;
    }
    tp_client_retain(client);
    *out = e;
    return 0;
}

int tp_trace_emitter_close(tp_trace_emitter_t *e)
{
    if (e == NULL)
    {
        return 0;
    }
    tp_trace_emitter_do_work(e);
    tp_bus_publication_close(e->pub);
    tp_client_t *client = e->client;
    tp_free(e->queue);
    tp_free(e);
    tp_client_release(client);
    return 0;
}

bool tp_trace_emitter_offer(tp_trace_emitter_t *e, const tp_trace_link_t *link)
{
    if (link->trace_id == 0 || link->parent_count == 0 || link->parent_count > TP_TRACE_MAX_PARENTS)
    {
        e->counters.invalid++; /* the rest of the rules are checked by the encoder, off the hot path */
        return false;
    }
    if (e->count == e->capacity)
    {
        e->counters.dropped_full++; /* T-5-2: the record is dropped, the frame is not held */
        return false;
    }
    uint32_t tail = (e->head + e->count) % e->capacity;
    tp_trace_link_t *slot = &e->queue[tail];
    size_t head_bytes = offsetof(tp_trace_link_t, parents);
    memcpy(slot, link, head_bytes + (size_t)link->parent_count * sizeof(uint64_t));
    e->count++;
    e->counters.queued++;
    return true;
}

int tp_trace_emitter_do_work(tp_trace_emitter_t *e)
{
    int sent = 0;
    while (e->count > 0)
    {
        const tp_trace_link_t *link = &e->queue[e->head];
        e->head = (e->head + 1) % e->capacity;
        e->count--;
        uint8_t buf[MAX_ENCODED];
        int64_t n = tp_trace_link_encode(link, buf, sizeof(buf));
        if (n < 0)
        {
            e->counters.invalid++;
            continue;
        }
        if (tp_bus_offer(e->pub, buf, (size_t)n) < 0)
        {
            e->counters.dropped_busy++;
            continue;
        }
        e->counters.sent++;
        sent++;
    }
    tp_bus_publication_do_work(e->pub);
    return sent;
}

void tp_trace_emitter_counters(const tp_trace_emitter_t *e, tp_trace_emitter_counters_t *out)
{
    *out = e->counters;
}
