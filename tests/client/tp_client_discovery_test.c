/*
 * Discovery (discovery spec) with the provider embedded in a driver: every filter (name byte for byte, tags all
 * present and counted once, stream and producer ids) and status; results carry the full tag set and the driver's
 * authority; a consumer finds a stream by name and attaches through that driver; requests without a response
 * endpoint are dropped silently. The provider alone: expiry, a newer epoch replaces an entry, an older one is
 * ignored. The client against fake providers: tp_client_discovery_answers_test.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "discovery/tp_discovery_provider.h"
#include "driver/tp_driver_internal.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_discovery.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_metadata.h"
#include "tp_sbe_discovery.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_start_discovery(&F, "client-discovery");
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

typedef struct answers
{
    int count;
    uint64_t ids[16];
} answers_t;

static void on_answer(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    answers_t *a = clientd;
    tp_discovery_discovery_response_t m;
    if (tp_discovery_discovery_response_decode(&m, buffer, length) == 0 && a->count < 16)
    {
        a->ids[a->count++] = tp_discovery_discovery_response_request_id(&m);
    }
}

static void count_responses(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_DISCOVERY_SCHEMA_ID &&
        h.template_id == TP_DISCOVERY_DISCOVERY_RESPONSE_TEMPLATE_ID)
    {
        (*(int *)clientd)++;
    }
}

static void ignore_frame(void *clientd, const tp_frame_t *f)
{
    (void)clientd;
    (void)f;
}

static size_t find(const tp_discovery_query_t *q, tp_discovery_result_t *r, size_t capacity)
{
    size_t n = 0;
    tp_assert_ok(tp_discover(client, q, r, capacity, &n, TIMEOUT_NS));
    return n;
}

static void test_filters_statuses_and_attach(void **state)
{
    (void)state;
    /* covers: Q-5.2-3, Q-2.3-2, Q-7-3, Q-7-5, Q-3-2, Q-5.0-4, Q-5.1-1, Q-5.1-6, Q-5.1-7, Q-5.1-10, Q-5.1-11,
     * covers: Q-5.1-12, Q-5.2-1, Q-5.2-2, Q-5.2-5, Q-5.2-7, Q-5.2-11,
     * Q-5.2-13, Q-5.2-18, Q-5.2-19, Q-6.4-1, Q-2.3-1, Q-3-3, Q-7-2, Q-4.3-2 */
    tp_producer_t *cam = NULL;
    tp_producer_t *lidar = NULL;
    tp_assert_ok(tp_producer_attach(&cam, client, 10, TIMEOUT_NS));
    tp_assert_ok(tp_producer_attach(&lidar, client, 11, TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(cam), "camera-1", "front camera"));
    tp_assert_ok(tp_metadata_set_text(tp_producer_metadata(cam), "tags", "front, RGB,rgb"));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(lidar), "lidar", ""));
    const char *lidar_tags[] = { "top" };
    tp_assert_ok(tp_metadata_set_tags(tp_producer_metadata(lidar), lidar_tags, 1));
    const char *bad_tags[] = { "a,b" };
    tp_assert_fails_with(tp_metadata_set_tags(tp_producer_metadata(lidar), bad_tags, 1), "without commas");
    tp_discovery_result_t r[8];
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = "camera-1";
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (find(&q, r, 8) == 0 || r[0].tag_count == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(cam); /* metadata repeats */
        tp_producer_do_work(lidar);
        usleep(20000);
    }
    assert_int_equal(find(&q, r, 8), 1);
    assert_int_equal(r[0].stream_id, 10);
    assert_string_equal(r[0].data_source_name, "camera-1");
    /* The embedded driver's control endpoint, published through discovery. covers: D-4.11-2s */
    assert_string_equal(r[0].driver_instance_id, "driver-a");
    assert_string_equal(r[0].driver_control_channel, "aeron:ipc?term-length=4m");
    assert_int_equal(r[0].driver_control_stream_id, 1000);
    assert_int_equal(r[0].epoch, tp_producer_epoch(cam));
    assert_int_equal(r[0].header_nslots, 16);
    assert_int_equal(r[0].pool_count, 1);
    assert_int_equal(r[0].tag_count, 3); /* the full set, case kept */
    assert_string_equal(r[0].tags[1], "RGB");
    /* Names byte for byte. */
    q.data_source_name = "Camera-1";
    assert_int_equal(find(&q, r, 8), 0);
    /* Tags: all of them, each once however often asked for. */
    tp_discovery_query_init(&q);
    q.tags[0] = "front";
    q.tags[1] = "rgb";
    q.tag_count = 2;
    assert_int_equal(find(&q, r, 8), 1);
    q.tags[1] = "top";
    assert_int_equal(find(&q, r, 8), 0);
    q.tags[0] = "top";
    q.tag_count = 2;
    assert_int_equal(find(&q, r, 8), 1);
    assert_string_equal(r[0].data_source_name, "lidar");
    q.tags[0] = "Top";
    q.tag_count = 1;
    assert_int_equal(find(&q, r, 8), 0);
    /* Ids, ANDed with the rest. */
    tp_discovery_query_init(&q);
    q.has_stream_id = true;
    q.stream_id = 11;
    assert_int_equal(find(&q, r, 8), 1);
    q.data_source_name = "camera-1";
    assert_int_equal(find(&q, r, 8), 0);
    tp_discovery_query_init(&q);
    q.has_producer_id = true;
    q.producer_id = r[0].producer_id;
    assert_int_equal(find(&q, r, 8), 1);
    tp_discovery_query_init(&q);
    assert_int_equal(find(&q, r, 8), 2);
    /* Find by name, attach through the driver the result names; frames flow. */
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_by_name(&c, client, "camera-1", TIMEOUT_NS));
    assert_int_equal(tp_consumer_epoch(c), tp_producer_epoch(cam));
    /* Nothing per-consumer is taken from a result: the consumer reads the shared streams. covers: Q-5.2-4 */
    assert_int_equal(tp_consumer_descriptor_stream_id(c), 0);
    assert_int_equal(tp_consumer_control_stream_id(c), 0);
    tp_consumer_t *none = NULL;
    tp_assert_fails_with(tp_consumer_attach_by_name(&none, client, "nobody", TIMEOUT_NS), "no stream is announced");
    assert_null(none);
    /* The stream's liveness comes from its driver's announces, not from discovery: the producer leaves, the
     * driver announces the next epoch, and the consumer found by name follows it. covers: Q-7-4 */
    uint64_t first = tp_consumer_epoch(c);
    tp_producer_close(cam);
    deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_consumer_epoch(c) == first || !tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_consumer_poll(c, ignore_frame, NULL, 16) == 0)
        {
            usleep(1000);
        }
    }
    assert_true(tp_consumer_epoch(c) > first);
    tp_consumer_close(c);
    tp_producer_close(lidar);
}

