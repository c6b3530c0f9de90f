/* Idle strategies and agent runners; see tensorpool/tp_agent.h. */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_log.h"
#include "tensorpool/tp_agent.h"

void tp_idle_busy_spin(tp_idle_strategy_t *s)
{
    memset(s, 0, sizeof(*s));
    s->kind = TP_IDLE_BUSY_SPIN;
}

void tp_idle_yield(tp_idle_strategy_t *s)
{
    memset(s, 0, sizeof(*s));
    s->kind = TP_IDLE_YIELD;
}

void tp_idle_sleep(tp_idle_strategy_t *s, int64_t period_ns)
{
    memset(s, 0, sizeof(*s));
    s->kind = TP_IDLE_SLEEP;
    s->max_park_ns = period_ns > 0 ? period_ns : TP_NS_PER_MS;
}

void tp_idle_backoff(tp_idle_strategy_t *s, uint32_t max_spins, uint32_t max_yields, int64_t min_park_ns,
    int64_t max_park_ns)
{
    memset(s, 0, sizeof(*s));
    s->kind = TP_IDLE_BACKOFF;
    s->max_spins = max_spins > 0 ? max_spins : 100;
    s->max_yields = max_yields > 0 ? max_yields : 10;
    s->min_park_ns = min_park_ns > 0 ? min_park_ns : TP_NS_PER_US;
    s->max_park_ns = max_park_ns > 0 ? max_park_ns : TP_NS_PER_MS;
    s->park_ns = s->min_park_ns;
}

void tp_idle_set_park(tp_idle_strategy_t *s, tp_idle_park_t park, void *clientd)
{
    s->park = park;
    s->park_clientd = clientd;
}

void tp_idle_reset(tp_idle_strategy_t *s)
{
    s->spins = 0;
    s->yields = 0;
    s->park_ns = s->min_park_ns;
}

static void idle_park(tp_idle_strategy_t *s, int64_t ns)
{
    if (s->park != NULL)
    {
        s->park(s->park_clientd, ns);
        return;
    }
    struct timespec ts = { .tv_sec = ns / TP_NS_PER_S, .tv_nsec = ns % TP_NS_PER_S };
    nanosleep(&ts, NULL);
}

void tp_idle(tp_idle_strategy_t *s, int work_count)
{
    if (work_count > 0)
    {
        if (s->kind == TP_IDLE_BACKOFF)
        {
            tp_idle_reset(s);
        }
        return;
    }
    switch (s->kind)
    {
    case TP_IDLE_BUSY_SPIN: tp_cpu_relax(); break;
    case TP_IDLE_YIELD: sched_yield(); break;
    case TP_IDLE_SLEEP: idle_park(s, s->max_park_ns); break;
    case TP_IDLE_BACKOFF:
        if (s->spins < s->max_spins)
        {
            s->spins++;
            tp_cpu_relax();
        }
        else if (s->yields < s->max_yields)
        {
            s->yields++;
            sched_yield();
        }
        else
        {
            idle_park(s, s->park_ns);
            s->park_ns = s->park_ns * 2 > s->max_park_ns ? s->max_park_ns : s->park_ns * 2;
        }
        break;
    }
}

int tp_agent_invoke(const tp_agent_t *agent)
{
    return agent->do_work(agent->state, tp_clock_monotonic_ns());
}

int tp_agent_run(const tp_agent_t *agent, tp_idle_strategy_t *idle, const int *stop)
{
    while (!tp_load_acquire_int(stop))
    {
        int work = agent->do_work(agent->state, tp_clock_monotonic_ns());
        if (work < 0)
        {
            tp_log_errmsg(TP_LOG_ERROR, "agent", agent->name != NULL ? agent->name : "agent");
            return -1;
        }
        tp_idle(idle, work);
    }
    return 0;
}

struct tp_agent_runner
{
    tp_agent_t agent;
    tp_idle_strategy_t idle;
    pthread_t thread;
    int stop;
    int running;
    bool is_started;
    bool is_closed;
};

static void *runner_main(void *arg)
{
    tp_agent_runner_t *r = arg;
    tp_agent_run(&r->agent, &r->idle, &r->stop);
    tp_store_relaxed_int(&r->running, 0);
    return NULL;
}

int tp_agent_runner_init(tp_agent_runner_t **out, const tp_agent_t *agent, const tp_idle_strategy_t *idle)
{
    tp_agent_runner_t *r = NULL;
    if (agent == NULL || agent->do_work == NULL || idle == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "an agent runner needs an agent with do_work and an idle strategy");
        return -1;
    }
    if (tp_alloc((void **)&r, sizeof(*r)) < 0)
    {
        return -1;
    }
    r->agent = *agent;
    r->idle = *idle;
    *out = r;
    return 0;
}

int tp_agent_runner_start(tp_agent_runner_t *r)
{
    if (r->is_started)
    {
        TP_SET_ERR(TP_E_STATE, "agent '%s' is already started", r->agent.name != NULL ? r->agent.name : "");
        return -1;
    }
    tp_store_relaxed_int(&r->running, 1);
    int rc = pthread_create(&r->thread, NULL, runner_main, r);
    if (rc != 0)
    {
        tp_store_relaxed_int(&r->running, 0);
        TP_SET_ERR(rc, "starting agent '%s': %s", r->agent.name != NULL ? r->agent.name : "", strerror(rc));
        return -1;
    }
    r->is_started = true;
    return 0;
}

int tp_agent_runner_stop(tp_agent_runner_t *r)
{
    if (r == NULL || !r->is_started)
    {
        return 0;
    }
    tp_store_release_int(&r->stop, 1);
    pthread_join(r->thread, NULL);
    r->is_started = false;
    return 0;
}

int tp_agent_runner_close(tp_agent_runner_t *r)
{
    if (r == NULL)
    {
        return 0;
    }
    tp_agent_runner_stop(r);
    if (r->agent.on_close != NULL)
    {
        r->agent.on_close(r->agent.state);
    }
    tp_free(r);
    return 0;
}

bool tp_agent_runner_is_running(const tp_agent_runner_t *r)
{
    return tp_load_relaxed_int(&r->running) != 0;
}
