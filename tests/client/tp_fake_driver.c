/* The fake driver of the client protocol tests (tp_fake_driver.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_driver.h"
#include "tp_fake_driver.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

static char dir[512];
char bus_dir[600];
char shm[600];
static tp_driver_context_t *dctx;
static tp_driver_t *driver;
tp_bus_t *bus;
static tp_driver_proxy_t *real_proxy;
tp_attach_result_t real; /* a real consumer attach: valid URIs and epoch */
tp_client_context_t *cctx;
tp_client_t *client;

/* ---- the fake driver ---- */

fake_driver_t fake;
static const char *const *setup_settings;
static const char *const *setup_driver_settings;
static tp_clock_fn_t setup_clock;

static void fake_on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_DRIVER_SCHEMA_ID)
    {
        return;
    }
    if (h.template_id == TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID)
    {
        tp_driver_shm_attach_request_t m;
        assert_int_equal(tp_driver_shm_attach_request_decode(&m, buffer, length), 0);
        request_t *r = &fake.requests[fake.attach_requests % 64];
        int64_t cid = tp_driver_shm_attach_request_correlation_id(&m);
        fake.attach_messages++;
        if (fake.attach_requests > 0 && fake.requests[(fake.attach_requests - 1) % 64].correlation_id == cid)
        {
            return; /* a resend of the request we already have */
        }
        r->correlation_id = cid;
        r->client_id = tp_driver_shm_attach_request_client_id(&m);
        r->stream_id = tp_driver_shm_attach_request_stream_id(&m);
        r->role = tp_driver_shm_attach_request_role(&m);
        fake.attach_requests++;
    }
    else if (h.template_id == TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID)
    {
        fake.detach_requests++; /* answered by the detach thread */
    }
    else if (h.template_id == TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID)
    {
        fake.keepalives++;
    }
}

/* The fake's second subscription, on a thread: it answers every detach OK (a closing client waits for that). */
static void detacher_on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    tp_sbe_header_t h;
    tp_driver_shm_detach_request_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_DRIVER_SCHEMA_ID ||
        h.template_id != TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID ||
        tp_driver_shm_detach_request_decode(&m, buffer, length) < 0)
    {
        return;
    }
    uint8_t out[256];
    tp_driver_shm_detach_response_enc_t e;
    tp_driver_shm_detach_response_enc_begin(&e, out, sizeof(out));
    tp_driver_shm_detach_response_set_correlation_id(&e, tp_driver_shm_detach_request_correlation_id(&m));
    tp_driver_shm_detach_response_set_code(&e, TP_DRIVER_RESPONSE_CODE_OK);
    tp_driver_shm_detach_response_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_detach_response_enc_finish(&e);
    if (n > 0)
    {
        tp_bus_offer(fake.detach_pub, out, (size_t)n);
    }
}

static void *detacher_main(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&fake.stop, __ATOMIC_ACQUIRE))
    {
        if (tp_bus_poll(fake.detach_sub, detacher_on_message, NULL, 16) == 0)
        {
            tp_bus_subscription_park(fake.detach_sub, TP_NS_PER_MS);
        }
    }
    return NULL;
}

void fake_poll(void)
{
    tp_bus_poll(fake.sub, fake_on_message, NULL, 64);
}

void fake_respond(int64_t correlation_id, const mutation_t *mu)
{
    uint8_t buf[16384];
    tp_driver_shm_attach_response_enc_t e;
    tp_driver_shm_attach_response_enc_begin(&e, buf, sizeof(buf));
    tp_driver_shm_attach_response_set_correlation_id(&e, correlation_id);
    tp_driver_shm_attach_response_set_code(&e, mu->code);
    tp_driver_shm_attach_response_set_lease_id(&e, mu->null_lease_id ? UINT64_MAX : mu->lease_id);
    tp_driver_shm_attach_response_set_lease_expiry_timestamp_ns(&e,
        mu->lease_expiry_ns ? mu->lease_expiry_ns : UINT64_MAX);
    tp_driver_shm_attach_response_set_stream_id(&e, STREAM);
    tp_driver_shm_attach_response_set_epoch(&e, mu->null_epoch ? UINT64_MAX : real.epoch);
    tp_driver_shm_attach_response_set_layout_version(&e, real.layout_version);
    tp_driver_shm_attach_response_set_header_nslots(&e, real.header_nslots);
    tp_driver_shm_attach_response_set_header_slot_bytes(&e, mu->header_slot_bytes ? mu->header_slot_bytes : 256);
    tp_driver_shm_attach_response_set_node_id(&e, UINT32_MAX);
    tp_driver_shm_attach_response_payload_pools_enc_t pools;
    tp_driver_shm_attach_response_payload_pools_begin(&e, &pools, mu->no_pools ? 0 : (uint16_t)real.pool_count);
    for (uint32_t i = 0; !mu->no_pools && i < real.pool_count; i++)
    {
        tp_driver_shm_attach_response_payload_pools_enc_next(&pools);
        tp_driver_shm_attach_response_payload_pools_set_pool_id(&pools, real.pools[i].pool_id);
        tp_driver_shm_attach_response_payload_pools_set_pool_nslots(&pools,
            mu->pool_nslots ? mu->pool_nslots : real.pools[i].pool_nslots);
        tp_driver_shm_attach_response_payload_pools_set_stride_bytes(&pools, real.pools[i].stride_bytes);
        tp_driver_shm_attach_response_payload_pools_put_region_uri(&pools, real.pools[i].region_uri,
            strlen(real.pools[i].region_uri));
    }
    const char *header = mu->header_uri != NULL ? mu->header_uri : real.header_region_uri;
    tp_driver_shm_attach_response_put_header_region_uri(&e, header, strlen(header));
    const char *message = mu->error_message != NULL ? mu->error_message :
        mu->code == TP_DRIVER_RESPONSE_CODE_OK ? "" : "refused by the fake";
    tp_driver_shm_attach_response_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_attach_response_enc_finish(&e);
    assert_true(n > 0);
    if (mu->schema_version != 0)
    {
        memcpy(buf + 6, &mu->schema_version, 2); /* SBE header: blockLength, templateId, schemaId, version */
    }
    assert_true(tp_bus_offer(fake.pub, buf, (size_t)n) > 0);
}

