/* Agents and idle strategies: invoker, runner thread start/stop, stop flag, backoff escalation and reset. */
#include <string.h>

#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "tensorpool/tp_agent.h"
#include "tp_test_util.h"

typedef struct counting
{
    uint64_t calls;
    int64_t last_now;
    int closed;
    int fail_at;
    int *stop_after;
} counting_t;

static int counting_do_work(void *state, int64_t now_ns)
{
    counting_t *c = state;
    uint64_t n = tp_fetch_add_relaxed_u64(&c->calls, 1) + 1;
    c->last_now = now_ns;
    if (c->fail_at > 0 && (int)n == c->fail_at)
    {
        return -1;
    }
    if (c->stop_after != NULL && n >= 1000)
    {
        __atomic_store_n(c->stop_after, 1, __ATOMIC_RELEASE);
    }
    return (int)(n % 2);
}

static void counting_close(void *state)
{
    ((counting_t *)state)->closed++;
}

static void test_invoke(void **state)
{
    (void)state;
    counting_t c = { 0 };
    tp_agent_t agent = { .name = "count", .do_work = counting_do_work, .state = &c };
    int64_t before = tp_clock_monotonic_ns();
    assert_int_equal(tp_agent_invoke(&agent), 1);
    assert_int_equal(c.calls, 1);
    assert_true(c.last_now >= before);
}

static void test_run_until_stop_flag(void **state)
{
    (void)state;
    int stop = 0;
    counting_t c = { .stop_after = &stop };
    tp_agent_t agent = { .name = "count", .do_work = counting_do_work, .state = &c };
    tp_idle_strategy_t idle;
    tp_idle_busy_spin(&idle);
    tp_assert_ok(tp_agent_run(&agent, &idle, &stop));
    assert_int_equal(c.calls, 1000);
    counting_t failing = { .fail_at = 5 };
    agent.state = &failing;
    stop = 0;
    assert_int_equal(tp_agent_run(&agent, &idle, &stop), -1);
    assert_int_equal(failing.calls, 5);
}

static void test_runner_thread(void **state)
{
    (void)state;
    counting_t c = { 0 };
    tp_agent_t agent = { .name = "count", .do_work = counting_do_work, .on_close = counting_close, .state = &c };
    tp_idle_strategy_t idle;
    tp_idle_backoff(&idle, 10, 2, 1000, 100000);
    tp_agent_runner_t *r;
    tp_assert_ok(tp_agent_runner_init(&r, &agent, &idle));
    tp_assert_ok(tp_agent_runner_start(r));
    tp_assert_fails_with(tp_agent_runner_start(r), "already started");
    int64_t deadline = tp_clock_monotonic_ns() + 10 * 1000000000LL;
    while (tp_load_relaxed_u64(&c.calls) < 100 && tp_clock_monotonic_ns() < deadline)
    {
    }
    assert_true(tp_agent_runner_is_running(r));
    tp_assert_ok(tp_agent_runner_stop(r));
    assert_false(tp_agent_runner_is_running(r));
    uint64_t calls = c.calls;
    assert_true(calls >= 100);
    tp_assert_ok(tp_agent_runner_stop(r)); /* idempotent */
    assert_int_equal(c.calls, calls);      /* nothing runs after stop */
    tp_assert_ok(tp_agent_runner_close(r));
    assert_int_equal(c.closed, 1);
    tp_assert_ok(tp_agent_runner_close(NULL));
}

static int parks;
static int64_t last_park_ns;

static int fake_park(void *clientd, int64_t timeout_ns)
{
    (void)clientd;
    parks++;
    last_park_ns = timeout_ns;
    return 0;
}

static void test_backoff_escalates_and_resets(void **state)
{
    (void)state;
    tp_idle_strategy_t s;
    tp_idle_backoff(&s, 3, 2, 1000, 8000);
    tp_idle_set_park(&s, fake_park, NULL);
    parks = 0;
    for (int i = 0; i < 5; i++)
    {
        tp_idle(&s, 0); /* 3 spins, 2 yields */
    }
    assert_int_equal(parks, 0);
    tp_idle(&s, 0);
    assert_int_equal(parks, 1);
    assert_int_equal(last_park_ns, 1000);
    tp_idle(&s, 0);
    tp_idle(&s, 0);
    tp_idle(&s, 0);
    tp_idle(&s, 0);
    assert_int_equal(last_park_ns, 8000); /* doubles up to the cap */
    tp_idle(&s, 1);                       /* work resets */
    for (int i = 0; i < 5; i++)
    {
        tp_idle(&s, 0);
    }
    assert_int_equal(parks, 5);
    tp_idle(&s, 0);
    assert_int_equal(last_park_ns, 1000);
    tp_idle_sleep(&s, 2000);
    tp_idle_set_park(&s, fake_park, NULL);
    tp_idle(&s, 0);
    assert_int_equal(last_park_ns, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invoke),
        cmocka_unit_test(test_run_until_stop_flag),
        cmocka_unit_test(test_runner_thread),
        cmocka_unit_test(test_backoff_escalates_and_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
