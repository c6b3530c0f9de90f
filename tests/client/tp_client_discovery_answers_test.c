/*
 * Discovery answers as the client takes them (discovery spec 5, 7), against fake providers beside a real driver:
 * answers to other request ids and results without authority or with mismatched pool slots are discarded, one
 * result per driver and stream at its newest epoch, results are never authority, and a provider behind the
 * driver's announces is asked again. (The provider embedded in a driver: tp_client_discovery_test.c.)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "discovery/tp_discovery_provider.h"
#include "driver/tp_driver_internal.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_discovery.h"
#include "tensorpool/tp_driver.h"
#include "tensorpool/tp_metadata.h"
#include "tp_sbe_discovery.h"
#include "tp_sbe_wire.h"
#include "tp_client_fixture.h"
#include "tp_test_util.h"

#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

static int setup(void **state)
{
    (void)state;
    client_fixture_start_discovery(&F, "client-discovery-answers");
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

/* ---- the client alone, against a fake provider ---- */

typedef struct fake
{
    tp_bus_t *bus;
    bool saw_request;
    uint64_t request_id;
    char response_channel[256];
    uint32_t response_stream;
    bool lies; /* answer with results naming the real driver: one near-miss name, one stream it does not have */
} fake_t;

static void on_fake_request(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    fake_t *f = clientd;
    tp_discovery_discovery_request_t m;
    if (f->saw_request || tp_discovery_discovery_request_decode(&m, buffer, length) < 0)
    {
        return;
    }
    f->saw_request = true;
    f->request_id = tp_discovery_discovery_request_request_id(&m);
    f->response_stream = tp_discovery_discovery_request_response_stream_id(&m);
    tp_sbe_bytes_t ch = tp_discovery_discovery_request_response_channel(&m);
    memcpy(f->response_channel, ch.data, ch.length < 255 ? ch.length : 255);
}

/* One result: stream and epoch, its header slots, name (name_length bytes), control channel, control stream and
 * pool slots as given. */
static void fake_result_full(tp_discovery_discovery_response_results_enc_t *g, uint32_t stream, uint64_t epoch,
    uint32_t header_nslots, const char *name, size_t name_length, const char *control, uint32_t control_stream,
    uint32_t pool_nslots)
{
    tp_discovery_discovery_response_results_enc_next(g);
    tp_discovery_discovery_response_results_set_stream_id(g, stream);
    tp_discovery_discovery_response_results_set_producer_id(g, 1);
    tp_discovery_discovery_response_results_set_epoch(g, epoch);
    tp_discovery_discovery_response_results_set_layout_version(g, 1);
    tp_discovery_discovery_response_results_set_header_nslots(g, header_nslots);
    tp_discovery_discovery_response_results_set_header_slot_bytes(g, 256);
    tp_discovery_discovery_response_results_set_max_dims(g, 8);
    tp_discovery_discovery_response_results_set_data_source_id(g, UINT64_MAX);
    tp_discovery_discovery_response_results_set_driver_control_stream_id(g, control_stream);
    tp_discovery_discovery_response_results_payload_pools_enc_t pools;
    tp_discovery_discovery_response_results_payload_pools_begin(g, &pools, 1);
    tp_discovery_discovery_response_results_payload_pools_enc_next(&pools);
    tp_discovery_discovery_response_results_payload_pools_set_pool_id(&pools, 1);
    tp_discovery_discovery_response_results_payload_pools_set_pool_nslots(&pools, pool_nslots);
    tp_discovery_discovery_response_results_payload_pools_set_stride_bytes(&pools, 4096);
    tp_discovery_discovery_response_results_payload_pools_put_region_uri(&pools, "shm:file?path=/dev/shm/p", 24);
    tp_discovery_discovery_response_results_payload_pools_end(&pools);
    tp_discovery_discovery_response_results_tags_enc_t tags;
    tp_discovery_discovery_response_results_tags_begin(g, &tags, 0);
    tp_discovery_discovery_response_results_tags_end(&tags);
    tp_discovery_discovery_response_results_put_header_region_uri(g, "shm:file?path=/dev/shm/h", 24);
    tp_discovery_discovery_response_results_put_data_source_name(g, name, name_length);
    tp_discovery_discovery_response_results_put_driver_instance_id(g, "d", 1);
    tp_discovery_discovery_response_results_put_driver_control_channel(g, control, strlen(control));
}

