/*
 * The discovery client (discovery spec 5, 7): a DiscoveryRequest with a request id and our response endpoint,
 * resent until an answer with that id arrives; answers to other ids are dropped; results are checked (authority
 * fields, pool slots) and de-duplicated. Results are advisory: attaching goes through the driver they name.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "core/tp_proc.h"
#include "client/tp_client_conductor.h"
#include "tensorpool/tp_discovery.h"
#include "tp_sbe_discovery.h"
#include "wire/tp_sbe.h"

#define TP_DISCOVERY_REQUERIES 2 /* asking again when results contradict the driver's announces */
#define RESEND_NS (50 * TP_NS_PER_MS) /* requests are idempotent; over UDP a reply can miss a receiver that joined late */

void tp_discovery_query_init(tp_discovery_query_t *q)
{
    memset(q, 0, sizeof(*q));
}

static void copy_text(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    size_t n = b.length < capacity - 1 ? b.length : capacity - 1;
    memcpy(out, b.data, n);
    out[n] = '\0';
}

/* Copy a text field that must arrive whole: false when it does not fit or holds a NUL byte (a name compared
 * byte for byte would otherwise match on a prefix). */
static bool copy_exact(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    copy_text(out, capacity, b);
    return b.length < capacity && memchr(b.data, '\0', b.length) == NULL;
}

static void take_result(tp_discovery_answer_t *a, tp_discovery_discovery_response_results_t *g)
{
    tp_discovery_result_t r;
    memset(&r, 0, sizeof(r));
    r.stream_id = tp_discovery_discovery_response_results_stream_id(g);
    r.producer_id = tp_discovery_discovery_response_results_producer_id(g);
    r.epoch = tp_discovery_discovery_response_results_epoch(g);
    r.layout_version = tp_discovery_discovery_response_results_layout_version(g);
    r.header_nslots = tp_discovery_discovery_response_results_header_nslots(g);
    r.driver_control_stream_id = tp_discovery_discovery_response_results_driver_control_stream_id(g);
    bool valid = true;
    tp_discovery_discovery_response_results_payload_pools_t pools;
    tp_discovery_discovery_response_results_payload_pools(g, &pools);
    while (tp_discovery_discovery_response_results_payload_pools_next(&pools))
    {
        /* Discovery spec 5.2: a pool whose slot count is not the header's makes the result a protocol error. */
        valid &= tp_discovery_discovery_response_results_payload_pools_pool_nslots(&pools) == r.header_nslots;
        r.pool_count++;
    }
    tp_discovery_discovery_response_results_tags_t tags;
    tp_discovery_discovery_response_results_tags(g, &tags);
    while (tp_discovery_discovery_response_results_tags_next(&tags))
    {
        if (r.tag_count < 16)
        {
            copy_text(r.tags[r.tag_count++], sizeof(r.tags[0]),
                tp_discovery_discovery_response_results_tags_tag(&tags));
        }
    }
    /* Names and the authority are compared byte for byte later: they must arrive whole (discovery spec 5.1). */
    valid &= copy_exact(r.data_source_name, sizeof(r.data_source_name),
        tp_discovery_discovery_response_results_data_source_name(g));
    valid &= copy_exact(r.driver_instance_id, sizeof(r.driver_instance_id),
        tp_discovery_discovery_response_results_driver_instance_id(g));
    valid &= copy_exact(r.driver_control_channel, sizeof(r.driver_control_channel),
        tp_discovery_discovery_response_results_driver_control_channel(g));
    /* Discovery spec 5.2: no authority to attach through, no result. */
    valid &= r.driver_control_channel[0] != '\0' && r.driver_control_stream_id != 0;
    if (!valid)
    {
        a->discarded++;
        return;
    }
    /* Discovery spec 7: one result per (driver instance, stream), the newest epoch; the same again is a duplicate. */
    for (size_t i = 0; i < a->count; i++)
    {
        tp_discovery_result_t *o = &a->results[i];
        if (o->stream_id == r.stream_id && strcmp(o->driver_instance_id, r.driver_instance_id) == 0)
        {
            if (r.epoch > o->epoch)
            {
                *o = r;
            }
            a->discarded++;
            return;
        }
    }
    if (a->count < a->capacity)
    {
        a->results[a->count++] = r;
    }
}

