/*
 * Consumer internals shared by the read path (tp_consumer.c) and the control side (tp_consumer_control.c:
 * ConsumerHello, ConsumerConfig, per-consumer descriptor streams, local rate gating).
 */
#ifndef TP_CONSUMER_INTERNAL_H
#define TP_CONSUMER_INTERNAL_H

#include "client/tp_client_internal.h"
#include "client/tp_qos_internal.h"

#define REMAP_WAIT_NS (250 * TP_NS_PER_MS)

/* What the latest ConsumerConfig for this consumer said (applied at the next tick). */
typedef struct tp_consumer_grant
{
    bool is_pending;
    uint32_t descriptor_stream_id; /* 0: declined or not asked */
    char descriptor_channel[128];
    uint32_t control_stream_id; /* 0: declined or not asked */
    char control_channel[128];
    uint8_t mode; /* TP_WIRE_MODE_* the driver or a supervisor told us */
} tp_consumer_grant_t;

struct tp_consumer
{
    tp_client_lease_t lease;
    tp_bus_subscription_t *descriptors; /* the shared descriptor stream */
    tp_bus_subscription_t *own;         /* a per-consumer descriptor stream, when granted */
    uint32_t own_stream_id;
    tp_bus_subscription_t *own_control; /* a per-consumer control stream (FrameProgress), when granted */
    uint32_t own_control_stream_id;
    tp_consumer_options_t options;
    char options_channel[TP_CONFIG_STRING_MAX];
    char options_control_channel[TP_CONFIG_STRING_MAX];
    tp_consumer_grant_t grant;
    uint32_t hello_generation; /* the attachment the last hello was sent for */
    int64_t next_hello_ns;
    int64_t hello_period_ns;
    uint64_t last_gate_ns; /* local rate gating: the time of the last frame let through */
    uint8_t told_mode;     /* the mode of the latest ConsumerConfig (0: none yet: the options' mode applies) */
    tp_progress_handler_t progress_handler;
    void *progress_clientd;
    uint64_t progress_seq;   /* the frame the last progress report was about */
    uint64_t progress_bytes; /* and how far it was */
    bool progress_seq_dropped;
    tp_qos_sender_t qos;
    uint32_t mask;
    uint32_t generation; /* of the lease this state was derived from */
    bool has_expected;
    uint64_t expected_seq;
    uint64_t resync_to; /* after a resync: descriptors below this seq are dropped unread (wire spec 15.4) */
    tp_consumer_counters_t counters;
    /* the handler of tp_consumer_agent */
    tp_frame_handler_t agent_handler;
    void *agent_clientd;
    /* for the duration of one poll */
    tp_frame_handler_t handler;
    void *clientd;
    int delivered;
    /* pull style (tp_consumer_next): the frame handed out, checked again at the next call */
    bool is_pulling;
    bool has_pulled;
    tp_frame_t pulled;
    int pulled_copied;
};


/* Control side (tp_consumer_control.c). */
void tp_consumer_control_init(tp_consumer_t *consumer, const tp_consumer_options_t *options);
/* Hellos when due, the latest ConsumerConfig applied. Not a hot path when it does something (opens
 * subscriptions); otherwise a few comparisons. */
void tp_consumer_control_tick(tp_consumer_t *consumer, int64_t now_ns);
void tp_consumer_control_close(tp_consumer_t *consumer);
/* FrameProgress from the consumer's own control stream, when it has one. */
int tp_consumer_control_poll(tp_consumer_t *consumer);
/* Local rate gating (wire spec 11, RATE_LIMITED without a per-consumer stream): true if frame seq, whose descriptor
 * is stamped timestamp_ns (0: none, then the slot's capture time, else the local clock), may be delivered; then it
 * counts as the last one delivered. */
bool tp_consumer_rate_allows(tp_consumer_t *consumer, uint64_t timestamp_ns, uint64_t seq);

#endif
