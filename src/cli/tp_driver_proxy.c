/* The synchronous, recording driver client of the tp tool and the tests; see tp_driver_proxy.h. */
#include "cli/tp_driver_proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"

/* One request the proxy waits for (at most one attach and one detach at a time). */
typedef struct awaited
{
    int64_t correlation_id; /* 0: none */
    bool is_done;
    bool is_failed;
    char failure[TP_CONTROL_MESSAGE_MAX];
} awaited_t;

struct tp_driver_proxy
{
    tp_client_conductor_t *conductor;
    awaited_t attach;
    tp_attach_result_t *attach_result;
    awaited_t detach;
    int32_t detach_code;
    char detach_message[TP_CONTROL_MESSAGE_MAX];
    tp_control_event_t events[TP_PROXY_MAX_EVENTS];
    size_t event_count;
    uint64_t events_dropped;
};

static void answered(awaited_t *w, const tp_control_event_t *e)
{
    w->is_done = true;
    w->is_failed = e->failure != NULL;
    snprintf(w->failure, sizeof(w->failure), "%s", e->failure != NULL ? e->failure : "");
}

static void on_event(void *clientd, const tp_control_event_t *e)
{
    tp_driver_proxy_t *p = clientd;
    if (e->kind == TP_CONTROL_EVENT_ATTACH_RESPONSE)
    {
        if (e->correlation_id == p->attach.correlation_id && !p->attach.is_done)
        {
            answered(&p->attach, e);
            if (e->attach != NULL)
            {
                *p->attach_result = *e->attach;
            }
        }
        return;
    }
    if (e->kind == TP_CONTROL_EVENT_DETACH_RESPONSE)
    {
        if (e->correlation_id == p->detach.correlation_id && !p->detach.is_done)
        {
            answered(&p->detach, e);
            p->detach_code = e->code;
            snprintf(p->detach_message, sizeof(p->detach_message), "%s", e->message != NULL ? e->message : "");
        }
        return;
    }
    if (e->kind == TP_CONTROL_EVENT_PROGRESS)
    {
        return; /* frequent, and no caller waits for it */
    }
    if (p->event_count == TP_PROXY_MAX_EVENTS)
    {
        p->events_dropped++;
        return;
    }
    p->events[p->event_count++] = *e;
}

int tp_driver_proxy_open(tp_driver_proxy_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id)
{
    *out = NULL;
    tp_driver_proxy_t *p = NULL;
    if (tp_alloc((void **)&p, sizeof(*p)) < 0)
    {
        return -1;
    }
    if (tp_client_conductor_open(&p->conductor, bus, control_channel, control_stream_id) < 0)
    {
        tp_free(p);
        return -1;
    }
    tp_client_conductor_set_handler(p->conductor, on_event, p);
    *out = p;
    return 0;
}

void tp_driver_proxy_close(tp_driver_proxy_t *p)
{
    if (p == NULL)
    {
        return;
    }
    tp_client_conductor_close(p->conductor);
    tp_free(p);
}



int tp_driver_proxy_subscribe_announces(tp_driver_proxy_t *p, tp_bus_t *bus, const char *channel,
    uint32_t stream_id)
{
    return tp_client_conductor_subscribe_announces(p->conductor, bus, channel, stream_id);
}

tp_bus_subscription_t *tp_driver_proxy_subscription(tp_driver_proxy_t *p)
{
    return tp_client_conductor_subscription(p->conductor);
}


int tp_driver_proxy_poll(tp_driver_proxy_t *p)
{
    return tp_client_conductor_do_work(p->conductor, tp_clock_monotonic_ns());
}

/* Poll until the awaited answer came (0), it failed (-1), or the deadline (real time) passed (-1, cancelled). */
static int await_answer(tp_driver_proxy_t *p, awaited_t *w, int64_t timeout_ns, const char *what)
{
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    for (;;)
    {
        int polled = tp_driver_proxy_poll(p);
        if (w->is_done)
        {
            w->correlation_id = 0;
            if (w->is_failed)
            {
                TP_SET_ERR(TP_E_MALFORMED, "%s", w->failure);
                return -1;
            }
            return 0;
        }
        if (tp_clock_monotonic_ns() > deadline)
        {
            tp_client_conductor_cancel(p->conductor, w->correlation_id);
            w->correlation_id = 0;
            TP_SET_ERR(TP_E_TIMEOUT, "no %s response from the driver within %" PRId64 " ms", what,
                (int64_t)(timeout_ns / TP_NS_PER_MS));
            return -1;
        }
        if (polled == 0)
        {
            /* Only when nothing came in; until the answer wakes us, the next resend is due or the deadline (at most
             * 100 ms): a crowd of waiters that woke every millisecond would spend the CPU the driver needs. */
            int64_t now = tp_clock_monotonic_ns();
            int64_t wait = tp_client_conductor_park_ns(p->conductor, now, 100 * TP_NS_PER_MS);
            wait = wait < deadline - now ? wait : deadline - now;
            if (wait > 0)
            {
                tp_bus_subscription_park(tp_driver_proxy_subscription(p), wait);
            }
        }
    }
}

