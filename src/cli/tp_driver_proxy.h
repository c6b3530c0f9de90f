/*
 * A synchronous driver client for the tp tool and the tests (not part of the library): attach, detach, keepalive
 * and shutdown requests, the attach and detach answered by correlation id before the call returns. Built on the
 * client conductor (client/tp_client_conductor.h), whose asynchronous requests the producers and consumers use.
 *
 * It records the driver's notices (ShmLeaseRevoked, ShmDriverShutdown), ShmPoolAnnounce, ConsumerConfig and
 * ConsumerHello on the control stream, in arrival order, so callers can check what happened and in which order.
 * An attach can also be started and polled.
 */
#ifndef TP_DRIVER_PROXY_H
#define TP_DRIVER_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "client/tp_client_conductor.h"
#include "tensorpool/tp_bus.h"

#define TP_PROXY_MAX_EVENTS 256

typedef struct tp_driver_proxy tp_driver_proxy_t;

int tp_driver_proxy_open(tp_driver_proxy_t **out, tp_bus_t *bus, const char *control_channel,
    uint32_t control_stream_id);
void tp_driver_proxy_close(tp_driver_proxy_t *proxy);

/* Also read ShmPoolAnnounce from another stream (when the driver's announce stream is not its control stream). */
int tp_driver_proxy_subscribe_announces(tp_driver_proxy_t *proxy, tp_bus_t *bus, const char *channel,
    uint32_t stream_id);
/* The control-stream subscription (to park on while waiting). */
tp_bus_subscription_t *tp_driver_proxy_subscription(tp_driver_proxy_t *proxy);

/* Send an attach and wait for its response, resending it (same correlation id, every 100 ms doubling to 1 s) in
 * case the driver joined our publication after the first copy or restarted. 0 once a response arrived (whatever
 * its code); -1 on timeout (TP_E_TIMEOUT), a send failure or a malformed response. */
int tp_driver_proxy_attach(tp_driver_proxy_t *proxy, const tp_attach_params_t *params, tp_attach_result_t *result,
    int64_t timeout_ns);

/* The same without waiting: start sends the request (one attach at a time per proxy; result must stay valid
 * until the attach finished or was cancelled); poll reads, resends when due, and returns 1 once the response is
 * in result, 0 while waiting, -1 on a send failure or a malformed response. */
int tp_driver_proxy_attach_start(tp_driver_proxy_t *proxy, const tp_attach_params_t *params,
    tp_attach_result_t *result);
int tp_driver_proxy_attach_poll(tp_driver_proxy_t *proxy);

/* Send a detach and wait for its response; *code receives the response code, message (may be NULL) its text. */
int tp_driver_proxy_detach(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role, int32_t *code, char *message, size_t message_capacity, int64_t timeout_ns);

/* Send a detach without waiting for its response (the response is ignored). */
int tp_driver_proxy_detach_send(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role);

int tp_driver_proxy_keepalive(tp_driver_proxy_t *proxy, uint64_t lease_id, uint32_t stream_id, uint32_t client_id,
    uint8_t role);
int tp_driver_proxy_shutdown_request(tp_driver_proxy_t *proxy, const char *token, uint8_t reason);

/* Send raw bytes on the control stream (tests of hostile input). */
int tp_driver_proxy_send(tp_driver_proxy_t *proxy, const void *buffer, size_t length);

/* Poll for notices without waiting; returns how many messages were read. */
int tp_driver_proxy_poll(tp_driver_proxy_t *proxy);

/* Wait until an event matching kind (and lease_id/stream_id when non-zero) has been recorded at or after
 * index *from; on success *from is set past it and *out (may be NULL) receives it. */
int tp_driver_proxy_await_event(tp_driver_proxy_t *proxy, tp_control_event_kind_t kind, uint64_t lease_id,
    uint32_t stream_id, size_t *from, tp_control_event_t *out, int64_t timeout_ns);

/* Messages not acted on: a newer schema version than ours, a revocation with an unknown reason or role. */
uint64_t tp_driver_proxy_messages_rejected(const tp_driver_proxy_t *proxy);
/* Messages only the driver sends (its schema, pool announces) that came from another process's image: ignored. */
uint64_t tp_driver_proxy_messages_untrusted(const tp_driver_proxy_t *proxy);

/* Recorded events (at most TP_PROXY_MAX_EVENTS; later ones are dropped and counted). */
size_t tp_driver_proxy_event_count(const tp_driver_proxy_t *proxy);
const tp_control_event_t *tp_driver_proxy_event(const tp_driver_proxy_t *proxy, size_t index);

/* The next correlation id this proxy will use. */
int64_t tp_driver_proxy_next_correlation_id(tp_driver_proxy_t *proxy);

#endif