void tp_discovery_take_response(tp_discovery_answer_t *a, const uint8_t *buffer, size_t length)
{
    tp_sbe_header_t h;
    tp_discovery_discovery_response_t m;
    /* Discovery spec 10: the header's schema id and version decide; a newer version is not read. */
    if (a->has_answer || tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_DISCOVERY_SCHEMA_ID ||
        h.version > TP_DISCOVERY_SCHEMA_VERSION || h.template_id != TP_DISCOVERY_DISCOVERY_RESPONSE_TEMPLATE_ID ||
        tp_discovery_discovery_response_decode(&m, buffer, length) < 0 ||
        tp_discovery_discovery_response_request_id(&m) != a->request_id)
    {
        a->foreign++; /* discovery spec 5.2: not an answer to our request */
        return;
    }
    a->has_answer = true;
    a->status = tp_discovery_discovery_response_status(&m);
    copy_text(a->error, sizeof(a->error), tp_discovery_discovery_response_error_message(&m));
    if (a->status != TP_DISCOVERY_DISCOVERY_STATUS_OK)
    {
        return; /* discovery spec 5.2: results of a NOT_FOUND or ERROR answer are ignored */
    }
    tp_discovery_discovery_response_results_t g;
    tp_discovery_discovery_response_results(&m, &g);
    while (tp_discovery_discovery_response_results_next(&g))
    {
        take_result(a, &g);
    }
}

static void on_response(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_discovery_take_response(clientd, buffer, length);
}

static int64_t encode_request(uint8_t *buf, size_t capacity, const tp_client_t *client, uint64_t request_id,
    const tp_discovery_query_t *q)
{
    tp_discovery_discovery_request_enc_t e;
    tp_discovery_discovery_request_enc_begin(&e, buf, capacity);
    tp_discovery_discovery_request_set_request_id(&e, request_id);
    tp_discovery_discovery_request_set_client_id(&e, client->next_client_id);
    tp_discovery_discovery_request_set_response_stream_id(&e, client->config.discovery_response_stream_id);
    tp_discovery_discovery_request_set_stream_id(&e, q->has_stream_id ? q->stream_id : UINT32_MAX);
    tp_discovery_discovery_request_set_producer_id(&e, q->has_producer_id ? q->producer_id : UINT32_MAX);
    tp_discovery_discovery_request_set_data_source_id(&e, UINT64_MAX);
    tp_discovery_discovery_request_tags_enc_t tags;
    size_t n = q->tag_count < TP_DISCOVERY_QUERY_MAX_TAGS ? q->tag_count : TP_DISCOVERY_QUERY_MAX_TAGS;
    tp_discovery_discovery_request_tags_begin(&e, &tags, (uint16_t)n);
    for (size_t i = 0; i < n; i++)
    {
        tp_discovery_discovery_request_tags_enc_next(&tags);
        tp_discovery_discovery_request_tags_put_tag(&tags, q->tags[i], strlen(q->tags[i]));
    }
    tp_discovery_discovery_request_tags_end(&tags);
    const char *channel = client->config.discovery_response_channel;
    tp_discovery_discovery_request_put_response_channel(&e, channel, strlen(channel));
    const char *name = q->data_source_name != NULL ? q->data_source_name : "";
    tp_discovery_discovery_request_put_data_source_name(&e, name, strlen(name));
    return tp_discovery_discovery_request_enc_finish(&e);
}

/* One request and its first valid answer, within the deadline (results into a). */
static int ask(tp_client_t *client, tp_bus_publication_t *pub, tp_bus_subscription_t *sub,
    const tp_discovery_query_t *q, tp_discovery_answer_t *a, int64_t deadline, int64_t timeout_ns)
{
    const tp_client_config_t *k = &client->config;
    /* Random high bits: answers to another client's (or an earlier run's) request are not taken for ours. */
    a->request_id = ((uint64_t)tp_random_u32() << 32) | tp_random_u32();
    uint8_t buf[4096];
    int64_t n = encode_request(buf, sizeof(buf), client, a->request_id, q);
    if (n < 0)
    {
        TP_APPEND_ERR("encoding the discovery request");
        return -1;
    }
    int64_t next_send = 0;
    while (!a->has_answer)
    {
        int64_t now = tp_clock_monotonic_ns();
        if (now > deadline)
        {
            TP_SET_ERR(TP_E_TIMEOUT, "no discovery provider answered on %s stream %" PRIu32 " within %" PRId64 " ms",
                k->discovery_channel, k->discovery_stream_id, (int64_t)(timeout_ns / TP_NS_PER_MS));
            return -1;
        }
        if (now >= next_send)
        {
            /* Over UDP the first offers find no receiver yet (the handshake runs meanwhile): retry soon. */
            int64_t sent = tp_bus_offer(pub, buf, (size_t)n);
            next_send = now + (sent == TP_BUS_NOT_CONNECTED ? RESEND_NS / 5 : RESEND_NS);
        }
        tp_bus_publication_do_work(pub);
        if (tp_bus_poll(sub, on_response, a, 16) == 0)
        {
            tp_bus_subscription_park(sub, TP_NS_PER_MS);
        }
    }
    if (a->status == TP_DISCOVERY_DISCOVERY_STATUS_ERROR)
    {
        TP_SET_ERR(TP_E_REJECTED, "the discovery provider answered ERROR: %s", a->error);
        return -1;
    }
    return 0;
}

/* Discovery spec 7: drop the results about our own driver that its announces contradict (an older epoch, or the
 * same epoch with another layout): the provider is behind. Returns how many were dropped. */