static void test_configured_names_are_found(void **state)
{
    (void)state;
    /* `tp discover --name lidar` found nothing: the names of the driver's configuration were not offered. A stream
     * nobody produces yet is found by its configured name; a producer's DataSourceAnnounce replaces it. */
    tp_discovery_result_t r[8];
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = "lidar";
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (find(&q, r, 8) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
    assert_int_equal(r[0].stream_id, 11);
    assert_string_equal(r[0].data_source_name, "lidar");
    tp_producer_t *cam = NULL;
    tp_assert_ok(tp_producer_attach(&cam, client, 10, TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(cam), "front-camera", ""));
    q.data_source_name = "front-camera";
    while (find(&q, r, 8) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_do_work(cam);
        usleep(20000);
    }
    assert_int_equal(r[0].stream_id, 10);
    q.data_source_name = "cam";
    assert_int_equal(find(&q, r, 8), 0);
    tp_producer_close(cam);
}

static void test_requests_without_endpoint_are_dropped(void **state)
{
    (void)state;
    /* covers: Q-5.1-2, Q-5.1-3, Q-4.3-3, Q-4.2-1 */
    tp_bus_t *bus = NULL;
    tp_bus_publication_t *req = NULL;
    tp_bus_subscription_t *resp = NULL;
    tp_bus_subscription_t *req_echo = NULL;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    tp_assert_ok(tp_bus_publication_open(&req, bus, "aeron:ipc?term-length=1m", 7000, false));
    tp_assert_ok(tp_bus_subscription_open(&resp, bus, "aeron:ipc?term-length=1m", 7004, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open(&req_echo, bus, "aeron:ipc?term-length=1m", 7000, NULL, NULL, NULL));
    uint8_t buf[512];
    const uint64_t ids[3] = { 77, 78, 99 };
    const char *channels[3] = { "", "aeron:ipc?term-length=1m", "aeron:ipc?term-length=1m" };
    const uint32_t streams[3] = { 7004, 0, 7004 };
    for (int i = 0; i < 3; i++)
    {
        if (i == 2)
        {
            /* Another schema on the request stream is skipped, not misread. */
            uint8_t foreign[32] = { 0 };
            uint16_t hdr[4] = { 8, 1, 900, 1 };
            memcpy(foreign, hdr, sizeof(hdr));
            assert_true(tp_bus_offer(req, foreign, sizeof(foreign)) > 0);
        }
        tp_discovery_discovery_request_enc_t e;
        tp_discovery_discovery_request_enc_begin(&e, buf, sizeof(buf));
        tp_discovery_discovery_request_set_request_id(&e, ids[i]);
        tp_discovery_discovery_request_set_response_stream_id(&e, streams[i]);
        tp_discovery_discovery_request_set_stream_id(&e, UINT32_MAX);
        tp_discovery_discovery_request_set_producer_id(&e, UINT32_MAX);
        tp_discovery_discovery_request_set_data_source_id(&e, UINT64_MAX);
        tp_discovery_discovery_request_tags_enc_t tags;
        tp_discovery_discovery_request_tags_begin(&e, &tags, 0);
        tp_discovery_discovery_request_tags_end(&tags);
        tp_discovery_discovery_request_put_response_channel(&e, channels[i], strlen(channels[i]));
        tp_discovery_discovery_request_put_data_source_name(&e, "", 0);
        int64_t n = tp_discovery_discovery_request_enc_finish(&e);
        assert_true(n > 0 && tp_bus_offer(req, buf, (size_t)n) > 0);
    }
    /* Requests are answered in order: once the good one's answer is here, the others were handled. */
    answers_t got = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (got.count == 0 || got.ids[got.count - 1] != 99)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (tp_bus_poll(resp, on_answer, &got, 16) == 0)
        {
            usleep(1000);
        }
    }
    assert_int_equal(got.count, 1); /* nothing for 77 or 78, here or on the request stream */
    int echoed = 0;
    while (tp_bus_poll(req_echo, count_responses, &echoed, 64) > 0)
    {
    }
    assert_int_equal(echoed, 0);
    tp_assert_ok(tp_driver_stop(F.driver));
    tp_discovery_counters_t k;
    tp_discovery_provider_counters(F.driver->discovery, &k);
    assert_int_equal(k.dropped_requests, 2);
    assert_int_equal(k.responses, 1);
    /* An answer is advice: it created no lease. covers: Q-12-1 */
    for (int i = 0; i < TP_DRIVER_MAX_LEASES; i++)
    {
        assert_false(F.driver->leases[i].is_active);
    }
    tp_bus_subscription_close(req_echo);
    tp_bus_subscription_close(resp);
    tp_bus_publication_close(req);
    tp_bus_close(bus);
}

/* ---- the provider alone ---- */

static void announce_stream(tp_discovery_provider_t *p, uint32_t stream, uint64_t epoch, int64_t now)
{
    uint8_t buf[1024];
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_shm_pool_announce_set_stream_id(&e, stream);
    tp_wire_shm_pool_announce_set_epoch(&e, epoch);
    tp_wire_shm_pool_announce_set_announce_clock_domain(&e, TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    tp_wire_shm_pool_announce_set_layout_version(&e, 1);
    tp_wire_shm_pool_announce_set_header_nslots(&e, 8);
    tp_wire_shm_pool_announce_set_header_slot_bytes(&e, 256);
    tp_wire_shm_pool_announce_payload_pools_enc_t pools;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &pools, 0);
    tp_wire_shm_pool_announce_put_header_region_uri(&e, "shm:file?path=/dev/shm/x", 24);
    int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
    assert_true(n > 0);
    tp_discovery_provider_on_message(p, 0, buf, (size_t)n, now);
}

static void announce(tp_discovery_provider_t *p, uint64_t epoch, int64_t now)
{
    announce_stream(p, 5, epoch, now);
}

static void test_provider_expiry_and_epochs(void **state)
{
    (void)state;
    /* covers: Q-6.1-1, Q-6.2-1, Q-6.2-3, Q-6.3-1 */
    tp_discovery_provider_t *p = NULL;
    tp_assert_ok(
        tp_discovery_provider_open(&p, F.driver->bus, "aeron:ipc?term-length=1m", 7100, 300 * TP_NS_PER_MS, 0));
    tp_discovery_driver_t d = { .instance_id = "x", .control_channel = "aeron:ipc", .control_stream_id = 1000 };
    assert_int_equal(tp_discovery_provider_add_driver(p, &d), 0);
    int64_t t = 1000 * TP_NS_PER_S;
    announce(p, 5, t);
    assert_int_equal(tp_discovery_provider_entry_count(p), 1);
    announce(p, 7, t + 1);
    announce(p, 6, t + 2); /* older than what it holds: ignored */
    tp_discovery_counters_t k;
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.epoch_regressions, 1);
    tp_discovery_provider_poll(p, t + 200 * TP_NS_PER_MS);
    assert_int_equal(tp_discovery_provider_entry_count(p), 1);
    tp_discovery_provider_poll(p, t + 400 * TP_NS_PER_MS); /* no announce for longer than the window */
    assert_int_equal(tp_discovery_provider_entry_count(p), 0);
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.expired, 1);
    tp_discovery_provider_close(p);
}