int tp_driver_proxy_attach_start(tp_driver_proxy_t *p, const tp_attach_params_t *a, tp_attach_result_t *result)
{
    if (p->attach.correlation_id != 0)
    {
        TP_SET_ERR(TP_E_STATE, "an attach request is already pending on this driver proxy");
        return -1;
    }
    int64_t cid = tp_client_conductor_attach(p->conductor, a, tp_clock_monotonic_ns());
    if (cid < 0)
    {
        return -1;
    }
    p->attach = (awaited_t){ .correlation_id = cid };
    p->attach_result = result;
    return 0;
}

int tp_driver_proxy_attach_poll(tp_driver_proxy_t *p)
{
    if (p->attach.correlation_id == 0)
    {
        TP_SET_ERR(TP_E_STATE, "no attach request is pending");
        return -1;
    }
    tp_driver_proxy_poll(p);
    if (!p->attach.is_done)
    {
        return 0;
    }
    p->attach.correlation_id = 0;
    if (p->attach.is_failed)
    {
        TP_SET_ERR(TP_E_MALFORMED, "%s", p->attach.failure);
        return -1;
    }
    return 1;
}



int tp_driver_proxy_attach(tp_driver_proxy_t *p, const tp_attach_params_t *a, tp_attach_result_t *result,
    int64_t timeout_ns)
{
    if (tp_driver_proxy_attach_start(p, a, result) < 0)
    {
        return -1;
    }
    return await_answer(p, &p->attach, timeout_ns, "attach");
}

int tp_driver_proxy_detach_send(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role)
{
    return tp_client_conductor_detach_send(p->conductor, lease_id, stream_id, client_id, role);
}

int tp_driver_proxy_detach(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role, int32_t *code, char *message, size_t message_capacity, int64_t timeout_ns)
{
    int64_t cid = tp_client_conductor_detach(p->conductor, lease_id, stream_id, client_id, role,
        tp_clock_monotonic_ns());
    if (cid < 0)
    {
        return -1;
    }
    p->detach = (awaited_t){ .correlation_id = cid };
    if (await_answer(p, &p->detach, timeout_ns, "detach") < 0)
    {
        return -1;
    }
    *code = p->detach_code;
    if (message != NULL && message_capacity > 0)
    {
        snprintf(message, message_capacity, "%s", p->detach_message);
    }
    return 0;
}

int tp_driver_proxy_keepalive(tp_driver_proxy_t *p, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role)
{
    return tp_client_conductor_keepalive(p->conductor, lease_id, stream_id, client_id, role);
}

int tp_driver_proxy_shutdown_request(tp_driver_proxy_t *p, const char *token, uint8_t reason)
{
    return tp_client_conductor_shutdown_request(p->conductor, token, reason);
}

int tp_driver_proxy_send(tp_driver_proxy_t *p, const void *buffer, size_t length)
{
    return tp_client_conductor_send(p->conductor, buffer, length);
}

int tp_driver_proxy_await_event(tp_driver_proxy_t *p, tp_control_event_kind_t kind, uint64_t lease_id,
    uint32_t stream_id, size_t *from, tp_control_event_t *out, int64_t timeout_ns)
{
    int64_t deadline = tp_clock_monotonic_ns() + timeout_ns;
    for (;;)
    {
        for (size_t i = *from; i < p->event_count; i++)
        {
            const tp_control_event_t *e = &p->events[i];
            if (e->kind == kind && (lease_id == 0 || e->lease_id == lease_id) &&
                (stream_id == 0 || e->stream_id == stream_id))
            {
                *from = i + 1;
                if (out != NULL)
                {
                    *out = *e;
                }
                return 0;
            }
        }
        if (tp_clock_monotonic_ns() > deadline)
        {
            TP_SET_ERR(TP_E_TIMEOUT, "no such driver notice within %" PRId64 " ms",
                (int64_t)(timeout_ns / TP_NS_PER_MS));
            return -1;
        }
        if (tp_driver_proxy_poll(p) == 0)
        {
            tp_bus_subscription_park(tp_driver_proxy_subscription(p), TP_NS_PER_MS);
        }
    }
}

uint64_t tp_driver_proxy_messages_rejected(const tp_driver_proxy_t *p)
{
    return tp_client_conductor_messages_rejected(p->conductor);
}

uint64_t tp_driver_proxy_messages_untrusted(const tp_driver_proxy_t *p)
{
    return tp_client_conductor_messages_untrusted(p->conductor);
}

size_t tp_driver_proxy_event_count(const tp_driver_proxy_t *p)
{
    return p->event_count;
}

const tp_control_event_t *tp_driver_proxy_event(const tp_driver_proxy_t *p, size_t index)
{
    return index < p->event_count ? &p->events[index] : NULL;
}

int64_t tp_driver_proxy_next_correlation_id(tp_driver_proxy_t *p)
{
    return tp_client_conductor_next_correlation_id(p->conductor);
}