static size_t drop_contradicted(tp_client_t *client, tp_discovery_answer_t *a)
{
    tp_client_conductor_do_work(client->conductor, tp_client_now(client)); /* the announces meanwhile */
    size_t kept = 0;
    for (size_t i = 0; i < a->count; i++)
    {
        const tp_discovery_result_t *r = &a->results[i];
        const tp_announced_t *n = tp_client_announced(client, r->stream_id);
        bool is_ours = r->driver_control_stream_id == client->config.control_stream_id &&
            strcmp(r->driver_control_channel, client->config.control_channel) == 0;
        bool is_stale = is_ours && n != NULL &&
            (r->epoch < n->epoch ||
                (r->epoch == n->epoch && (r->layout_version != n->layout_version ||
                                             r->header_nslots != n->header_nslots)));
        if (!is_stale)
        {
            a->results[kept++] = *r;
        }
    }
    size_t dropped = a->count - kept;
    a->count = kept;
    a->discarded += dropped;
    return dropped;
}

int tp_discover(tp_client_t *client, const tp_discovery_query_t *q, tp_discovery_result_t *results, size_t capacity,
    size_t *count, int64_t timeout_ns)
{
    *count = 0;
    const tp_client_config_t *k = &client->config;
    if (q->data_source_name != NULL && strlen(q->data_source_name) > TP_DISCOVERY_NAME_BYTES_MAX)
    {
        /* Discovery spec 5.1: no stream has such a name; asking would only make the provider refuse. */
        TP_SET_ERR(TP_E_INVALID, "data source name of %zu bytes: names are at most %d bytes",
            strlen(q->data_source_name), TP_DISCOVERY_NAME_BYTES_MAX);
        return -1;
    }
    tp_bus_subscription_t *sub = NULL;
    tp_bus_publication_t *pub = NULL;
    /* Subscribe first: the answer may come at once. */
    if (tp_bus_subscription_open(&sub, client->bus, k->discovery_response_channel,
            (int32_t)k->discovery_response_stream_id, NULL, NULL, NULL) < 0 ||
        tp_bus_publication_open(&pub, client->bus, k->discovery_channel, (int32_t)k->discovery_stream_id, false) < 0)
    {
        tp_bus_subscription_close(sub);
        TP_APPEND_ERR("opening the discovery streams");
        return -1;
    }
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    int rc = 0;
    /* A provider behind the driver's announces is asked again, up to twice; what still disagrees is left out. */
    for (int attempt = 0; attempt < 1 + TP_DISCOVERY_REQUERIES; attempt++)
    {
        tp_discovery_answer_t a;
        memset(&a, 0, sizeof(a));
        a.results = results;
        a.capacity = capacity;
        rc = ask(client, pub, sub, q, &a, deadline, timeout_ns);
        if (rc < 0)
        {
            break;
        }
        size_t dropped = drop_contradicted(client, &a);
        *count = a.count;
        if (dropped == 0)
        {
            break;
        }
        TP_LOG_I("discovery", "%zu result(s) older than the driver's announces; asking again", dropped);
    }
    tp_bus_publication_close(pub);
    tp_bus_subscription_close(sub);
    return rc;
}

int tp_consumer_attach_by_name(tp_consumer_t **out, tp_client_t *client, const char *name, int64_t timeout_ns)
{
    *out = NULL;
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = name;
    static __thread tp_discovery_result_t results[8];
    size_t count = 0;
    if (tp_discover(client, &q, results, 8, &count, timeout_ns) < 0)
    {
        return -1;
    }
    for (size_t i = 0; i < count; i++)
    {
        const tp_discovery_result_t *r = &results[i];
        /* Discovery spec 5.1: names compare byte for byte, whatever the provider matched. Spec 7: attach through
         * the driver the result names, and only through it; the attach maps what the driver answers, never the
         * URIs of the result. */
        if (strcmp(r->data_source_name, name) == 0 &&
            strcmp(r->driver_control_channel, client->config.control_channel) == 0 &&
            r->driver_control_stream_id == client->config.control_stream_id)
        {
            return tp_consumer_attach(out, client, r->stream_id, timeout_ns);
        }
    }
    size_t named = 0;
    for (size_t i = 0; i < count; i++)
    {
        if (strcmp(results[i].data_source_name, name) == 0)
        {
            results[named++] = results[i];
        }
    }
    if (named == 0)
    {
        TP_SET_ERR(TP_E_REJECTED, "no stream is announced as '%s'", name);
    }
    else
    {
        TP_SET_ERR(TP_E_REJECTED, "'%s' is stream %" PRIu32 " of driver %s (%s stream %" PRIu32 "); connect a client "
            "to that driver", name, results[0].stream_id, results[0].driver_instance_id,
            results[0].driver_control_channel, results[0].driver_control_stream_id);
    }
    return -1;
}