typedef struct answer
{
    bool has_answer;
    uint8_t status;
    uint16_t results;
    char error[1100];
} answer_t;

static void on_status(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    answer_t *a = clientd;
    tp_discovery_discovery_response_t m;
    if (tp_discovery_discovery_response_decode(&m, buffer, length) < 0)
    {
        return;
    }
    tp_discovery_discovery_response_results_t g;
    a->has_answer = true;
    a->status = tp_discovery_discovery_response_status(&m);
    a->results = tp_discovery_discovery_response_results(&m, &g);
    tp_sbe_bytes_t e = tp_discovery_discovery_response_error_message(&m);
    size_t n = e.length < sizeof(a->error) - 1 ? e.length : sizeof(a->error) - 1;
    memcpy(a->error, e.data, n);
    a->error[n] = '\0';
}

/* Ask the provider (stream filter UINT32_MAX: any; `tags` distinct tags), poll it, and return its answer. */
static answer_t ask_as(tp_discovery_provider_t *p, tp_bus_publication_t *req, tp_bus_subscription_t *resp,
    uint32_t client_id, uint32_t stream, const char *name, uint16_t tags, int64_t now)
{
    uint8_t buf[1024];
    tp_discovery_discovery_request_enc_t e;
    tp_discovery_discovery_request_enc_begin(&e, buf, sizeof(buf));
    tp_discovery_discovery_request_set_request_id(&e, 5);
    tp_discovery_discovery_request_set_client_id(&e, client_id);
    tp_discovery_discovery_request_set_response_stream_id(&e, 7304);
    tp_discovery_discovery_request_set_stream_id(&e, stream);
    tp_discovery_discovery_request_set_producer_id(&e, UINT32_MAX);
    tp_discovery_discovery_request_set_data_source_id(&e, UINT64_MAX);
    tp_discovery_discovery_request_tags_enc_t t;
    tp_discovery_discovery_request_tags_begin(&e, &t, tags);
    for (uint16_t i = 0; i < tags; i++)
    {
        char tag[8];
        int len = snprintf(tag, sizeof(tag), "t%u", (unsigned)i);
        tp_discovery_discovery_request_tags_enc_next(&t);
        tp_discovery_discovery_request_tags_put_tag(&t, tag, (size_t)len);
    }
    tp_discovery_discovery_request_tags_end(&t);
    tp_discovery_discovery_request_put_response_channel(&e, "aeron:ipc?term-length=1m", 24);
    tp_discovery_discovery_request_put_data_source_name(&e, name, strlen(name));
    int64_t n = tp_discovery_discovery_request_enc_finish(&e);
    assert_true(n > 0 && tp_bus_offer(req, buf, (size_t)n) > 0);
    assert_true(tp_discovery_provider_poll(p, now) > 0);
    answer_t a = { 0 };
    assert_int_equal(tp_bus_poll(resp, on_status, &a, 1), 1); /* answered within the poll */
    assert_true(a.has_answer);
    return a;
}

