/* The discovery provider; see tp_discovery_provider.h. */
#include "discovery/tp_discovery_provider.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "tp_sbe_discovery.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "wire/tp_sbe.h"

#define MAX_DRIVERS 32
#define MAX_POOLS 16
#define URI_MAX 4160
#define MAX_ENDPOINTS 16
#define RESPONSE_BYTES (4u << 20)

typedef struct entry_pool
{
    uint16_t pool_id;
    uint32_t nslots;
    uint32_t stride_bytes;
    char uri[URI_MAX];
} entry_pool_t;

typedef struct entry
{
    bool in_use;
    int driver;
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t epoch;
    bool is_restarted; /* its driver said it shuts down: the next announce's epoch is taken even if lower */
    uint32_t layout_version;
    uint32_t header_nslots;
    uint32_t pool_count;
    entry_pool_t pools[MAX_POOLS];
    char header_uri[URI_MAX];
    int64_t last_announce_ns;
    int64_t created_ns;
    char name[TP_DISCOVERY_NAME_MAX];
    uint32_t tag_count;
    char tags[TP_DISCOVERY_MAX_TAGS][TP_DISCOVERY_TAG_MAX];
} entry_t;

typedef struct endpoint
{
    char channel[TP_CONFIG_STRING_MAX];
    uint32_t stream_id;
    tp_bus_publication_t *pub;
    uint64_t last_used;
} endpoint_t;

/* What a driver's configuration says of one of its streams: its name and tags, until the stream's own metadata
 * (DataSourceAnnounce, the "tags" attribute) says otherwise. */
typedef struct default_tags
{
    int driver;
    uint32_t stream_id;
    char name[TP_DISCOVERY_NAME_MAX];
    char csv[TP_DISCOVERY_MAX_TAGS * TP_DISCOVERY_TAG_MAX];
} default_tags_t;

#define MAX_DEFAULT_TAGS 256

struct tp_discovery_provider
{
    default_tags_t defaults[MAX_DEFAULT_TAGS];
    uint32_t default_count;
    tp_bus_t *bus;
    tp_bus_subscription_t *requests;
    int64_t expiry_ns;
    uint32_t max_results;
    tp_discovery_driver_t drivers[MAX_DRIVERS];
    int driver_count;
    entry_t *entries; /* TP_DISCOVERY_MAX_ENTRIES */
    endpoint_t endpoints[MAX_ENDPOINTS];
    uint64_t use_clock;
    uint8_t *scratch; /* RESPONSE_BYTES */
    int64_t now_ns;
    int64_t next_expiry_check_ns; /* entries expire after seconds: looked at every EXPIRY_CHECK_NS, not per poll */
    tp_discovery_counters_t counters;
    int64_t next_log_ns;    /* the next request to log: the first one at or after this */
    uint64_t unlogged;      /* requests since the last one logged */
};