void fake_revoke(uint64_t lease_id, uint32_t client_id, uint8_t role, uint8_t reason)
{
    uint8_t buf[512];
    tp_driver_shm_lease_revoked_enc_t e;
    tp_driver_shm_lease_revoked_enc_begin(&e, buf, sizeof(buf));
    tp_driver_shm_lease_revoked_set_timestamp_ns(&e, (uint64_t)tp_clock_monotonic_ns());
    tp_driver_shm_lease_revoked_set_lease_id(&e, lease_id);
    tp_driver_shm_lease_revoked_set_stream_id(&e, STREAM);
    tp_driver_shm_lease_revoked_set_client_id(&e, client_id);
    tp_driver_shm_lease_revoked_set_role(&e, role);
    tp_driver_shm_lease_revoked_set_reason(&e, reason);
    tp_driver_shm_lease_revoked_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_lease_revoked_enc_finish(&e);
    assert_true(n > 0);
    assert_true(tp_bus_offer(fake.pub, buf, (size_t)n) > 0);
}

const mutation_t ok = { .code = TP_DRIVER_RESPONSE_CODE_OK, .lease_id = 500 };

/* ---- set-up ---- */

/* "key=value": the key into key, a pointer to the '=' returned. */
static const char *split_setting(const char *setting, char *key, size_t capacity)
{
    const char *eq = strchr(setting, '=');
    assert_non_null(eq);
    snprintf(key, capacity, "%.*s", (int)(eq - setting), setting);
    return eq;
}

