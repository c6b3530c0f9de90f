/* The leaf every part of the driver publishes through (tp_driver_send.c): it knows the bus and the counters, nothing else of the driver. */
#ifndef TP_DRIVER_SEND_H
#define TP_DRIVER_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

/* Publish an encoded message on a publication, retrying briefly on transient results. */
int tp_driver_publish(tp_driver_t *d, tp_bus_publication_t *pub, const uint8_t *buffer, int64_t length);

#endif
