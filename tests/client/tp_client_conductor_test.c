/*
 * The client conductor alone, against a stand-in driver in this process (a subscription and a publication on the
 * control stream) and a fake clock: several requests in flight at once, each answered by its correlation id; the
 * resend schedule of a request nobody answers; answers taken once, late answers to cancelled requests ignored; a
 * detach's answer; a malformed answer reported as such; the pending table's limit; requests on the request lane,
 * which no other client reads; other processes' requests passed over unchecked, their forged driver notices not.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/tp_client_conductor.h"
#include "core/tp_clock.h"
#include "tp_sbe_driver.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define CONTROL 3000

static char dir[512];
static tp_bus_t *bus;
static tp_client_conductor_t *conductor;
static tp_bus_subscription_t *driver_sub; /* what the conductor sends */
static tp_bus_publication_t *driver_pub;  /* what the stand-in driver answers */

/* What the handler saw. */
static tp_control_event_t events[64];
static tp_attach_result_t answers[64];
static char messages[64][256];
static int event_count;

/* What the stand-in driver read. */
static int64_t sent_ids[2048];
static int sent_count;

static void on_event(void *clientd, const tp_control_event_t *e)
{
    (void)clientd;
    assert_true(event_count < 64);
    events[event_count] = *e;
    if (e->attach != NULL)
    {
        answers[event_count] = *e->attach;
    }
    snprintf(messages[event_count], sizeof(messages[0]), "%s",
        e->failure != NULL ? e->failure : e->message != NULL ? e->message : "");
    event_count++;
}

