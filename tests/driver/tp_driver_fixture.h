/* The embedded-driver fixture shared by tp_driver_test and tp_driver_regions_test: a driver on its own thread
 * in a private directory (bus, SHM base), a bus and a driver proxy talking to it like a client process. */
#ifndef TP_DRIVER_FIXTURE_H
#define TP_DRIVER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_clock.h"
#include "driver/tp_driver_internal.h"
#include "cli/tp_driver_proxy.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_driver.h"

#define TIMEOUT_NS (5 * TP_NS_PER_S)
#define CAM 10
#define IMU 11

typedef struct fixture
{
    char dir[512];
    char bus_dir[600];
    char shm_dir[600];
    tp_driver_context_t *ctx;
    tp_driver_t *driver;
    tp_bus_t *bus;
    tp_driver_proxy_t *proxy;
    uint32_t next_client_id;
} fixture_t;

extern fixture_t F;

/* Set a driver key on F.ctx (fails the test if refused). */
void set(const char *key, const char *value);
/* A context for a driver in a fresh directory: streams CAM and IMU (profile "small": 8 slots, pools 1 x 4 KiB and
 * 2 x 64 KiB), dynamic ids 20000-20001, announces every 100 ms, shutdown token "tok". */
void fixture_context(const char *name);
/* Init and start the driver from F.ctx, open the bus and proxy. */
void fixture_start(void);
int setup(void **state);
int teardown(void **state);

/* Attach parameters with a fresh client id, REQUIRE_EXISTING, UNSPECIFIED hugepages. */
tp_attach_params_t params(uint32_t stream_id, uint8_t role);
void attach(const tp_attach_params_t *p, tp_attach_result_t *r);
void attach_ok(const tp_attach_params_t *p, tp_attach_result_t *r);
/* Refused with code: no optional field set, an error message naming why (at most 1024 bytes). */
void attach_refused(const tp_attach_params_t *p, int32_t code, const char *why);
/* Stop the driver thread so its counters can be read; returns the driver. */
tp_driver_t *driver_stopped(void);
/* Map a region through the containment rules and validate its superblock, then unmap. */
void map_region(const char *uri_text, const tp_superblock_t *expected);
/* Wait for an announce of stream_id with an epoch above epoch (events from *from on); returns its epoch. */
uint64_t wait_announce_epoch_above(uint32_t stream_id, uint64_t epoch, size_t *from, uint32_t *producer_id);

#endif
