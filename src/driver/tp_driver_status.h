/* The driver's status file (tp_driver_status.c). */
#ifndef TP_DRIVER_STATUS_H
#define TP_DRIVER_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

int tp_driver_status_write(tp_driver_t *d);
void tp_driver_status_path(char *out, size_t capacity, const char *bus_dir, uint32_t control_stream_id);

#endif