int fake_setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "client-protocol");
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    tp_assert_ok(tp_driver_context_init(&dctx));
    tp_assert_ok(tp_driver_context_set(dctx, "driver.bus_dir", bus_dir));
    tp_assert_ok(tp_driver_context_set(dctx, "shm.base_dir", shm));
    tp_assert_ok(tp_driver_context_set(dctx, "policies.prefault_shm", "false"));
    const uint16_t ids[] = { 1 };
    const uint32_t strides[] = { 4096 };
    tp_assert_ok(tp_driver_context_add_profile(dctx, "small", 16, ids, strides, 1));
    tp_assert_ok(tp_driver_context_add_stream(dctx, "cam", STREAM, "small"));
    for (size_t i = 0; setup_driver_settings != NULL && setup_driver_settings[i] != NULL; i++)
    {
        char key[128];
        const char *eq = split_setting(setup_driver_settings[i], key, sizeof(key));
        tp_assert_ok(tp_driver_context_set(dctx, key, eq + 1));
    }
    tp_assert_ok(tp_driver_init(&driver, dctx));
    tp_assert_ok(tp_driver_start(driver));
    tp_assert_ok(tp_bus_init(&bus, bus_dir));
    tp_assert_ok(tp_driver_proxy_open(&real_proxy, bus, "aeron:ipc?term-length=4m", 1000));
    tp_attach_params_t params = { .stream_id = STREAM, .client_id = 77, .role = TP_DRIVER_ROLE_CONSUMER,
        .publish_mode = TP_DRIVER_PUBLISH_MODE_REQUIRE_EXISTING };
    tp_assert_ok(tp_driver_proxy_attach(real_proxy, &params, &real, TIMEOUT_NS));
    assert_int_equal(real.code, TP_DRIVER_RESPONSE_CODE_OK);
    memset(&fake, 0, sizeof(fake));
    tp_assert_ok(tp_bus_subscription_open(&fake.sub, bus, "aeron:ipc?term-length=4m", FAKE_CONTROL, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&fake.pub, bus, "aeron:ipc?term-length=4m", FAKE_CONTROL, false));
    tp_assert_ok(tp_bus_subscription_open(&fake.detach_sub, bus, "aeron:ipc?term-length=4m", FAKE_CONTROL, NULL, NULL,
        NULL));
    tp_assert_ok(tp_bus_publication_open(&fake.detach_pub, bus, "aeron:ipc?term-length=4m", FAKE_CONTROL, false));
    assert_int_equal(pthread_create(&fake.detacher, NULL, detacher_main, NULL), 0);
    tp_assert_ok(tp_client_context_init(&cctx));
    tp_assert_ok(tp_client_context_set(cctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(cctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_context_set(cctx, "client.control_stream_id", "2000"));
    tp_assert_ok(tp_client_context_set(cctx, "client.keepalive_interval_ms", "50"));
    for (size_t i = 0; setup_settings != NULL && setup_settings[i] != NULL; i++)
    {
        char key[128];
        const char *eq = split_setting(setup_settings[i], key, sizeof(key));
        tp_assert_ok(tp_client_context_set(cctx, key, eq + 1));
    }
    if (setup_clock != NULL)
    {
        tp_assert_ok(tp_client_context_set_clock(cctx, setup_clock, NULL));
    }
    tp_assert_ok(tp_client_connect(&client, cctx));
    setup_settings = NULL;
    setup_driver_settings = NULL;
    setup_clock = NULL;
    return 0;
}

void fake_setup_with(const char *const *driver_settings, const char *const *client_settings, tp_clock_fn_t clock)
{
    setup_driver_settings = driver_settings;
    setup_settings = client_settings;
    setup_clock = clock;
    fake_setup(NULL);
}

void fake_announce(uint32_t stream_id, uint64_t epoch)
{
    uint8_t buf[16384];
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, buf, sizeof(buf));
    tp_wire_shm_pool_announce_set_stream_id(&e, stream_id);
    tp_wire_shm_pool_announce_set_producer_id(&e, 0);
    tp_wire_shm_pool_announce_set_epoch(&e, epoch);
    tp_wire_shm_pool_announce_set_announce_timestamp_ns(&e, (uint64_t)tp_clock_monotonic_ns());
    tp_wire_shm_pool_announce_set_announce_clock_domain(&e, TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    tp_wire_shm_pool_announce_set_layout_version(&e, real.layout_version);
    tp_wire_shm_pool_announce_set_header_nslots(&e, real.header_nslots);
    tp_wire_shm_pool_announce_set_header_slot_bytes(&e, 256);
    tp_wire_shm_pool_announce_payload_pools_enc_t pools;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &pools, (uint16_t)real.pool_count);
    for (uint32_t i = 0; i < real.pool_count; i++)
    {
        tp_wire_shm_pool_announce_payload_pools_enc_next(&pools);
        tp_wire_shm_pool_announce_payload_pools_set_pool_id(&pools, real.pools[i].pool_id);
        tp_wire_shm_pool_announce_payload_pools_set_pool_nslots(&pools, real.pools[i].pool_nslots);
        tp_wire_shm_pool_announce_payload_pools_set_stride_bytes(&pools, real.pools[i].stride_bytes);
        tp_wire_shm_pool_announce_payload_pools_put_region_uri(&pools, real.pools[i].region_uri,
            strlen(real.pools[i].region_uri));
    }
    tp_wire_shm_pool_announce_put_header_region_uri(&e, real.header_region_uri, strlen(real.header_region_uri));
    int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
    assert_true(n > 0);
    assert_true(tp_bus_offer(fake.pub, buf, (size_t)n) > 0);
}

int fake_teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    tp_client_context_close(cctx);
    __atomic_store_n(&fake.stop, 1, __ATOMIC_RELEASE);
    pthread_join(fake.detacher, NULL);
    tp_bus_publication_close(fake.detach_pub);
    tp_bus_subscription_close(fake.detach_sub);
    tp_bus_publication_close(fake.pub);
    tp_bus_subscription_close(fake.sub);
    tp_driver_proxy_close(real_proxy);
    tp_bus_close(bus);
    tp_driver_close(driver);
    tp_driver_context_close(dctx);
    tp_test_remove_dir(dir);
    return 0;
}

void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)clientd;
    (void)f;
}

/* Poll the consumer and the fake until the fake has seen `count` distinct attach requests. */
const request_t *await_request(tp_consumer_t *c, int count)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (fake.attach_requests < count)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, NULL, 16);
        fake_poll();
    }
    return &fake.requests[(count - 1) % 64];
}

/* Poll both for a while (ms). */
void run_for(tp_consumer_t *c, int ms)
{
    int64_t end = tp_clock_monotonic_ns() + ms * TP_NS_PER_MS;
    while (tp_clock_monotonic_ns() < end)
    {
        if (c != NULL)
        {
            tp_consumer_poll(c, on_frame, NULL, 16);
        }
        fake_poll();
        usleep(500);
    }
}

void until_attached(tp_consumer_t *c)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!tp_consumer_is_attached(c))
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_consumer_poll(c, on_frame, NULL, 16);
        fake_poll();
    }
}