/* Epoch 3, 8 header slots. */
static void fake_result_n(tp_discovery_discovery_response_results_enc_t *g, uint32_t stream, const char *name,
    size_t name_length, const char *control, uint32_t control_stream, uint32_t pool_nslots)
{
    fake_result_full(g, stream, 3, 8, name, name_length, control, control_stream, pool_nslots);
}

static void fake_result(tp_discovery_discovery_response_results_enc_t *g, uint32_t stream, const char *name,
    const char *control, uint32_t control_stream, uint32_t pool_nslots)
{
    fake_result_n(g, stream, name, strlen(name), control, control_stream, pool_nslots);
}

static void fake_result_at(tp_discovery_discovery_response_results_enc_t *g, uint32_t stream, uint64_t epoch)
{
    fake_result_full(g, stream, epoch, 8, "fake", 4, "aeron:ipc", 1000, 8);
}

static int64_t fake_response(uint8_t *buf, size_t capacity, uint64_t id, const fake_t *f, bool hostile_results)
{
    tp_discovery_discovery_response_enc_t e;
    tp_discovery_discovery_response_enc_begin(&e, buf, capacity);
    tp_discovery_discovery_response_set_request_id(&e, id);
    tp_discovery_discovery_response_set_status(&e, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    tp_discovery_discovery_response_results_enc_t g;
    tp_discovery_discovery_response_results_begin(&e, &g, f->lies ? 3 : hostile_results ? 8 : 1);
    if (f->lies)
    {
        /* All name the driver the client uses. Streams 10 and 11 exist but are not named "fake" byte for byte:
         * "Fake", and "fake\0evil" (equal up to the NUL); stream 12 is, but the driver has no such stream (and the
         * result's region URIs point where nothing may be mapped). */
        fake_result(&g, 10, "Fake", "aeron:ipc?term-length=4m", 1000, 8);
        fake_result_n(&g, 11, "fake\0evil", 9, "aeron:ipc?term-length=4m", 1000, 8);
        fake_result(&g, 12, "fake", "aeron:ipc?term-length=4m", 1000, 8);
    }
    else if (hostile_results)
    {
        fake_result(&g, 1, "fake", "", 1000, 8);            /* no control channel */
        fake_result(&g, 2, "fake", "aeron:ipc", 0, 8);      /* control stream 0 */
        fake_result(&g, 3, "fake", "aeron:ipc", 1000, 16);  /* pool slots unlike the header's */
        fake_result(&g, 4, "fake", "aeron:ipc", 1000, 8);   /* good */
        fake_result(&g, 4, "fake", "aeron:ipc", 1000, 8);   /* the same again */
        fake_result_at(&g, 4, 2);                            /* an older epoch of it: stale */
        fake_result_at(&g, 5, 3);
        fake_result_at(&g, 5, 7);                            /* a newer epoch: replaces the one before */
    }
    else
    {
        fake_result(&g, 9, "fake", "aeron:ipc", 1000, 8);
    }
    tp_discovery_discovery_response_results_end(&g);
    tp_discovery_discovery_response_put_error_message(&e, "", 0);
    return tp_discovery_discovery_response_enc_finish(&e);
}

static void *fake_provider(void *arg)
{
    fake_t *f = arg;
    tp_bus_subscription_t *sub = NULL;
    tp_bus_publication_t *pub = NULL;
    if (tp_bus_subscription_open(&sub, f->bus, "aeron:ipc?term-length=1m", 7200, NULL, NULL, NULL) < 0)
    {
        return NULL;
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!f->saw_request && tp_clock_monotonic_ns() < deadline)
    {
        if (tp_bus_poll(sub, on_fake_request, f, 16) == 0)
        {
            usleep(1000);
        }
    }
    if (f->saw_request && f->response_stream != 0 &&
        tp_bus_publication_open(&pub, f->bus, f->response_channel, (int32_t)f->response_stream, false) == 0)
    {
        static uint8_t buf[16384];
        int64_t n = fake_response(buf, sizeof(buf), f->request_id + 1, f, false); /* not ours */
        tp_bus_offer(pub, buf, (size_t)n);
        n = fake_response(buf, sizeof(buf), f->request_id, f, false);
        buf[6] = 2; /* a newer schema version: not read */
        tp_bus_offer(pub, buf, (size_t)n);
        n = fake_response(buf, sizeof(buf), f->request_id, f, true);
        tp_bus_offer(pub, buf, (size_t)n);
        tp_bus_publication_close(pub);
    }
    tp_bus_subscription_close(sub);
    return NULL;
}

/* A client whose discovery requests go to the fake (stream 7200) rather than the driver's provider. */
static tp_client_t *connect_to_fake(tp_client_context_t **ctx)
{
    tp_client_t *c = NULL;
    tp_assert_ok(tp_client_context_init(ctx));
    tp_assert_ok(tp_client_context_set(*ctx, "client.bus_dir", F.bus));
    tp_assert_ok(tp_client_context_set(*ctx, "client.discovery_stream_id", "7200"));
    tp_assert_ok(tp_client_context_set(*ctx, "client.discovery_response_stream_id", "7204"));
    tp_assert_ok(tp_client_connect(&c, *ctx));
    return c;
}

static void test_client_checks_answers(void **state)
{
    (void)state;
    /* covers: Q-4.3-1, Q-5.1-5, Q-5.2-6, Q-5.2-8, Q-5.2-12, Q-5.2-14, Q-10-1, Q-10-2, Q-10-5, Q-7-1 */
    tp_client_context_t *ctx = NULL;
    tp_client_t *c = connect_to_fake(&ctx);
    fake_t f = { 0 };
    tp_assert_ok(tp_bus_init(&f.bus, F.bus)); /* the fake's own bus handle, for its own thread */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_provider, &f), 0);
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    tp_discovery_result_t r[8];
    size_t n = 0;
    tp_assert_ok(tp_discover(c, &q, r, 8, &n, TIMEOUT_NS));
    pthread_join(t, NULL);
    assert_true(f.saw_request);
    assert_int_equal(f.response_stream, 7204);
    assert_string_equal(f.response_channel, "aeron:ipc?term-length=1m");
    /* The answer to another request and the newer version were skipped; of the eight results two stand: stream 4
     * once, and stream 5 at its newest epoch. covers: Q-7-7s */
    assert_int_equal(n, 2);
    assert_int_equal(r[0].stream_id, 4);
    assert_int_equal(r[0].epoch, 3);
    assert_int_equal(r[1].stream_id, 5);
    assert_int_equal(r[1].epoch, 7);
    tp_bus_close(f.bus);
    tp_client_close(c);
    tp_client_context_close(ctx);
}

