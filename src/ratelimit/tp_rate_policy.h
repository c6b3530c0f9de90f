/*
 * The rate limiter's timer (rate limiter spec section 4): at most max_rate_hz frames per second, 0 meaning
 * unlimited; the first frame after a reset (start, remap, source epoch change) passes at once. Time comes from the
 * caller. Slots are spaced 1/max_rate_hz apart from the one before, so the long-run rate is the cap exactly; after
 * a quiet spell the next frame passes at once and spacing restarts from it (no burst to catch up).
 */
#ifndef TP_RATE_POLICY_H
#define TP_RATE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tp_rate_policy
{
    uint32_t max_rate_hz;
    int64_t period_ns;
    int64_t next_open_ns; /* the next frame may pass at or after this time */
    bool has_passed;      /* a frame passed since the last reset */
} tp_rate_policy_t;

void tp_rate_policy_init(tp_rate_policy_t *p, uint32_t max_rate_hz);
/* Start over: the next frame passes at once (and the rate may change). */
void tp_rate_policy_reset(tp_rate_policy_t *p, uint32_t max_rate_hz);
bool tp_rate_policy_is_open(const tp_rate_policy_t *p, int64_t now_ns);
/* A frame passed at now_ns: close the slot until the next one opens. */
void tp_rate_policy_take(tp_rate_policy_t *p, int64_t now_ns);

#endif
