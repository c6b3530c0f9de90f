/* The driver's leases: attach, detach, keepalive, expiry, revocation (tp_driver_leases.c). */
#ifndef TP_DRIVER_LEASES_H
#define TP_DRIVER_LEASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

void tp_driver_on_attach(tp_driver_t *d, const uint8_t *buffer, size_t length);
/* An attach encoded with a newer schema version: answered UNSUPPORTED when its correlation id can be read. */
void tp_driver_on_attach_unsupported_version(tp_driver_t *d, const uint8_t *buffer, size_t length,
    uint16_t version);
void tp_driver_on_detach(tp_driver_t *d, const uint8_t *buffer, size_t length);
void tp_driver_on_keepalive(tp_driver_t *d, const uint8_t *buffer, size_t length);
/* Expire leases whose keepalives stopped. Returns how many. */
int tp_driver_expire_leases(tp_driver_t *d);
/* Carry out queued tp_driver_revoke_lease requests. Returns how many. */
int tp_driver_revoke_queued(tp_driver_t *d);
/* Invalidate a lease: ShmLeaseRevoked, and for a producer an epoch bump and a fresh announce. */
void tp_driver_end_lease(tp_driver_t *d, tp_driver_lease_t *lease, uint8_t reason, const char *why);

/* Move every damaged stream to a new epoch (ending its producer's lease, which announces it). Returns the count. */
int tp_driver_retire_damaged(tp_driver_t *d);

#endif
