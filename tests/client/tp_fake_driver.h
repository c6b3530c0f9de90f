/*
 * A fake driver that says exactly what each client protocol test needs (attach responses right or wrong,
 * revocations, announces), on control stream FAKE_CONTROL; a real embedded driver (control stream 1000) owns the
 * stream's regions, refreshes their activity and gives the fake valid URIs to hand out. The client under test
 * (`client`, made by fake_setup from `cctx`) speaks to the fake only.
 */
#ifndef TP_FAKE_DRIVER_H
#define TP_FAKE_DRIVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/tp_client_internal.h"
#include "cli/tp_driver_proxy.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

#define STREAM 10
#define FAKE_CONTROL 2000
#define TIMEOUT_NS (5 * TP_NS_PER_S)

typedef struct request
{
    int64_t correlation_id;
    uint32_t client_id;
    uint32_t stream_id;
    uint8_t role;
} request_t;

typedef struct fake_driver
{
    tp_bus_subscription_t *sub;
    tp_bus_publication_t *pub;
    request_t requests[64];
    int attach_requests;
    int attach_messages; /* resends included */
    int detach_requests;
    int keepalives;
    tp_bus_subscription_t *detach_sub;
    tp_bus_publication_t *detach_pub;
    pthread_t detacher;
    int stop;
} fake_driver_t;

/* What to get wrong in a response. */
typedef struct mutation
{
    int32_t code;
    uint64_t lease_id;
    bool null_lease_id;
    bool null_epoch;
    uint16_t header_slot_bytes; /* 0: 256 */
    const char *header_uri;     /* NULL: the real one */
    uint32_t pool_nslots;       /* 0: the real one */
    bool no_pools;
    uint64_t lease_expiry_ns; /* 0: null */
    uint16_t schema_version;  /* 0: ours */
    const char *error_message; /* NULL: "" for OK, "refused by the fake" otherwise */
} mutation_t;

extern fake_driver_t fake;
extern tp_attach_result_t real; /* a real consumer attach: valid URIs and epoch */
extern tp_bus_t *bus;
extern tp_client_context_t *cctx;
extern tp_client_t *client;
extern char bus_dir[600];
extern char shm[600];
extern const mutation_t ok;

/* The real driver, the fake and a client of it; fake_setup_with applies extra settings ("key=value", NULL ended)
 * to the real driver and to the client, and an optional clock to the client, before they start. */
int fake_setup(void **state);
void fake_setup_with(const char *const *driver_settings, const char *const *client_settings, tp_clock_fn_t clock);
int fake_teardown(void **state);
void fake_poll(void);
void fake_respond(int64_t correlation_id, const mutation_t *mu);
void fake_revoke(uint64_t lease_id, uint32_t client_id, uint8_t role, uint8_t reason);
/* A ShmPoolAnnounce of stream_id at epoch with the real attach's layout, stamped now on CLOCK_MONOTONIC. */
void fake_announce(uint32_t stream_id, uint64_t epoch);
void on_frame(void *clientd, const tp_frame_t *f);
/* Poll the consumer and the fake until the fake has seen `count` distinct attach requests. */
const request_t *await_request(tp_consumer_t *c, int count);
/* Poll both for a while (ms). */
void run_for(tp_consumer_t *c, int ms);
void until_attached(tp_consumer_t *c);

#endif
