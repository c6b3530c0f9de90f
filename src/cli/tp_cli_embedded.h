/*
 * An embedded driver with one stream and a client context for it, in a private bus directory and SHM namespace
 * (<base>/tensorpool-$USER/<prefix>-<pid>[-bus]) removed on close: what `tp demo` and `tp bench frames` run on.
 */
#ifndef TP_CLI_EMBEDDED_H
#define TP_CLI_EMBEDDED_H

#include <stdint.h>

#include "core/tp_fs.h"
#include "shm/tp_region_uri.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_driver.h"

typedef struct tp_cli_embedded
{
    char name_space[64];
    char bus_dir[TP_PATH_MAX + 8];
    char namespace_dir[TP_PATH_MAX];
    tp_driver_context_t *driver_context;
    tp_driver_t *driver;
    tp_client_context_t *client_context;
} tp_cli_embedded_t;

/* Start the driver on its own thread with stream_id served by one profile (nslots, pools). */
int tp_cli_embedded_open(tp_cli_embedded_t *e, const char *base_dir, const char *prefix, uint32_t stream_id,
    uint32_t nslots, const uint16_t *pool_ids, const uint32_t *strides, uint32_t pool_count);
/* The same with several streams of that profile. */
int tp_cli_embedded_open_streams(tp_cli_embedded_t *e, const char *base_dir, const char *prefix,
    const uint32_t *stream_ids, uint32_t stream_count, uint32_t nslots, const uint16_t *pool_ids,
    const uint32_t *strides, uint32_t pool_count);
/* Stop the driver and remove everything it created. Safe on a zeroed or half-opened one. */
void tp_cli_embedded_close(tp_cli_embedded_t *e);

#endif