/* A provider that lies: results are never authority. The client keeps only byte-exact names and attaches through
 * the driver, whose refusal stands; nothing the result describes is mapped. */
static void test_results_are_not_authority(void **state)
{
    (void)state;
    /* covers: Q-3-1, Q-7-6, Q-5.1-8 */
    tp_client_context_t *ctx = NULL;
    tp_client_t *c = connect_to_fake(&ctx);
    fake_t f = { 0 };
    f.lies = true;
    tp_assert_ok(tp_bus_init(&f.bus, F.bus));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_provider, &f), 0);
    tp_consumer_t *con = NULL;
    /* Stream 12 is named "fake"; the driver has no stream 12, so the attach it answers is refused. Had the client
     * believed a near miss, it would have attached to stream 10 or 11, which exist. */
    tp_assert_fails_with(tp_consumer_attach_by_name(&con, c, "fake", TIMEOUT_NS), "stream 12");
    pthread_join(t, NULL);
    assert_true(f.saw_request);
    assert_null(con);
    tp_bus_close(f.bus);
    tp_client_close(c);
    tp_client_context_close(ctx);
}

/* A provider that answers every request with what the driver's announces contradict, for stream 10, and a
 * result ahead of them, for stream 11. */
typedef struct behind
{
    tp_bus_t *bus;
    uint64_t epoch10;
    uint64_t epoch11;
    int requests;
} behind_t;

