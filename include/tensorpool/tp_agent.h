/*
 * Agents and idle strategies.
 *
 * An agent is a duty cycle: do_work(state, now_ns) does a bounded amount of work and returns how much it did
 * (0 lets the idle strategy back off). Run it on its own thread with a runner, or call tp_agent_invoke from your
 * own loop (tests drive agents that way with a fake clock).
 *
 * Idle strategies, called after each duty cycle with its work count:
 *   busy-spin  never sleeps (lowest latency, a full core)
 *   yield      sched_yield when idle
 *   sleep      sleeps a fixed period when idle
 *   backoff    spins, then yields, then parks with a growing timeout; parking uses the park function when one is
 *              set (e.g. tp_bus_subscription_park: a futex the publishers wake), else nanosleep.
 */
#ifndef TENSORPOOL_TP_AGENT_H
#define TENSORPOOL_TP_AGENT_H

#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_idle_kind
{
    TP_IDLE_BUSY_SPIN = 1,
    TP_IDLE_YIELD = 2,
    TP_IDLE_SLEEP = 3,
    TP_IDLE_BACKOFF = 4,
} tp_idle_kind_t;

/* Sleep until woken or timeout_ns passes; returns 1 if woken, 0 on timeout. */
typedef int (*tp_idle_park_t)(void *clientd, int64_t timeout_ns);

typedef struct tp_idle_strategy
{
    tp_idle_kind_t kind;
    uint32_t max_spins;
    uint32_t max_yields;
    int64_t min_park_ns;
    int64_t max_park_ns; /* also the period of TP_IDLE_SLEEP */
    tp_idle_park_t park;
    void *park_clientd;
    /* state */
    uint32_t spins;
    uint32_t yields;
    int64_t park_ns;
} tp_idle_strategy_t;

TP_API void tp_idle_busy_spin(tp_idle_strategy_t *s);
TP_API void tp_idle_yield(tp_idle_strategy_t *s);
TP_API void tp_idle_sleep(tp_idle_strategy_t *s, int64_t period_ns);
/* Defaults when 0: 100 spins, 10 yields, parks from 1 us doubling to 1 ms. */
TP_API void tp_idle_backoff(tp_idle_strategy_t *s, uint32_t max_spins, uint32_t max_yields, int64_t min_park_ns,
    int64_t max_park_ns);
/* Park through park(clientd, timeout) instead of nanosleep (backoff and sleep strategies). */
TP_API void tp_idle_set_park(tp_idle_strategy_t *s, tp_idle_park_t park, void *clientd);
/* Called after each duty cycle. work_count > 0 resets the backoff. */
TP_API void tp_idle(tp_idle_strategy_t *s, int work_count);
TP_API void tp_idle_reset(tp_idle_strategy_t *s);

typedef struct tp_agent
{
    const char *name;
    int (*do_work)(void *state, int64_t now_ns);
    void (*on_close)(void *state); /* optional; called once by tp_agent_runner_close */
    void *state;
} tp_agent_t;

typedef struct tp_agent_runner tp_agent_runner_t;

/* One duty cycle now (the invoker form). Returns the work count, or -1 if the agent failed. */
TP_API int tp_agent_invoke(const tp_agent_t *agent);

/* Run the agent on the calling thread until *stop (read atomically) becomes non-zero, e.g. set by a signal handler
 * with an atomic store, or do_work returns -1. Returns 0, or -1 if the agent failed. */
TP_API int tp_agent_run(const tp_agent_t *agent, tp_idle_strategy_t *idle, const int *stop);

/* A runner owns a thread that runs one agent. The agent and idle strategy are copied. */
TP_API int tp_agent_runner_init(tp_agent_runner_t **out, const tp_agent_t *agent, const tp_idle_strategy_t *idle);
TP_API int tp_agent_runner_start(tp_agent_runner_t *runner);
/* Ask the thread to stop and join it. Idempotent. */
TP_API int tp_agent_runner_stop(tp_agent_runner_t *runner);
/* Stop, call on_close, free. NULL is fine. */
TP_API int tp_agent_runner_close(tp_agent_runner_t *runner);
/* true while the thread runs; false after it stopped or the agent failed. */
TP_API bool tp_agent_runner_is_running(const tp_agent_runner_t *runner);

#ifdef __cplusplus
}
#endif

#endif
