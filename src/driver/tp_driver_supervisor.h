/* The supervisor: producers and consumers it hears of, and its rules (tp_driver_supervisor.c). */
#ifndef TP_DRIVER_SUPERVISOR_H
#define TP_DRIVER_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

int tp_driver_supervisor_open(tp_driver_t *d);
void tp_driver_supervisor_close(tp_driver_t *d);
int tp_driver_supervisor_do_work(tp_driver_t *d);
void tp_driver_supervisor_on_hello(tp_driver_t *d, const uint8_t *buffer, size_t length);
tp_driver_supervisor_party_t *tp_driver_supervisor_party(tp_driver_t *d, bool is_consumer, uint32_t stream_id,
    uint32_t id);

#endif