static void on_behind_request(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    behind_t *b = clientd;
    tp_discovery_discovery_request_t m;
    if (tp_discovery_discovery_request_decode(&m, buffer, length) < 0)
    {
        return;
    }
    b->requests++;
    tp_bus_publication_t *pub = NULL;
    if (tp_bus_publication_open(&pub, b->bus, "aeron:ipc?term-length=1m",
            (int32_t)tp_discovery_discovery_request_response_stream_id(&m), false) < 0)
    {
        return;
    }
    static uint8_t buf[8192];
    tp_discovery_discovery_response_enc_t e;
    tp_discovery_discovery_response_enc_begin(&e, buf, sizeof(buf));
    tp_discovery_discovery_response_set_request_id(&e, tp_discovery_discovery_request_request_id(&m));
    tp_discovery_discovery_response_set_status(&e, TP_DISCOVERY_DISCOVERY_STATUS_OK);
    tp_discovery_discovery_response_results_enc_t g;
    tp_discovery_discovery_response_results_begin(&e, &g, 2);
    /* stream 10: the announced epoch with 8 header slots where the driver has 16 */
    fake_result_full(&g, 10, b->epoch10, 8, "cam", 3, "aeron:ipc?term-length=4m", 1000, 8);
    fake_result_full(&g, 11, b->epoch11 + 1, 16, "lidar", 5, "aeron:ipc?term-length=4m", 1000, 16);
    tp_discovery_discovery_response_results_end(&g);
    tp_discovery_discovery_response_put_error_message(&e, "", 0);
    int64_t n = tp_discovery_discovery_response_enc_finish(&e);
    assert_true(n > 0);
    tp_bus_offer(pub, buf, (size_t)n);
    tp_bus_publication_close(pub);
}

static volatile int behind_stop;

static void *behind_provider(void *arg)
{
    behind_t *b = arg;
    tp_bus_subscription_t *sub = NULL;
    if (tp_bus_subscription_open(&sub, b->bus, "aeron:ipc?term-length=1m", 7200, NULL, NULL, NULL) < 0)
    {
        return NULL;
    }
    while (!__atomic_load_n(&behind_stop, __ATOMIC_ACQUIRE))
    {
        if (tp_bus_poll(sub, on_behind_request, b, 16) == 0)
        {
            usleep(500);
        }
    }
    tp_bus_subscription_close(sub);
    return NULL;
}

static void test_results_contradicting_announces_are_asked_again(void **state)
{
    (void)state;
    /* The client has read the driver's announces of streams 10 and 11. A provider that says stream 10 has another
     * layout in the same epoch is behind: the client asks again, twice, then leaves stream 10 out; stream 11,
     * ahead of the announces, is kept. covers: Q-7-8s */
    tp_client_context_t *ctx = NULL;
    tp_client_t *c = connect_to_fake(&ctx);
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp_client_announced(c, 10) == NULL || tp_client_announced(c, 11) == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_client_conductor_do_work(c->conductor, tp_clock_monotonic_ns());
        usleep(1000);
    }
    assert_int_equal(tp_client_announced(c, 10)->header_nslots, 16);
    behind_t b = { .epoch10 = tp_client_announced(c, 10)->epoch, .epoch11 = tp_client_announced(c, 11)->epoch };
    tp_assert_ok(tp_bus_init(&b.bus, F.bus));
    __atomic_store_n(&behind_stop, 0, __ATOMIC_RELEASE);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, behind_provider, &b), 0);
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    tp_discovery_result_t r[8];
    size_t n = 0;
    tp_assert_ok(tp_discover(c, &q, r, 8, &n, TIMEOUT_NS));
    __atomic_store_n(&behind_stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    assert_int_equal(b.requests, 3);
    assert_int_equal(n, 1);
    assert_int_equal(r[0].stream_id, 11);
    tp_bus_close(b.bus);
    tp_client_close(c);
    tp_client_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_checks_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_are_not_authority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_contradicting_announces_are_asked_again, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