int tp_discovery_provider_open(tp_discovery_provider_t **out, tp_bus_t *bus, const char *request_channel,
    uint32_t request_stream_id, int64_t expiry_ns, uint32_t max_results)
{
    *out = NULL;
    tp_discovery_provider_t *p = NULL;
    if (tp_alloc((void **)&p, sizeof(*p)) < 0)
    {
        return -1;
    }
    p->bus = bus;
    p->expiry_ns = expiry_ns;
    p->max_results = max_results != 0 ? max_results : TP_DISCOVERY_DEFAULT_MAX_RESULTS;
    if (tp_alloc((void **)&p->entries, sizeof(entry_t) * TP_DISCOVERY_MAX_ENTRIES) < 0 ||
        tp_alloc((void **)&p->scratch, RESPONSE_BYTES) < 0 ||
        tp_bus_subscription_open(&p->requests, bus, request_channel, (int32_t)request_stream_id, NULL, NULL, NULL) < 0)
    {
        TP_APPEND_ERR("opening the discovery request stream %s %" PRIu32, request_channel, request_stream_id);
        tp_discovery_provider_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

int64_t tp_discovery_provider_expiry_ns(const tp_discovery_provider_t *p)
{
    return p->expiry_ns;
}

void tp_discovery_provider_close(tp_discovery_provider_t *p)
{
    if (p == NULL)
    {
        return;
    }
    for (int i = 0; i < MAX_ENDPOINTS; i++)
    {
        tp_bus_publication_close(p->endpoints[i].pub);
    }
    tp_bus_subscription_close(p->requests);
    tp_free(p->entries);
    tp_free(p->scratch);
    tp_free(p);
}

int tp_discovery_provider_add_driver(tp_discovery_provider_t *p, const tp_discovery_driver_t *driver)
{
    if (p->driver_count == MAX_DRIVERS)
    {
        TP_SET_ERR(TP_E_CAPACITY, "a discovery provider indexes at most %d drivers", MAX_DRIVERS);
        return -1;
    }
    p->drivers[p->driver_count] = *driver;
    return p->driver_count++;
}

static void set_tags(entry_t *e, const uint8_t *value, size_t length);

static entry_t *entry_for(tp_discovery_provider_t *p, int driver, uint32_t stream_id, bool create)
{
    entry_t *free_entry = NULL;
    for (int i = 0; i < TP_DISCOVERY_MAX_ENTRIES; i++)
    {
        entry_t *e = &p->entries[i];
        if (e->in_use && e->driver == driver && e->stream_id == stream_id)
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
    free_entry->driver = driver;
    free_entry->stream_id = stream_id;
    free_entry->created_ns = p->now_ns;
    for (uint32_t i = 0; i < p->default_count; i++)
    {
        if (p->defaults[i].driver == driver && p->defaults[i].stream_id == stream_id)
        {
            set_tags(free_entry, (const uint8_t *)p->defaults[i].csv, strlen(p->defaults[i].csv));
            snprintf(free_entry->name, sizeof(free_entry->name), "%s", p->defaults[i].name);
        }
    }
    return free_entry;
}

static void copy_bytes(char *out, size_t capacity, tp_sbe_bytes_t b)
{
    size_t n = b.length < capacity - 1 ? b.length : capacity - 1;
    memcpy(out, b.data, n);
    out[n] = '\0';
}

/* ShmPoolAnnounce: the entry's layout and epoch (a newer epoch replaces it, an older one is ignored). */
static void on_pool_announce(tp_discovery_provider_t *p, int driver, const uint8_t *buffer, size_t length)
{
    tp_wire_shm_pool_announce_t m;
    if (tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0)
    {
        p->counters.malformed++;
        return;
    }
    entry_t *e = entry_for(p, driver, tp_wire_shm_pool_announce_stream_id(&m), true);
    if (e == NULL)
    {
        return;
    }
    uint64_t epoch = tp_wire_shm_pool_announce_epoch(&m);
    if (e->last_announce_ns != 0 && epoch < e->epoch && !e->is_restarted)
    {
        p->counters.epoch_regressions++; /* discovery spec 6.3 */
        return;
    }
    e->epoch = epoch;
    e->is_restarted = false;
    e->producer_id = tp_wire_shm_pool_announce_producer_id(&m);
    e->layout_version = tp_wire_shm_pool_announce_layout_version(&m);
    e->header_nslots = tp_wire_shm_pool_announce_header_nslots(&m);
    copy_bytes(e->header_uri, sizeof(e->header_uri), tp_wire_shm_pool_announce_header_region_uri(&m));
    tp_wire_shm_pool_announce_payload_pools_t g;
    tp_wire_shm_pool_announce_payload_pools(&m, &g);
    e->pool_count = 0;
    while (tp_wire_shm_pool_announce_payload_pools_next(&g) && e->pool_count < MAX_POOLS)
    {
        entry_pool_t *pool = &e->pools[e->pool_count++];
        pool->pool_id = tp_wire_shm_pool_announce_payload_pools_pool_id(&g);
        pool->nslots = tp_wire_shm_pool_announce_payload_pools_pool_nslots(&g);
        pool->stride_bytes = tp_wire_shm_pool_announce_payload_pools_stride_bytes(&g);
        copy_bytes(pool->uri, sizeof(pool->uri), tp_wire_shm_pool_announce_payload_pools_region_uri(&g));
    }
    e->last_announce_ns = p->now_ns;
}

/* Tags from the "tags" attribute: comma-separated, surrounding spaces trimmed, duplicates once. */
static void set_tags(entry_t *e, const uint8_t *value, size_t length)
{
    e->tag_count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= length; i++)
    {
        if (i < length && value[i] != ',')
        {
            continue;
        }
        size_t a = start, b = i;
        while (a < b && value[a] == ' ')
        {
            a++;
        }
        while (b > a && value[b - 1] == ' ')
        {
            b--;
        }
        start = i + 1;
        if (b == a || b - a >= TP_DISCOVERY_TAG_MAX || e->tag_count == TP_DISCOVERY_MAX_TAGS)
        {
            continue;
        }
        char tag[TP_DISCOVERY_TAG_MAX];
        memcpy(tag, value + a, b - a);
        tag[b - a] = '\0';
        bool seen = false;
        for (uint32_t k = 0; k < e->tag_count && !seen; k++)
        {
            seen = strcmp(e->tags[k], tag) == 0;
        }
        if (!seen)
        {
            memcpy(e->tags[e->tag_count++], tag, b - a + 1);
        }
    }
}

int tp_discovery_provider_set_defaults(tp_discovery_provider_t *p, int driver, uint32_t stream_id, const char *name,
    const char *csv)
{
    if (p->default_count == MAX_DEFAULT_TAGS || strlen(csv) >= sizeof(p->defaults[0].csv) ||
        strlen(name) >= sizeof(p->defaults[0].name))
    {
        TP_SET_ERR(TP_E_CAPACITY, "too many configured streams, or a name or tags too long for discovery");
        return -1;
    }
    default_tags_t *t = &p->defaults[p->default_count++];
    t->driver = driver;
    t->stream_id = stream_id;
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->csv, sizeof(t->csv), "%s", csv);
    entry_t *e = entry_for(p, driver, stream_id, false);
    if (e != NULL)
    {
        set_tags(e, (const uint8_t *)csv, strlen(csv));
        if (e->name[0] == '\0')
        {
            snprintf(e->name, sizeof(e->name), "%s", name);
        }
    }
    return 0;
}

static void on_metadata(tp_discovery_provider_t *p, int driver, uint16_t template_id, const uint8_t *buffer,
    size_t length)
{
    if (template_id == TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID)
    {
        tp_wire_data_source_announce_t m;
        entry_t *e = tp_wire_data_source_announce_decode(&m, buffer, length) == 0
            ? entry_for(p, driver, tp_wire_data_source_announce_stream_id(&m), true)
            : NULL;
        tp_sbe_bytes_t name = e != NULL ? tp_wire_data_source_announce_name(&m) : (tp_sbe_bytes_t){ 0 };
        if (name.length >= sizeof(e->name))
        {
            p->counters.malformed++; /* discovery spec 5.1: at most 256 bytes, and never returned cut short */
            return;
        }
        if (name.length > 0)
        {
            copy_bytes(e->name, sizeof(e->name), name); /* the stream's own name replaces the configured one */
        }
        return;
    }
    tp_wire_data_source_meta_t m;
    entry_t *e = tp_wire_data_source_meta_decode(&m, buffer, length) == 0
        ? entry_for(p, driver, tp_wire_data_source_meta_stream_id(&m), true)
        : NULL;
    if (e == NULL)
    {
        return;
    }
    tp_wire_data_source_meta_attributes_t g;
    tp_wire_data_source_meta_attributes(&m, &g);
    while (tp_wire_data_source_meta_attributes_next(&g))
    {
        tp_sbe_bytes_t key = tp_wire_data_source_meta_attributes_key(&g);
        if (key.length == 4 && memcmp(key.data, "tags", 4) == 0)
        {
            tp_sbe_bytes_t v = tp_wire_data_source_meta_attributes_value(&g);
            set_tags(e, v.data, v.length);
        }
    }
}

void tp_discovery_provider_on_message(tp_discovery_provider_t *p, int driver, const uint8_t *buffer, size_t length,
    int64_t now_ns)
{
    tp_sbe_header_t h;
    p->now_ns = now_ns;
    /* Discovery spec 4.2: on a shared stream, decide by schema and template before decoding. */
    if (driver < 0 || driver >= p->driver_count || tp_sbe_header_read(&h, buffer, length) < 0)
    {
        return;
    }
    if (h.schema_id == TP_DRIVER_SCHEMA_ID && h.template_id == TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID &&
        h.version <= TP_DRIVER_SCHEMA_VERSION)
    {
        /* Discovery spec 6.3: the driver is going away; whatever epochs its successor announces are taken. */
        for (int i = 0; i < TP_DISCOVERY_MAX_ENTRIES; i++)
        {
            p->entries[i].is_restarted |= p->entries[i].in_use && p->entries[i].driver == driver;
        }
        p->counters.driver_restarts++;
        return;
    }
    if (h.schema_id != TP_WIRE_SCHEMA_ID || h.version > TP_WIRE_SCHEMA_VERSION)
    {
        return;
    }
    if (h.template_id == TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID)
    {
        on_pool_announce(p, driver, buffer, length);
    }
    else if (h.template_id == TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID ||
             h.template_id == TP_WIRE_DATA_SOURCE_META_TEMPLATE_ID)
    {
        on_metadata(p, driver, h.template_id, buffer, length);
    }
}

/* ---- requests ---- */

typedef struct request
{
    uint64_t request_id;
    bool has_stream_id, has_producer_id, has_data_source_id;
    uint32_t stream_id;
    uint32_t producer_id;
    uint64_t data_source_id;
    uint32_t tag_count;
    char tags[TP_DISCOVERY_MAX_TAGS][TP_DISCOVERY_TAG_MAX];
    bool has_too_many_tags;
    size_t name_too_long; /* the length of a name over 256 bytes, else 0 */
    char name[TP_DISCOVERY_NAME_MAX];
    size_t name_length;
    bool has_name;
} request_t;

static bool entry_is_live(const tp_discovery_provider_t *p, const entry_t *e)
{
    return e->in_use && e->last_announce_ns != 0 && p->now_ns - e->last_announce_ns <= p->expiry_ns;
}

/* Discovery spec 5.1: every filter given must hold (AND); names and tags compare byte for byte. */
static bool matches(const tp_discovery_provider_t *p, const entry_t *e, const request_t *r)
{
    if (!entry_is_live(p, e) || p->drivers[e->driver].control_stream_id == 0 ||
        p->drivers[e->driver].control_channel[0] == '\0')
    {
        return false;
    }
    if ((r->has_stream_id && e->stream_id != r->stream_id) ||
        (r->has_producer_id && e->producer_id != r->producer_id) ||
        r->has_data_source_id /* no entry carries a data source id */ ||
        (r->has_name && (strlen(e->name) != r->name_length || memcmp(e->name, r->name, r->name_length) != 0)))
    {
        return false;
    }
    for (uint32_t i = 0; i < r->tag_count; i++)
    {
        bool found = false;
        for (uint32_t k = 0; k < e->tag_count && !found; k++)
        {
            found = strcmp(e->tags[k], r->tags[i]) == 0;
        }
        if (!found)
        {
            return false;
        }
    }
    return true;
}

static tp_bus_publication_t *endpoint_for(tp_discovery_provider_t *p, const char *channel, uint32_t stream_id)
{
    endpoint_t *oldest = &p->endpoints[0];
    for (int i = 0; i < MAX_ENDPOINTS; i++)
    {
        endpoint_t *ep = &p->endpoints[i];
        if (ep->pub != NULL && ep->stream_id == stream_id && strcmp(ep->channel, channel) == 0)
        {
            ep->last_used = ++p->use_clock;
            return ep->pub;
        }
        if (ep->pub == NULL || ep->last_used < oldest->last_used)
        {
            oldest = ep;
        }
    }
    tp_bus_publication_close(oldest->pub);
    oldest->pub = NULL;
    if (tp_bus_publication_open(&oldest->pub, p->bus, channel, (int32_t)stream_id, false) < 0)
    {
        oldest->pub = NULL;
        return NULL;
    }
    snprintf(oldest->channel, sizeof(oldest->channel), "%s", channel);
    oldest->stream_id = stream_id;
    oldest->last_used = ++p->use_clock;
    return oldest->pub;
}

static void encode_result(tp_discovery_provider_t *p, tp_discovery_discovery_response_results_enc_t *g,
    const entry_t *e)
{
    const tp_discovery_driver_t *d = &p->drivers[e->driver];
    tp_discovery_discovery_response_results_enc_next(g);
    tp_discovery_discovery_response_results_set_stream_id(g, e->stream_id);
    tp_discovery_discovery_response_results_set_producer_id(g, e->producer_id);
    tp_discovery_discovery_response_results_set_epoch(g, e->epoch);
    tp_discovery_discovery_response_results_set_layout_version(g, e->layout_version);
    tp_discovery_discovery_response_results_set_header_nslots(g, e->header_nslots);
    tp_discovery_discovery_response_results_set_header_slot_bytes(g, 256); /* discovery spec 5.2 */
    tp_discovery_discovery_response_results_set_max_dims(g, 8);
    tp_discovery_discovery_response_results_set_data_source_id(g, UINT64_MAX);
    tp_discovery_discovery_response_results_set_driver_control_stream_id(g, d->control_stream_id);
    tp_discovery_discovery_response_results_payload_pools_enc_t pools;
    tp_discovery_discovery_response_results_payload_pools_begin(g, &pools, (uint16_t)e->pool_count);
    for (uint32_t i = 0; i < e->pool_count; i++)
    {
        const entry_pool_t *pool = &e->pools[i];
        tp_discovery_discovery_response_results_payload_pools_enc_next(&pools);
        tp_discovery_discovery_response_results_payload_pools_set_pool_id(&pools, pool->pool_id);
        /* Discovery spec 5.2: pool_nslots equals header_nslots (as the driver spec requires of the announce). */
        tp_discovery_discovery_response_results_payload_pools_set_pool_nslots(&pools, pool->nslots);
        tp_discovery_discovery_response_results_payload_pools_set_stride_bytes(&pools, pool->stride_bytes);
        tp_discovery_discovery_response_results_payload_pools_put_region_uri(&pools, pool->uri, strlen(pool->uri));
    }
    tp_discovery_discovery_response_results_payload_pools_end(&pools);
    tp_discovery_discovery_response_results_tags_enc_t tags;
    tp_discovery_discovery_response_results_tags_begin(g, &tags, (uint16_t)e->tag_count);
    for (uint32_t i = 0; i < e->tag_count; i++)
    {
        tp_discovery_discovery_response_results_tags_enc_next(&tags);
        tp_discovery_discovery_response_results_tags_put_tag(&tags, e->tags[i], strlen(e->tags[i]));
    }
    tp_discovery_discovery_response_results_tags_end(&tags);
    tp_discovery_discovery_response_results_put_header_region_uri(g, e->header_uri, strlen(e->header_uri));
    tp_discovery_discovery_response_results_put_data_source_name(g, e->name, strlen(e->name));
    tp_discovery_discovery_response_results_put_driver_instance_id(g, d->instance_id, strlen(d->instance_id));
    tp_discovery_discovery_response_results_put_driver_control_channel(g, d->control_channel,
        strlen(d->control_channel));
}

static void respond(tp_discovery_provider_t *p, tp_bus_publication_t *pub, const request_t *r)
{
    uint32_t count = 0;
    for (int i = 0; i < TP_DISCOVERY_MAX_ENTRIES; i++)
    {
        count += matches(p, &p->entries[i], r);
    }
    uint8_t status = TP_DISCOVERY_DISCOVERY_STATUS_OK;
    char error[TP_DISCOVERY_ERROR_MAX] = "";
    if (r->has_too_many_tags)
    {
        status = TP_DISCOVERY_DISCOVERY_STATUS_ERROR;
        snprintf(error, sizeof(error), "more than %d tags in the request", TP_DISCOVERY_MAX_TAGS);
    }
    else if (r->name_too_long != 0)
    {
        /* Discovery spec 5.1: names are at most 256 bytes; a longer one cut short could match another name. */
        count = 0;
        status = TP_DISCOVERY_DISCOVERY_STATUS_ERROR;
        snprintf(error, sizeof(error), "data_source_name of %zu bytes: names are at most %d bytes", r->name_too_long,
            TP_DISCOVERY_NAME_MAX - 1);
    }
    else if (count > p->max_results)
    {
        /* Discovery spec 5.2: capped; the client narrows its filters. */
        status = TP_DISCOVERY_DISCOVERY_STATUS_ERROR;
        snprintf(error, sizeof(error), "%" PRIu32 " streams match, more than the %" PRIu32 " a response carries; "
            "narrow the filters", count, p->max_results);
    }
    /* Zero matches is a request processed successfully: OK with an empty group (discovery spec 5.2). NOT_FOUND is
     * for streams an access policy hides, and this provider has no access policy. */
    tp_discovery_discovery_response_enc_t e;
    tp_discovery_discovery_response_enc_begin(&e, p->scratch, RESPONSE_BYTES);
    tp_discovery_discovery_response_set_request_id(&e, r->request_id);
    tp_discovery_discovery_response_set_status(&e, status);
    tp_discovery_discovery_response_results_enc_t g;
    bool ok = status == TP_DISCOVERY_DISCOVERY_STATUS_OK;
    tp_discovery_discovery_response_results_begin(&e, &g, ok ? (uint16_t)count : 0);
    for (int i = 0; ok && i < TP_DISCOVERY_MAX_ENTRIES; i++)
    {
        if (matches(p, &p->entries[i], r))
        {
            encode_result(p, &g, &p->entries[i]);
        }
    }
    tp_discovery_discovery_response_results_end(&g);
    tp_discovery_discovery_response_put_error_message(&e, error, strlen(error));
    int64_t n = tp_discovery_discovery_response_enc_finish(&e);
    if (n > 0 && tp_bus_offer(pub, p->scratch, (size_t)n) > 0)
    {
        p->counters.responses++;
    }
}

/* Discovery spec 13: a busy provider logs a sample of its requests, not each one. */
static void log_sampled(tp_discovery_provider_t *p, const request_t *r, const char *channel, uint32_t stream)
{
    if (p->now_ns < p->next_log_ns)
    {
        p->unlogged++;
        return;
    }
    TP_LOG_I("discovery", "request %" PRIu64 " (name '%.*s', %u tag(s), stream %s%" PRIu32 ") answered on %s %" PRIu32
        "; %" PRIu64 " more since the last one logged", r->request_id, (int)r->name_length, r->name,
        (unsigned)r->tag_count, r->has_stream_id ? "" : "any/", r->has_stream_id ? r->stream_id : 0, channel, stream,
        p->unlogged);
    p->counters.requests_logged++;
    p->unlogged = 0;
    p->next_log_ns = p->now_ns + TP_DISCOVERY_LOG_PERIOD_NS;
}

static void on_request(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_discovery_provider_t *p = clientd;
    tp_sbe_header_t h;
    tp_discovery_discovery_request_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_DISCOVERY_SCHEMA_ID ||
        h.template_id != TP_DISCOVERY_DISCOVERY_REQUEST_TEMPLATE_ID)
    {
        return; /* discovery spec 4.2: not a discovery request (a shared stream carries other traffic) */
    }
    p->counters.requests++;
    if (h.version > TP_DISCOVERY_SCHEMA_VERSION || tp_discovery_discovery_request_decode(&m, buffer, length) < 0)
    {
        p->counters.malformed++;
        return;
    }
    char channel[TP_CONFIG_STRING_MAX];
    tp_sbe_bytes_t ch = tp_discovery_discovery_request_response_channel(&m);
    uint32_t stream = tp_discovery_discovery_request_response_stream_id(&m);
    /* Discovery spec 5.1: no endpoint to answer on (an empty channel, stream 0, one we cannot name): dropped,
     * never answered on the request stream or anywhere else. */
    if (ch.length == 0 || ch.length >= sizeof(channel) || stream == 0)
    {
        p->counters.dropped_requests++;
        return;
    }
    copy_bytes(channel, sizeof(channel), ch);
    request_t r;
    memset(&r, 0, sizeof(r));
    r.request_id = tp_discovery_discovery_request_request_id(&m);
    r.has_stream_id = tp_discovery_discovery_request_has_stream_id(&m);
    r.stream_id = tp_discovery_discovery_request_stream_id(&m);
    r.has_producer_id = tp_discovery_discovery_request_has_producer_id(&m);
    r.producer_id = tp_discovery_discovery_request_producer_id(&m);
    r.has_data_source_id = tp_discovery_discovery_request_has_data_source_id(&m);
    r.data_source_id = tp_discovery_discovery_request_data_source_id(&m);
    tp_sbe_bytes_t name = tp_discovery_discovery_request_data_source_name(&m);
    r.has_name = name.length > 0; /* discovery spec 5.0: length 0 is "not provided" */
    r.name_too_long = name.length >= sizeof(r.name) ? name.length : 0;
    r.name_length = name.length < sizeof(r.name) ? name.length : sizeof(r.name) - 1;
    memcpy(r.name, name.data, r.name_length);
    tp_discovery_discovery_request_tags_t tags;
    tp_discovery_discovery_request_tags(&m, &tags);
    while (tp_discovery_discovery_request_tags_next(&tags))
    {
        tp_sbe_bytes_t tag = tp_discovery_discovery_request_tags_tag(&tags);
        char text[TP_DISCOVERY_TAG_MAX];
        if (tag.length == 0 || tag.length >= sizeof(text))
        {
            continue;
        }
        copy_bytes(text, sizeof(text), tag);
        bool seen = false; /* discovery spec 5.1: a tag given twice is one tag */
        for (uint32_t i = 0; i < r.tag_count && !seen; i++)
        {
            seen = strcmp(r.tags[i], text) == 0;
        }
        if (!seen && r.tag_count == TP_DISCOVERY_MAX_TAGS)
        {
            r.has_too_many_tags = true;
        }
        else if (!seen)
        {
            memcpy(r.tags[r.tag_count++], text, strlen(text) + 1);
        }
    }
    log_sampled(p, &r, channel, stream);
    tp_bus_publication_t *pub = endpoint_for(p, channel, stream);
    if (pub == NULL)
    {
        p->counters.dropped_requests++;
        TP_LOG_D("discovery", "request %" PRIu64 ": cannot publish to %s %" PRIu32 ": %s", r.request_id, channel,
            stream, tp_errmsg());
        return;
    }
    respond(p, pub, &r);
}

