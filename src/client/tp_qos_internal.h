/* QoS reports sent by producers and consumers (their periodic duty, see tp_qos.h). */
#ifndef TP_QOS_INTERNAL_H
#define TP_QOS_INTERNAL_H

#include "client/tp_client_internal.h"

/* Every producer and consumer of a client reports through the client's one QoS publication (opened with the first,
 * closed with the last): a process holding hundreds of leases holds one QoS image, not hundreds. */
typedef struct tp_qos_sender
{
    tp_client_t *client;
    tp_bus_publication_t *pub;
    int64_t period_ns;
    int64_t next_ns;
} tp_qos_sender_t;

int tp_qos_sender_open(tp_qos_sender_t *sender, tp_client_t *client);
void tp_qos_sender_close(tp_qos_sender_t *sender);
/* true once per period (and then schedules the next). */
bool tp_qos_sender_due(tp_qos_sender_t *sender, int64_t now_ns);
void tp_qos_send_producer(tp_qos_sender_t *sender, uint32_t stream_id, uint32_t producer_id, uint64_t epoch,
    uint64_t current_seq);
void tp_qos_send_consumer(tp_qos_sender_t *sender, uint32_t stream_id, uint32_t consumer_id, uint64_t epoch,
    uint64_t last_seq_seen, uint64_t drops_gap, uint64_t drops_late, uint8_t mode);

#endif