static void on_request(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_DRIVER_SCHEMA_ID)
    {
        return;
    }
    int64_t cid = 0;
    if (h.template_id == TP_DRIVER_SHM_ATTACH_REQUEST_TEMPLATE_ID)
    {
        tp_driver_shm_attach_request_t m;
        assert_int_equal(tp_driver_shm_attach_request_decode(&m, buffer, length), 0);
        cid = tp_driver_shm_attach_request_correlation_id(&m);
    }
    else if (h.template_id == TP_DRIVER_SHM_DETACH_REQUEST_TEMPLATE_ID)
    {
        tp_driver_shm_detach_request_t m;
        assert_int_equal(tp_driver_shm_detach_request_decode(&m, buffer, length), 0);
        cid = tp_driver_shm_detach_request_correlation_id(&m);
    }
    else
    {
        return;
    }
    assert_true(sent_count < 2048);
    sent_ids[sent_count++] = cid;
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "conductor");
    char bus_dir[600];
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    tp_assert_ok(tp_bus_init(&bus, bus_dir));
    tp_assert_ok(tp_bus_subscription_open(&driver_sub, bus, "aeron:ipc", CONTROL, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open(&driver_pub, bus, "aeron:ipc", CONTROL, false));
    tp_assert_ok(tp_client_conductor_open(&conductor, bus, "aeron:ipc", CONTROL));
    tp_client_conductor_set_handler(conductor, on_event, NULL);
    event_count = 0;
    sent_count = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_client_conductor_close(conductor);
    tp_bus_publication_close(driver_pub);
    tp_bus_subscription_close(driver_sub);
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

/* The conductor's cycle at now_ns, then what reached the stand-in driver. */
static void cycle(int64_t now_ns)
{
    assert_true(tp_client_conductor_do_work(conductor, now_ns) >= 0);
    while (tp_bus_poll(driver_sub, on_request, NULL, 64) > 0)
    {
    }
}

static void answer_attach(int64_t cid, uint32_t stream_id, uint16_t pools)
{
    uint8_t buf[65536];
    tp_driver_shm_attach_response_enc_t e;
    tp_driver_shm_attach_response_enc_begin(&e, buf, sizeof(buf));
    tp_driver_shm_attach_response_set_correlation_id(&e, cid);
    tp_driver_shm_attach_response_set_code(&e, TP_DRIVER_RESPONSE_CODE_OK);
    tp_driver_shm_attach_response_set_lease_id(&e, 100 + stream_id);
    tp_driver_shm_attach_response_set_lease_expiry_timestamp_ns(&e, UINT64_MAX);
    tp_driver_shm_attach_response_set_stream_id(&e, stream_id);
    tp_driver_shm_attach_response_set_epoch(&e, 7);
    tp_driver_shm_attach_response_set_layout_version(&e, 1);
    tp_driver_shm_attach_response_set_header_nslots(&e, 16);
    tp_driver_shm_attach_response_set_header_slot_bytes(&e, 256);
    tp_driver_shm_attach_response_set_node_id(&e, UINT32_MAX);
    tp_driver_shm_attach_response_payload_pools_enc_t p;
    tp_driver_shm_attach_response_payload_pools_begin(&e, &p, pools);
    for (uint16_t i = 0; i < pools; i++)
    {
        tp_driver_shm_attach_response_payload_pools_enc_next(&p);
        tp_driver_shm_attach_response_payload_pools_set_pool_id(&p, (uint16_t)(i + 1));
        tp_driver_shm_attach_response_payload_pools_set_pool_nslots(&p, 16);
        tp_driver_shm_attach_response_payload_pools_set_stride_bytes(&p, 4096);
        tp_driver_shm_attach_response_payload_pools_put_region_uri(&p, "shm:file?path=/dev/shm/x", 24);
    }
    tp_driver_shm_attach_response_put_header_region_uri(&e, "shm:file?path=/dev/shm/h", 24);
    tp_driver_shm_attach_response_put_error_message(&e, "", 0);
    int64_t n = tp_driver_shm_attach_response_enc_finish(&e);
    assert_true(n > 0);
    assert_true(tp_bus_offer(driver_pub, buf, (size_t)n) > 0);
}

static void answer_detach(int64_t cid, int32_t code, const char *message)
{
    uint8_t buf[4096];
    tp_driver_shm_detach_response_enc_t e;
    tp_driver_shm_detach_response_enc_begin(&e, buf, sizeof(buf));
    tp_driver_shm_detach_response_set_correlation_id(&e, cid);
    tp_driver_shm_detach_response_set_code(&e, code);
    tp_driver_shm_detach_response_put_error_message(&e, message, strlen(message));
    int64_t n = tp_driver_shm_detach_response_enc_finish(&e);
    assert_true(n > 0);
    assert_true(tp_bus_offer(driver_pub, buf, (size_t)n) > 0);
}

static int sends_of(int64_t cid)
{
    int n = 0;
    for (int i = 0; i < sent_count; i++)
    {
        n += sent_ids[i] == cid;
    }
    return n;
}

/* Attaches of two streams are out at the same time; each answer goes to its own request, in any order. */
static void test_requests_in_flight_at_once(void **state)
{
    (void)state;
    tp_attach_params_t a = { .stream_id = 10, .client_id = 1, .role = 2 };
    tp_attach_params_t b = { .stream_id = 11, .client_id = 2, .role = 2 };
    int64_t ida = tp_client_conductor_attach(conductor, &a, 0);
    int64_t idb = tp_client_conductor_attach(conductor, &b, 0);
    assert_true(ida > 0 && idb > 0 && ida != idb);
    assert_int_equal(tp_client_conductor_pending(conductor), 2);
    cycle(0);
    assert_int_equal(sends_of(ida), 1);
    assert_int_equal(sends_of(idb), 1); /* both requests reached the driver before either was answered */
    answer_attach(idb, 11, 1);
    answer_attach(ida, 10, 2);
    cycle(TP_NS_PER_MS);
    assert_int_equal(event_count, 2);
    assert_int_equal(events[0].kind, TP_CONTROL_EVENT_ATTACH_RESPONSE);
    assert_true(events[0].correlation_id == idb);
    assert_int_equal(answers[0].stream_id, 11);
    assert_int_equal(answers[0].pool_count, 1);
    assert_true(events[1].correlation_id == ida);
    assert_int_equal(answers[1].stream_id, 10);
    assert_int_equal(answers[1].pool_count, 2);
    assert_true(answers[1].lease_id == 110);
    assert_int_equal(tp_client_conductor_pending(conductor), 0);
}

/* A request nobody answers is resent under its correlation id at 100 ms, then every 200, 400, 800 ms and 1 s. */
static void test_resend_schedule(void **state)
{
    (void)state;
    tp_attach_params_t a = { .stream_id = 10, .client_id = 1, .role = 2 };
    int64_t id = tp_client_conductor_attach(conductor, &a, 0);
    const struct
    {
        int64_t at_ms;
        int sends;
    } steps[] = { { 0, 1 }, { 99, 1 }, { 100, 2 }, { 299, 2 }, { 300, 3 }, { 699, 3 }, { 700, 4 }, { 1499, 4 },
        { 1500, 5 }, { 2499, 5 }, { 2500, 6 }, { 3500, 7 } };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
    {
        cycle(steps[i].at_ms * TP_NS_PER_MS);
        if (sends_of(id) != steps[i].sends)
        {
            fail_msg("at %lld ms: %d sends, expected %d", (long long)steps[i].at_ms, sends_of(id), steps[i].sends);
        }
    }
    assert_int_equal(event_count, 0);
}

/* One event per request: a duplicate answer, an answer to a cancelled request and one to an id never used change
 * nothing, and the request stops being resent once answered or cancelled. */
static void test_answers_taken_once(void **state)
{
    (void)state;
    tp_attach_params_t a = { .stream_id = 10, .client_id = 1, .role = 2 };
    int64_t answered = tp_client_conductor_attach(conductor, &a, 0);
    int64_t cancelled = tp_client_conductor_attach(conductor, &a, 0);
    cycle(0);
    tp_client_conductor_cancel(conductor, cancelled);
    tp_client_conductor_cancel(conductor, 424242); /* unknown: fine */
    answer_attach(answered, 10, 1);
    answer_attach(answered, 10, 1);
    answer_attach(cancelled, 10, 1);
    answer_attach(answered + 1000, 10, 1);
    cycle(TP_NS_PER_MS);
    assert_int_equal(event_count, 1);
    assert_true(events[0].correlation_id == answered);
    cycle(5 * TP_NS_PER_S);
    assert_int_equal(sends_of(answered), 1);
    assert_int_equal(sends_of(cancelled), 1);
    assert_int_equal(tp_client_conductor_pending(conductor), 0);
}

/* A detach's answer carries the driver's code and message. */
static void test_detach_answer(void **state)
{
    (void)state;
    int64_t id = tp_client_conductor_detach(conductor, 55, 10, 1, 2, 0);
    assert_true(id > 0);
    cycle(0);
    assert_int_equal(sends_of(id), 1);
    answer_detach(id, TP_DRIVER_RESPONSE_CODE_REJECTED, "no such lease");
    cycle(TP_NS_PER_MS);
    assert_int_equal(event_count, 1);
    assert_int_equal(events[0].kind, TP_CONTROL_EVENT_DETACH_RESPONSE);
    assert_true(events[0].correlation_id == id);
    assert_int_equal(events[0].code, TP_DRIVER_RESPONSE_CODE_REJECTED);
    assert_string_equal(messages[0], "no such lease");
}

/* An answer with more pools than a client maps ends the request with the reason, and no result. */
static void test_malformed_answer(void **state)
{
    (void)state;
    tp_attach_params_t a = { .stream_id = 10, .client_id = 1, .role = 2 };
    int64_t id = tp_client_conductor_attach(conductor, &a, 0);
    cycle(0);
    answer_attach(id, 10, TP_CONTROL_MAX_POOLS + 1);
    cycle(TP_NS_PER_MS);
    assert_int_equal(event_count, 1);
    assert_null(events[0].attach);
    tp_test_assert_contains(messages[0], "more pools than this client handles");
    assert_int_equal(tp_client_conductor_pending(conductor), 0);
}

/* The pending table holds a client's worth of requests; one more is refused with TP_E_CAPACITY. */
static void test_pending_limit(void **state)
{
    (void)state;
    tp_attach_params_t a = { .stream_id = 10, .client_id = 1, .role = 2 };
    for (int i = 0; i < TP_CONTROL_PENDING_MAX; i++)
    {
        assert_true(tp_client_conductor_attach(conductor, &a, 0) > 0);
    }
    assert_true(tp_client_conductor_attach(conductor, &a, 0) < 0);
    assert_int_equal(tp_errcode(), TP_E_CAPACITY);
    assert_int_equal(tp_client_conductor_pending(conductor), TP_CONTROL_PENDING_MAX);
}

typedef struct tally
{
    int keepalives;
    int others;
} tally_t;

static void on_tally(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    tally_t *t = clientd;
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, buffer, length) == 0 && h.schema_id == TP_DRIVER_SCHEMA_ID &&
        h.template_id == TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID)
    {
        t->keepalives++;
    }
    else
    {
        t->others++;
    }
}

