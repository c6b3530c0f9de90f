/* Metadata internals shared by the producer and the publisher. */
#ifndef TP_METADATA_INTERNAL_H
#define TP_METADATA_INTERNAL_H

#include "client/tp_client_internal.h"
#include "tensorpool/tp_metadata.h"

/* The producer id and epoch announced (a change is announced at the next do_work). */
void tp_metadata_publisher_set_identity(tp_metadata_publisher_t *publisher, uint32_t producer_id, uint64_t epoch);

#endif
