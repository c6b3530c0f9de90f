/*
 * A process that hosts an embedded driver and is also a client: other processes must keep getting answers. POSIX
 * record locks belong to a process and are dropped when it closes any descriptor of the file, so a client in the
 * driver's own process must never open and close the driver's lock file to ask who holds it (as it does for bus
 * images of other processes): once it did, other processes saw no lock holder, took the driver's answers for
 * forgeries and waited forever.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/tp_client_fixture.h"
#include "core/tp_clock.h"
#include "tp_test_util.h"

#define STREAM 10

static client_fixture_t F;
static char out[1 << 14];

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "embedded");
    client_fixture_add_stream(&F, "s", STREAM, "p", 8, 4096);
    client_fixture_start(&F);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_fixture_close(&F);
    return 0;
}

static void test_other_processes_keep_their_answers(void **state)
{
    (void)state;
    /* External tools (`tp attach` here) reach the embedded driver on its well-known control endpoint, the default
     * channel and stream 1000, with nothing but the bus directory to go by. covers: D-4.11-1s */
    tp_client_t *client;
    tp_producer_t *producer;
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    tp_assert_ok(tp_producer_attach(&producer, client, STREAM, 5 * TP_NS_PER_S));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s attach --role consumer --stream-id %d --timeout 5 --bus-dir '%s' 2>&1", TP_TOOL,
        STREAM, F.bus);
    for (int round = 0; round < 3; round++)
    {
        assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
        tp_test_assert_contains(out, "OK");
        /* This process's client reads the other process's request on the control stream (an image of another
         * process: it asks who holds the driver's lock) before the next one comes. */
        int64_t until = tp_clock_monotonic_ns() + 200 * TP_NS_PER_MS;
        while (tp_clock_monotonic_ns() < until)
        {
            tp_producer_do_work(producer);
            usleep(1000);
        }
    }
    /* A second driver for the same bus in this process is refused without touching the first one's lock. */
    tp_driver_t *second = NULL;
    assert_int_equal(tp_driver_init(&second, F.dctx), -1);
    tp_test_assert_contains(tp_errmsg(), "already serves");
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    tp_test_assert_contains(out, "OK");
    tp_producer_close(producer);
    tp_client_close(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_processes_keep_their_answers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