static answer_t ask(tp_discovery_provider_t *p, tp_bus_publication_t *req, tp_bus_subscription_t *resp,
    uint32_t stream, const char *name, uint16_t tags, int64_t now)
{
    return ask_as(p, req, resp, 1, stream, name, tags, now);
}

static void test_provider_statuses(void **state)
{
    (void)state;
    tp_discovery_provider_t *p = NULL;
    tp_bus_publication_t *req = NULL;
    tp_bus_subscription_t *resp = NULL;
    tp_assert_ok(tp_discovery_provider_open(&p, F.driver->bus, "aeron:ipc?term-length=1m", 7300, TP_NS_PER_S, 1));
    tp_assert_ok(tp_bus_publication_open(&req, F.driver->bus, "aeron:ipc?term-length=1m", 7300, false));
    tp_assert_ok(tp_bus_subscription_open(&resp, F.driver->bus, "aeron:ipc?term-length=1m", 7304, NULL, NULL, NULL));
    tp_discovery_driver_t d = { .instance_id = "x", .control_channel = "aeron:ipc", .control_stream_id = 1000 };
    assert_int_equal(tp_discovery_provider_add_driver(p, &d), 0);
    int64_t t = tp_clock_monotonic_ns();
    announce_stream(p, 5, 1, t);
    announce_stream(p, 6, 1, t);

    /* One match: OK with it. */
    answer_t a = ask(p, req, resp, 5, "", 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    assert_int_equal(a.results, 1);
    /* The client id is no credential: any value, the same answer. covers: Q-5.1-13 */
    a = ask_as(p, req, resp, 0, 5, "", 0, t);
    assert_int_equal(a.results, 1);
    a = ask_as(p, req, resp, 0xDEADBEEF, 5, "", 0, t);
    assert_int_equal(a.results, 1);
    /* Nothing matches, the request itself was fine: OK with no results, not an error.
     * covers: Q-5.2-15, Q-5.2-16, Q-5.2-17 */
    a = ask(p, req, resp, 9, "", 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    assert_int_equal(a.results, 0);
    a = ask(p, req, resp, UINT32_MAX, "nobody", 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    assert_int_equal(a.results, 0);
    /* More matches than the cap (1 here): ERROR, an empty group, a message that says why.
     * covers: Q-5.2-18, Q-5.2-9s, Q-5.2-10s */
    a = ask(p, req, resp, UINT32_MAX, "", 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_ERROR);
    assert_int_equal(a.results, 0);
    assert_non_null(strstr(a.error, "2 streams match, more than the 1"));
    assert_true(strlen(a.error) <= 1024);
    /* A malformed request (more tags than a request may carry): ERROR, empty. */
    a = ask(p, req, resp, 5, "", TP_DISCOVERY_MAX_TAGS + 1, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_ERROR);
    assert_int_equal(a.results, 0);
    assert_non_null(strstr(a.error, "tags"));
    tp_bus_subscription_close(resp);
    tp_bus_publication_close(req);
    tp_discovery_provider_close(p);
}

static void data_source_name(tp_discovery_provider_t *p, uint32_t stream, const char *name, size_t length, int64_t now)
{
    uint8_t buf[2048];
    tp_wire_data_source_announce_enc_t e;
    tp_wire_data_source_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_data_source_announce_set_stream_id(&e, stream);
    tp_wire_data_source_announce_set_producer_id(&e, 1);
    tp_wire_data_source_announce_set_epoch(&e, 1);
    tp_wire_data_source_announce_set_meta_version(&e, 1);
    tp_wire_data_source_announce_put_name(&e, name, length);
    tp_wire_data_source_announce_put_summary(&e, "", 0);
    int64_t n = tp_wire_data_source_announce_enc_finish(&e);
    assert_true(n > 0);
    tp_discovery_provider_on_message(p, 0, buf, (size_t)n, now);
}

static void driver_shutdown(tp_discovery_provider_t *p, int64_t now)
{
    uint8_t buf[256];
    tp_driver_shm_driver_shutdown_enc_t e;
    tp_driver_shm_driver_shutdown_enc_begin(&e, buf, sizeof(buf));
    tp_driver_shm_driver_shutdown_set_timestamp_ns(&e, (uint64_t)now);
    tp_driver_shm_driver_shutdown_set_reason(&e, TP_DRIVER_SHUTDOWN_REASON_NORMAL);
    tp_driver_shm_driver_shutdown_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_driver_shutdown_enc_finish(&e);
    assert_true(n > 0);
    tp_discovery_provider_on_message(p, 0, buf, (size_t)n, now);
}

static void test_provider_restarts_names_and_log_sampling(void **state)
{
    (void)state;
    tp_discovery_provider_t *p = NULL;
    tp_bus_publication_t *req = NULL;
    tp_bus_subscription_t *resp = NULL;
    tp_assert_ok(tp_discovery_provider_open(&p, F.driver->bus, "aeron:ipc?term-length=1m", 7300, TP_NS_PER_S, 8));
    tp_assert_ok(tp_bus_publication_open(&req, F.driver->bus, "aeron:ipc?term-length=1m", 7300, false));
    tp_assert_ok(tp_bus_subscription_open(&resp, F.driver->bus, "aeron:ipc?term-length=1m", 7304, NULL, NULL, NULL));
    tp_discovery_driver_t d = { .instance_id = "x", .control_channel = "aeron:ipc", .control_stream_id = 1000 };
    assert_int_equal(tp_discovery_provider_add_driver(p, &d), 0);
    int64_t t = tp_clock_monotonic_ns();

    /* An older epoch is ignored, unless the driver said it shuts down: its successor's epochs are taken.
     * covers: Q-6.3-2s */
    announce_stream(p, 5, 7, t);
    announce_stream(p, 5, 2, t);
    tp_discovery_counters_t k;
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.epoch_regressions, 1);
    driver_shutdown(p, t);
    announce_stream(p, 5, 2, t);
    announce_stream(p, 5, 3, t); /* above 2: had 2 not been taken, a regression from 7 */
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.epoch_regressions, 1);
    assert_int_equal(k.driver_restarts, 1);
    announce_stream(p, 5, 1, t); /* and the rule is back for the new driver */
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.epoch_regressions, 2);

    /* Names of at most 256 bytes: one of 256 is found byte for byte; a longer announced name is not taken (it
     * could only be returned cut short), and a longer requested one is refused. covers: Q-5.1-9s */
    char name[400];
    memset(name, 'n', sizeof(name));
    name[256] = '\0';
    data_source_name(p, 5, name, 256, t);
    answer_t a = ask(p, req, resp, UINT32_MAX, name, 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    assert_int_equal(a.results, 1);
    uint64_t malformed = k.malformed;
    data_source_name(p, 5, name, 300, t);
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.malformed, malformed + 1);
    a = ask(p, req, resp, UINT32_MAX, name, 0, t); /* still the 256-byte name */
    assert_int_equal(a.results, 1);
    name[256] = 'n';
    name[300] = '\0';
    a = ask(p, req, resp, UINT32_MAX, name, 0, t);
    assert_int_equal(a.status, TP_DISCOVERY_DISCOVERY_STATUS_ERROR);
    assert_int_equal(a.results, 0);
    tp_test_assert_contains(a.error, "at most 256 bytes");
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = name;
    tp_discovery_result_t r[1];
    size_t n = 0;
    tp_assert_fails_with(tp_discover(client, &q, r, 1, &n, TIMEOUT_NS), "at most 256 bytes");

    /* Requests are logged one per 10 s at most, whatever the rate. covers: Q-13-3s */
    int64_t later = t + 60 * TP_NS_PER_S;
    tp_discovery_provider_counters(p, &k);
    uint64_t logged = k.requests_logged;
    for (int i = 0; i < 20; i++)
    {
        ask(p, req, resp, 5, "", 0, later);
    }
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.requests_logged, logged + 1);
    ask(p, req, resp, 5, "", 0, later + TP_DISCOVERY_LOG_PERIOD_NS - 1);
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.requests_logged, logged + 1);
    ask(p, req, resp, 5, "", 0, later + TP_DISCOVERY_LOG_PERIOD_NS);
    tp_discovery_provider_counters(p, &k);
    assert_int_equal(k.requests_logged, logged + 2);
    tp_bus_subscription_close(resp);
    tp_bus_publication_close(req);
    tp_discovery_provider_close(p);
}

