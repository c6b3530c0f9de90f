/* The set-up most client tests share: a private directory with a bus and an SHM base, a driver context for them
 * (regions not prefaulted) and a client context allowed to map from that base. Each test adds its streams and
 * settings, starts the driver, and connects the clients it needs. */
#ifndef TP_CLIENT_FIXTURE_H
#define TP_CLIENT_FIXTURE_H

#include <stdint.h>

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"

typedef struct client_fixture
{
    char dir[512];
    char bus[600];
    char shm[600];
    tp_driver_context_t *dctx;
    tp_driver_t *driver;
    tp_client_context_t *cctx;
} client_fixture_t;

/* Directory `name` (made fresh) with bus/ and shm/, the driver and client contexts for them. Nothing runs yet. */
void client_fixture_prepare(client_fixture_t *f, const char *name);
/* Profile `profile`: nslots slots and one pool (id 1) of stride bytes; stream stream_id (named `stream`) of it. */
void client_fixture_add_stream(client_fixture_t *f, const char *stream, uint32_t stream_id, const char *profile,
    uint32_t nslots, uint32_t stride);
/* Init the driver from the context and run it on its own thread. */
void client_fixture_start(client_fixture_t *f);
/* The discovery tests' driver, started: instance "driver-a", announces every 100 ms, streams "cam" (10) and
 * "lidar" (11) of 16 slots of 4 KiB; clients publish metadata every 50 ms. */
void client_fixture_start_discovery(client_fixture_t *f, const char *name);
/* Close the driver and both contexts and remove the directory (the test closes its clients first). */
void client_fixture_close(client_fixture_t *f);

#endif