static tally_t tally(tp_bus_subscription_t *sub)
{
    tally_t t = { 0 };
    while (tp_bus_poll(sub, on_tally, &t, 64) > 0)
    {
    }
    return t;
}

/* Keepalives (like every request to the driver) go on the request lane: the driver reads them, another client's
 * conductor (a broadcast-only subscription) never sees them. Anything else goes on the broadcast lane, which
 * every client reads. This is what lets a thousand clients share one control stream. */
static void test_requests_travel_on_the_request_lane(void **state)
{
    (void)state;
    tp_bus_subscription_t *client = NULL;
    tp_assert_ok(tp_bus_subscription_open_broadcast(&client, bus, "aeron:ipc", CONTROL, NULL, NULL, NULL));
    tp_assert_ok(tp_client_conductor_keepalive(conductor, 7, 10, 1, 2));
    uint8_t other[8] = { 0, 0, 1, 0, 0x99, 0x99, 1, 0 }; /* a message of another schema (0x9999), template 1 */
    tp_assert_ok(tp_client_conductor_send(conductor, other, sizeof(other)));
    tally_t t = tally(driver_sub);
    assert_int_equal(t.keepalives, 1);
    assert_int_equal(t.others, 1);
    t = tally(client);
    assert_int_equal(t.keepalives, 0);
    assert_int_equal(t.others, 1);
    tp_bus_subscription_close(client);
}