static void test_embedded_provider_window(void **state)
{
    (void)state;
    /* The embedded provider's entries expire after 3 announce periods (100 ms here).
     * covers: Q-6.2-2s */
    assert_int_equal(tp_discovery_provider_expiry_ns(F.driver->discovery), 300 * TP_NS_PER_MS);
}

static void test_discovery_on_the_control_stream(void **state)
{
    (void)state;
    /* An embedded provider can share the driver's control stream (channel and stream id): requests and control
     * messages are told apart by schema, so a consumer both discovers the stream and attaches on stream 1000.
     * covers: Q-13-1s */
    teardown(NULL);
    client_fixture_prepare(&F, "client-discovery-control");
    tp_assert_ok(tp_driver_context_set(F.dctx, "driver.instance_id", "driver-a"));
    tp_assert_ok(tp_driver_context_set(F.dctx, "discovery.channel", TP_BUS_DEFAULT_CHANNEL));
    tp_assert_ok(tp_driver_context_set(F.dctx, "discovery.stream_id", "1000"));
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { 4096 };
    tp_assert_ok(tp_driver_context_add_profile(F.dctx, "small", 16, ids, strides, 1));
    tp_assert_ok(tp_driver_context_add_stream(F.dctx, "cam", 10, "small"));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.discovery_channel", TP_BUS_DEFAULT_CHANNEL));
    tp_assert_ok(tp_client_context_set(F.cctx, "client.discovery_stream_id", "1000"));
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    tp_discovery_result_t r[4];
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = "cam";
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (find(&q, r, 4) == 0) /* the provider indexes the stream at the driver's first announce */
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(10000);
    }
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach_by_name(&c, client, "cam", TIMEOUT_NS));
    assert_int_equal(tp_consumer_stream_id(c), 10);
    tp_consumer_close(c);
}

