/* Per-consumer streams (tp_driver_consumers.c). */
#ifndef TP_DRIVER_CONSUMERS_H
#define TP_DRIVER_CONSUMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

/* tp_driver_consumers.c: a ConsumerHello asking for per-consumer streams, answered with ConsumerConfig. */
void tp_driver_on_consumer_hello(tp_driver_t *d, const uint8_t *buffer, size_t length);

#endif