/* A ConsumerHello goes on the hello lane: another client's conductor never sees it unless that client has a
 * producer (tp_client_conductor_read_hellos), and then the hello arrives as an event. */
static void test_hellos_travel_on_the_hello_lane(void **state)
{
    (void)state;
    tp_client_conductor_t *producer = NULL;
    tp_assert_ok(tp_client_conductor_open(&producer, bus, "aeron:ipc", CONTROL));
    tp_client_conductor_set_handler(producer, on_event, NULL);
    uint8_t hello[8] = { 0, 0, TP_WIRE_CONSUMER_HELLO_TEMPLATE_ID, 0, TP_WIRE_SCHEMA_ID & 0xff, TP_WIRE_SCHEMA_ID >> 8,
        TP_WIRE_SCHEMA_VERSION, 0 };
    tp_bus_subscription_t *consumer = NULL;
    tp_assert_ok(tp_bus_subscription_open_broadcast(&consumer, bus, "aeron:ipc", CONTROL, NULL, NULL, NULL));
    tp_assert_ok(tp_client_conductor_send(conductor, hello, sizeof(hello)));
    assert_int_equal(tally(consumer).others, 0);
    assert_int_equal(tally(driver_sub).others, 1);
    assert_int_equal(tp_client_conductor_do_work(producer, 0), 0); /* not read: no producer on that client yet */
    /* The producer's client reads the hello lane from now on: the next hello reaches its conductor (this 8-byte
     * stand-in is then dropped as malformed: what counts is that it was read). */
    tp_assert_ok(tp_client_conductor_read_hellos(producer));
    tp_assert_ok(tp_client_conductor_read_hellos(producer)); /* idempotent */
    tp_assert_ok(tp_client_conductor_send(conductor, hello, sizeof(hello)));
    assert_int_equal(tp_client_conductor_do_work(producer, 0), 1); /* the hello, read from the hello lane */
    assert_int_equal(tally(consumer).others, 0);
    tp_bus_subscription_close(consumer);
    tp_client_conductor_close(producer);
}

/* Another process's request on the broadcast lane (a tool of an older build, say) is passed over without asking
 * who wrote it (that costs system calls per sender, which a crowd's keepalives made the CPU's biggest cost); a
 * driver notice it forges is checked, and refused. */
static void test_other_requests_are_not_checked_forged_notices_are(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
    {
        char bus_dir[600];
        snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
        tp_bus_t *b = NULL;
        tp_bus_publication_t *p = NULL;
        uint8_t keepalive[8] = { 0, 0, TP_DRIVER_SHM_LEASE_KEEPALIVE_TEMPLATE_ID, 0, TP_DRIVER_SCHEMA_ID & 0xff,
            TP_DRIVER_SCHEMA_ID >> 8, TP_DRIVER_SCHEMA_VERSION, 0 };
        uint8_t shutdown[8] = { 0, 0, TP_DRIVER_SHM_DRIVER_SHUTDOWN_TEMPLATE_ID, 0, TP_DRIVER_SCHEMA_ID & 0xff,
            TP_DRIVER_SCHEMA_ID >> 8, TP_DRIVER_SCHEMA_VERSION, 0 };
        bool ok = tp_bus_init(&b, bus_dir) == 0 && tp_bus_publication_open(&p, b, "aeron:ipc", CONTROL, false) == 0 &&
                  tp_bus_offer(p, keepalive, sizeof(keepalive)) > 0 &&
                  tp_bus_offer(p, keepalive, sizeof(keepalive)) > 0 &&
                  tp_bus_offer(p, shutdown, sizeof(shutdown)) > 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(WEXITSTATUS(status), 0);
    cycle(0);
    assert_int_equal(tp_client_conductor_messages_untrusted(conductor), 1); /* the shutdown, not the keepalives */
    assert_int_equal(event_count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_in_flight_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answers_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_travel_on_the_request_lane, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hellos_travel_on_the_hello_lane, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_requests_are_not_checked_forged_notices_are, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
