/*
 * Lanes and fenced publications of the IPC bus (tp_bus.h, Lanes), what lets one driver serve a thousand client
 * processes: requests are read and woken for only by subscriptions that read requests, hellos only by those that
 * read hellos; a broadcast-only
 * subscription never maps a request image, nor wakes or rescans for one; request logs are capped and a service's
 * log has a floor whatever the channel says; and a stream whose publications are all fenced costs a parking
 * subscriber no system-wide barrier (the registry counts the publishers that skip their fence).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus/tp_bus_ipc.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_bus.h"
#include "tp_test_util.h"

#define STREAM 1300

static char dir[512];
static tp_bus_t *bus;

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "bus-lanes");
    tp_assert_ok(tp_bus_init(&bus, dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_bus_close(bus);
    tp_test_remove_dir(dir);
    return 0;
}

typedef struct seen
{
    int requests;
    int broadcasts;
} seen_t;

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    seen_t *s = clientd;
    if (length == 3 && memcmp(buffer, "req", 3) == 0)
    {
        s->requests++;
    }
    else if (length == 2 && memcmp(buffer, "bc", 2) == 0)
    {
        s->broadcasts++;
    }
}

static seen_t drain(tp_bus_subscription_t *sub)
{
    seen_t s = { 0 };
    while (tp_bus_poll(sub, on_message, &s, 64) > 0)
    {
    }
    return s;
}

/* A copy of the stream's registry, read through the file as another process would. */
static void registry_view(tp_bus_registry_t *out)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%d/registry", dir, STREAM);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, out, sizeof(*out), 0), (ssize_t)sizeof(*out));
    close(fd);
}

/* A client of the driver reads the driver's answers, never the other clients' requests: not mapped, not delivered,
 * and a request wakes it neither from its park nor into a rescan. The driver's subscription reads both. */