typedef struct replicas
{
    tp_discovery_provider_t *p[2];
    int stop;
} replicas_t;

static void *run_replicas(void *arg)
{
    replicas_t *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
    {
        int64_t now = tp_clock_monotonic_ns();
        int work = tp_discovery_provider_poll(r->p[0], now) + tp_discovery_provider_poll(r->p[1], now);
        if (work == 0)
        {
            usleep(500);
        }
    }
    return NULL;
}

static void test_replicated_registries(void **state)
{
    (void)state;
    /* Two registries indexing the same driver, both answering on one request stream (replicas, for availability):
     * the client takes one answer and each stream once, and with one replica gone the other answers.
     * covers: Q-13-2s */
    replicas_t r = { 0 };
    tp_discovery_driver_t d = { .instance_id = "driver-a", .control_channel = "aeron:ipc?term-length=4m",
        .control_stream_id = 1000 };
    int64_t t = tp_clock_monotonic_ns();
    for (int i = 0; i < 2; i++)
    {
        tp_assert_ok(tp_discovery_provider_open(&r.p[i], F.driver->bus, "aeron:ipc?term-length=1m", 7400,
            60 * TP_NS_PER_S, 0));
        assert_int_equal(tp_discovery_provider_add_driver(r.p[i], &d), 0);
        announce_stream(r.p[i], 5, 3, t);
        announce_stream(r.p[i], 6, 3, t);
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *c = NULL;
    tp_assert_ok(tp_client_context_init(&ctx));
    tp_assert_ok(tp_client_context_set(ctx, "client.bus_dir", F.bus));
    tp_assert_ok(tp_client_context_set(ctx, "client.discovery_stream_id", "7400"));
    tp_assert_ok(tp_client_context_set(ctx, "client.discovery_response_stream_id", "7404"));
    tp_assert_ok(tp_client_connect(&c, ctx));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_replicas, &r), 0);
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    tp_discovery_result_t res[8];
    size_t n = 0;
    tp_assert_ok(tp_discover(c, &q, res, 8, &n, TIMEOUT_NS));
    assert_int_equal(n, 2);
    assert_true(res[0].stream_id != res[1].stream_id);
    /* One replica goes down: the other still answers. */
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    tp_discovery_provider_close(r.p[0]);
    tp_assert_ok(tp_discovery_provider_open(&r.p[0], F.driver->bus, "aeron:ipc?term-length=1m", 7401,
        60 * TP_NS_PER_S, 0)); /* a stand-in listening elsewhere */
    __atomic_store_n(&r.stop, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&th, NULL, run_replicas, &r), 0);
    tp_discovery_counters_t before;
    tp_discovery_provider_counters(r.p[1], &before);
    n = 0;
    tp_assert_ok(tp_discover(c, &q, res, 8, &n, TIMEOUT_NS));
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    assert_int_equal(n, 2);
    tp_discovery_counters_t after;
    tp_discovery_provider_counters(r.p[1], &after);
    assert_true(after.responses > before.responses);
    tp_client_close(c);
    tp_client_context_close(ctx);
    tp_discovery_provider_close(r.p[0]);
    tp_discovery_provider_close(r.p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filters_statuses_and_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configured_names_are_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_without_endpoint_are_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_expiry_and_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_restarts_names_and_log_sampling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_provider_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discovery_on_the_control_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicated_registries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
