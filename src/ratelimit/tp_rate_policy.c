/* The rate limiter's timer; see tp_rate_policy.h. */
#include "ratelimit/tp_rate_policy.h"

#define NS_PER_S 1000000000LL

void tp_rate_policy_init(tp_rate_policy_t *p, uint32_t max_rate_hz)
{
    tp_rate_policy_reset(p, max_rate_hz);
}

void tp_rate_policy_reset(tp_rate_policy_t *p, uint32_t max_rate_hz)
{
    p->max_rate_hz = max_rate_hz;
    p->period_ns = max_rate_hz == 0 ? 0 : NS_PER_S / max_rate_hz;
    p->next_open_ns = 0;
    p->has_passed = false;
}

bool tp_rate_policy_is_open(const tp_rate_policy_t *p, int64_t now_ns)
{
    return p->max_rate_hz == 0 || !p->has_passed || now_ns >= p->next_open_ns;
}

void tp_rate_policy_take(tp_rate_policy_t *p, int64_t now_ns)
{
    /* Spaced from the previous slot while frames keep up, from now after a gap longer than a period. */
    int64_t from = p->has_passed && now_ns - p->next_open_ns < p->period_ns ? p->next_open_ns : now_ns;
    p->next_open_ns = from + p->period_ns;
    p->has_passed = true;
}