static void test_requests_reach_only_request_readers(void **state)
{
    (void)state;
    tp_bus_subscription_t *server = NULL;
    tp_bus_subscription_t *client = NULL;
    tp_bus_publication_t *requests = NULL;
    tp_bus_publication_t *answers = NULL;
    tp_assert_ok(tp_bus_subscription_open(&server, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open_broadcast(&client, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_publication_open_with(&requests, bus, "aeron:ipc", STREAM, TP_BUS_PUB_REQUESTS));
    tp_assert_ok(tp_bus_publication_open_with(&answers, bus, "aeron:ipc", STREAM, TP_BUS_PUB_SERVICE));
    assert_true(tp_bus_offer(requests, "req", 3) > 0);
    assert_true(tp_bus_offer(answers, "bc", 2) > 0);
    seen_t s = drain(server);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.broadcasts, 1);
    s = drain(client);
    assert_int_equal(s.requests, 0);
    assert_int_equal(s.broadcasts, 1);
    tp_bus_counters_t k;
    tp_bus_subscription_counters(server, &k);
    assert_int_equal(k.images_active, 2);
    tp_bus_subscription_counters(client, &k);
    assert_int_equal(k.images_active, 1); /* the request image is not even mapped */

    /* Another client's request: the server is woken (data), the client sleeps its park out (nothing for it). */
    tp_bus_publication_t *more = NULL;
    tp_assert_ok(tp_bus_publication_open_with(&more, bus, "aeron:ipc", STREAM, TP_BUS_PUB_REQUESTS));
    assert_true(tp_bus_offer(more, "req", 3) > 0);
    assert_int_equal(tp_bus_subscription_park(client, 20 * TP_NS_PER_MS), 0);
    assert_int_equal(tp_bus_subscription_park(server, 20 * TP_NS_PER_MS), 1);
    assert_int_equal(drain(server).requests, 1);
    assert_int_equal(drain(client).requests, 0);
    /* An answer wakes the client. */
    assert_true(tp_bus_offer(answers, "bc", 2) > 0);
    assert_int_equal(tp_bus_subscription_park(client, 20 * TP_NS_PER_MS), 1);
    assert_int_equal(drain(client).broadcasts, 1);

    tp_bus_publication_close(more);
    tp_bus_publication_close(answers);
    tp_bus_publication_close(requests);
    tp_bus_subscription_close(client);
    tp_bus_subscription_close(server);
}

/* Hellos (consumers to producers) reach the subscriptions that read the hello lane: a producer's (hello lane only)
 * and the driver's (all lanes), not a consumer's (broadcast only), which a hello neither wakes nor makes rescan.
 * A hello-only subscription does not read broadcasts (its client reads them elsewhere). */
static void test_hellos_reach_only_hello_readers(void **state)
{
    (void)state;
    tp_bus_subscription_t *server = NULL;
    tp_bus_subscription_t *producer = NULL;
    tp_bus_subscription_t *consumer = NULL;
    tp_bus_publication_t *hellos = NULL;
    tp_bus_publication_t *answers = NULL;
    tp_assert_ok(tp_bus_subscription_open(&server, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_ok(tp_bus_subscription_open_with(&producer, bus, "aeron:ipc", STREAM, NULL, NULL, NULL,
        TP_BUS_SUB_HELLOS));
    tp_assert_ok(tp_bus_subscription_open_broadcast(&consumer, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_assert_fails_with(tp_bus_subscription_open_with(&consumer, bus, "aeron:ipc", STREAM, NULL, NULL, NULL, 0),
        "at least one lane");
    tp_assert_ok(tp_bus_publication_open_with(&hellos, bus, "aeron:ipc", STREAM, TP_BUS_PUB_HELLOS));
    tp_assert_ok(tp_bus_publication_open_with(&answers, bus, "aeron:ipc", STREAM, TP_BUS_PUB_SERVICE));
    assert_true(tp_bus_offer(hellos, "req", 3) > 0); /* counted as a "request" by on_message: a non-broadcast */
    assert_true(tp_bus_offer(answers, "bc", 2) > 0);
    seen_t s = drain(server);
    assert_int_equal(s.requests + s.broadcasts, 2);
    s = drain(producer);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.broadcasts, 0);
    s = drain(consumer);
    assert_int_equal(s.requests, 0);
    assert_int_equal(s.broadcasts, 1);
    /* A new hello: the producer's subscription is woken, the consumer's sleeps its park out. */
    assert_true(tp_bus_offer(hellos, "req", 3) > 0);
    assert_int_equal(tp_bus_subscription_park(consumer, 20 * TP_NS_PER_MS), 0);
    assert_int_equal(tp_bus_subscription_park(producer, 20 * TP_NS_PER_MS), 1);
    assert_int_equal(drain(producer).requests, 1);
    tp_bus_publication_close(answers);
    tp_bus_publication_close(hellos);
    tp_bus_subscription_close(consumer);
    tp_bus_subscription_close(producer);
    tp_bus_subscription_close(server);
}

/* Request logs are capped (a crowd holds one each), a service's has a floor (a burst of answers to a crowd must lap
 * no slow client): the longest message says which log was made. */
static void test_request_and_service_logs_are_sized_for_crowds(void **state)
{
    (void)state;
    tp_bus_publication_t *p = NULL;
    tp_assert_ok(tp_bus_publication_open_with(&p, bus, "aeron:ipc?term-length=4m", STREAM, TP_BUS_PUB_REQUESTS));
    assert_int_equal(tp_bus_publication_max_message_length(p),
        TP_BUS_REQUESTS_MAX_TERM / 8 - TP_BUS_RECORD_HEADER_BYTES);
    tp_bus_publication_close(p);
    tp_assert_ok(tp_bus_publication_open_with(&p, bus, "aeron:ipc?term-length=64k", STREAM, TP_BUS_PUB_SERVICE));
    assert_int_equal(tp_bus_publication_max_message_length(p),
        TP_BUS_SERVICE_MIN_TERM / 8 - TP_BUS_RECORD_HEADER_BYTES);
    tp_bus_publication_close(p);
    tp_assert_ok(tp_bus_publication_open_with(&p, bus, "aeron:ipc?term-length=64k", STREAM, 0));
    assert_int_equal(tp_bus_publication_max_message_length(p), 64 * 1024 / 8 - TP_BUS_RECORD_HEADER_BYTES);
    tp_bus_publication_close(p);
}

/* The registry counts the publications that wake without a fence, from before their first record to after their
 * last, and a dead one's count goes with its entry: while the count is 0, parking needs no system-wide barrier. */
static void test_asymmetric_publishers_are_counted(void **state)
{
    (void)state;
    bool asymmetric = tp_bus_asymmetric_register(); /* false where the kernel refuses membarrier: all fence */
    tp_bus_subscription_t *sub = NULL;
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, "aeron:ipc", STREAM, NULL, NULL, NULL));
    tp_bus_publication_t *fenced = NULL;
    tp_bus_publication_t *plain = NULL;
    tp_assert_ok(tp_bus_publication_open_with(&fenced, bus, "aeron:ipc", STREAM, TP_BUS_PUB_FENCED));
    tp_bus_registry_t reg;
    registry_view(&reg);
    assert_int_equal(reg.asymmetric_publishers, 0);
    tp_assert_ok(tp_bus_publication_open(&plain, bus, "aeron:ipc", STREAM, false));
    registry_view(&reg);
    assert_int_equal(reg.asymmetric_publishers, asymmetric ? 1 : 0);
    tp_bus_publication_close(plain);
    registry_view(&reg);
    assert_int_equal(reg.asymmetric_publishers, 0);

    /* A process that dies with its publication open: counted until a reap frees its entry. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
    {
        tp_bus_t *b = NULL;
        tp_bus_publication_t *p = NULL;
        _exit(tp_bus_init(&b, dir) == 0 && tp_bus_publication_open(&p, b, "aeron:ipc", STREAM, false) == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(WEXITSTATUS(status), 0);
    registry_view(&reg);
    assert_int_equal(reg.asymmetric_publishers, asymmetric ? 1 : 0);
    assert_true(tp_bus_subscription_reap(sub) >= 1);
    registry_view(&reg);
    assert_int_equal(reg.asymmetric_publishers, 0);
    tp_bus_publication_close(fenced);
    tp_bus_subscription_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_reach_only_request_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hellos_reach_only_hello_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_and_service_logs_are_sized_for_crowds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asymmetric_publishers_are_counted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
