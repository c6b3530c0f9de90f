/*
 * The merge-map authority (join barrier spec 10): announces its maps on the shared control stream, again every
 * period (soft state), and answers every request for one of them. It is the only holder of its maps: the driver
 * neither caches nor forwards them (J-10.3-4), so a late joiner's request goes unanswered while the authority is
 * down, by design.
 */
#include "tensorpool/tp_join.h"

#include <inttypes.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "tp_sbe_merge.h"

#define DEFAULT_PERIOD_MS 1000
#define ANNOUNCE_BYTES (8 + 29 + 4 + 22 * TP_MERGE_MAX_RULES)

struct tp_merge_authority
{
    tp_client_t *client;
    tp_producer_t *producer;
    tp_bus_publication_t *pub;
    tp_bus_subscription_t *sub;
    int64_t period_ns;
    int64_t next_announce_ns;
    bool has_map;
    bool is_due; /* a new map or a new epoch: announce at once */
    tp_merge_map_t map;
    int work;
    tp_merge_authority_counters_t counters;
};

int tp_merge_authority_init(tp_merge_authority_t **out, tp_client_t *client, tp_producer_t *producer,
    uint32_t period_ms)
{
    *out = NULL;
    tp_merge_authority_t *a = NULL;
    if (tp_alloc((void **)&a, sizeof(*a)) < 0)
    {
        return -1;
    }
    a->client = client;
    a->producer = producer;
    a->period_ns = (int64_t)(period_ms == 0 ? DEFAULT_PERIOD_MS : period_ms) * TP_NS_PER_MS;
    /* J-10.1-1: the shared control stream (not a per-consumer one: see docs/GUIDE.md, "Join barriers"). */
    if (tp_bus_publication_open(&a->pub, client->bus, client->config.control_channel,
            (int32_t)client->config.control_stream_id, false) < 0 ||
        tp_bus_subscription_open(&a->sub, client->bus, client->config.control_channel,
            (int32_t)client->config.control_stream_id, NULL, NULL, NULL) < 0)
    {
        TP_APPEND_ERR("opening the merge-map authority on control stream %" PRIu32, client->config.control_stream_id);
        tp_bus_publication_close(a->pub);
        tp_free(a);
        return -1;
    }
    tp_client_retain(client);
    *out = a;
    return 0;
}

int tp_merge_authority_close(tp_merge_authority_t *a)
{
    if (a == NULL)
    {
        return 0;
    }
    tp_bus_subscription_close(a->sub);
    tp_bus_publication_close(a->pub);
    tp_client_t *client = a->client;
    tp_free(a);
    tp_client_release(client);
    return 0;
}

int tp_merge_authority_set_map(tp_merge_authority_t *a, const tp_merge_map_t *map)
{
    if (tp_merge_map_validate(map) < 0)
    {
        TP_APPEND_ERR("the authority announces valid maps only");
        return -1;
    }
    a->map = *map;
    a->has_map = true;
    a->is_due = true;
    return 0;
}

static void announce(tp_merge_authority_t *a, int64_t now_ns)
{
    uint8_t buf[ANNOUNCE_BYTES];
    int64_t n = tp_merge_map_encode(&a->map, buf, sizeof(buf));
    if (n > 0 && tp_bus_offer(a->pub, buf, (size_t)n) >= 0)
    {
        a->counters.announces++;
        a->work++;
    }
    a->is_due = false;
    a->next_announce_ns = now_ns + a->period_ns;
}

typedef struct request_context
{
    tp_merge_authority_t *a;
    bool is_asked;
} request_context_t;

static void on_control(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    request_context_t *ctx = clientd;
    tp_merge_authority_t *a = ctx->a;
    tp_sbe_header_t h;
    /* J-14-1: only schema-903 requests are decoded; the driver's traffic shares this stream. */
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_MERGE_SCHEMA_ID ||
        (h.template_id != TP_MERGE_SEQUENCE_MERGE_MAP_REQUEST_TEMPLATE_ID &&
            h.template_id != TP_MERGE_TIMESTAMP_MERGE_MAP_REQUEST_TEMPLATE_ID))
    {
        return;
    }
    tp_merge_request_t r;
    if (tp_merge_request_decode(&r, buffer, length) < 0)
    {
        return;
    }
    /* J-10.1-7, J-10.3-3, J-10.4-6: every request for (our output, our epoch) is answered with its announce. */
    if (a->has_map && r.out_stream_id == a->map.out_stream_id && r.epoch == a->map.epoch)
    {
        a->counters.requests++;
        ctx->is_asked = true;
    }
    else
    {
        a->counters.requests_other++;
    }
}

int tp_merge_authority_do_work(tp_merge_authority_t *a, int64_t now_ns)
{
    a->work = 0;
    if (a->has_map && a->producer != NULL && tp_producer_is_attached(a->producer) &&
        tp_producer_epoch(a->producer) != a->map.epoch)
    {
        /* J-6.4-3: a new output epoch needs a fresh map: the same rules, scoped to it, announced now. */
        a->map.epoch = tp_producer_epoch(a->producer);
        a->is_due = true;
    }
    request_context_t ctx = {a, false};
    a->work += tp_bus_poll(a->sub, on_control, &ctx, 16) > 0 ? 1 : 0;
    if (a->has_map && (ctx.is_asked || a->is_due || now_ns >= a->next_announce_ns))
    {
        announce(a, now_ns); /* J-10.1-6s: soft state, re-announced every period */
    }
    tp_bus_publication_do_work(a->pub);
    return a->work;
}

void tp_merge_authority_counters(const tp_merge_authority_t *a, tp_merge_authority_counters_t *out)
{
    *out = a->counters;
}