/* The driver polls its provider on every turn of its loop, which a crowd's keepalives make thousands a second. */
#define EXPIRY_CHECK_NS (10LL * 1000 * 1000)

int tp_discovery_provider_poll(tp_discovery_provider_t *p, int64_t now_ns)
{
    p->now_ns = now_ns;
    int work = tp_bus_poll(p->requests, on_request, p, 16);
    for (int i = 0; i < MAX_ENDPOINTS && work >= 0; i++)
    {
        if (p->endpoints[i].pub != NULL)
        {
            work += tp_bus_publication_do_work(p->endpoints[i].pub); /* UDP answers: retransmits, heartbeats */
        }
    }
    if (now_ns < p->next_expiry_check_ns)
    {
        return work > 0 ? work : 0;
    }
    p->next_expiry_check_ns = now_ns + EXPIRY_CHECK_NS;
    for (int i = 0; i < TP_DISCOVERY_MAX_ENTRIES; i++)
    {
        entry_t *e = &p->entries[i];
        int64_t heard = e->last_announce_ns != 0 ? e->last_announce_ns : e->created_ns;
        if (e->in_use && now_ns - heard > p->expiry_ns)
        {
            /* Discovery spec 6.2: no announce within the window: gone (metadata arrives again with the stream). */
            e->in_use = false;
            p->counters.expired++;
            work++;
        }
    }
    return work > 0 ? work : 0;
}

void tp_discovery_provider_counters(const tp_discovery_provider_t *p, tp_discovery_counters_t *out)
{
    *out = p->counters;
}

size_t tp_discovery_provider_entry_count(const tp_discovery_provider_t *p)
{
    size_t n = 0;
    for (int i = 0; i < TP_DISCOVERY_MAX_ENTRIES; i++)
    {
        n += entry_is_live(p, &p->entries[i]);
    }
    return n;
}
