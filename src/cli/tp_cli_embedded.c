/* An embedded driver in a private corner of the base directory; see tp_cli_embedded.h. */
#include "cli/tp_cli_embedded.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/tp_err.h"
#include "shm/tp_shm_layout.h"

int tp_cli_embedded_open(tp_cli_embedded_t *e, const char *base_dir, const char *prefix, uint32_t stream_id,
    uint32_t nslots, const uint16_t *pool_ids, const uint32_t *strides, uint32_t pool_count)
{
    return tp_cli_embedded_open_streams(e, base_dir, prefix, &stream_id, 1, nslots, pool_ids, strides, pool_count);
}

int tp_cli_embedded_open_streams(tp_cli_embedded_t *e, const char *base_dir, const char *prefix,
    const uint32_t *stream_ids, uint32_t stream_count, uint32_t nslots, const uint16_t *pool_ids,
    const uint32_t *strides, uint32_t pool_count)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->name_space, sizeof(e->name_space), "%s-%d", prefix, (int)getpid());
    if (tp_shm_layout_namespace_dir(e->namespace_dir, sizeof(e->namespace_dir), base_dir, e->name_space) < 0)
    {
        return -1;
    }
    snprintf(e->bus_dir, sizeof(e->bus_dir), "%s-bus", e->namespace_dir);
    if (tp_driver_context_init(&e->driver_context) < 0 ||
        tp_driver_context_set(e->driver_context, "driver.bus_dir", e->bus_dir) < 0 ||
        tp_driver_context_set(e->driver_context, "shm.base_dir", base_dir) < 0 ||
        tp_driver_context_set(e->driver_context, "shm.namespace", e->name_space) < 0 ||
        tp_driver_context_set(e->driver_context, "shm.permissions_mode", "600") < 0 ||
        tp_driver_context_set(e->driver_context, "policies.cleanup_shm_on_exit", "true") < 0 ||
        tp_driver_context_add_profile(e->driver_context, "embedded", nslots, pool_ids, strides, pool_count) < 0)
    {
        TP_APPEND_ERR("starting the embedded driver");
        return -1;
    }
    for (uint32_t i = 0; i < stream_count; i++)
    {
        char name[32];
        snprintf(name, sizeof(name), "embedded-%" PRIu32, stream_ids[i]);
        if (tp_driver_context_add_stream(e->driver_context, name, stream_ids[i], "embedded") < 0)
        {
            TP_APPEND_ERR("starting the embedded driver");
            return -1;
        }
    }
    if (tp_driver_init(&e->driver, e->driver_context) < 0 || tp_driver_start(e->driver) < 0)
    {
        TP_APPEND_ERR("starting the embedded driver");
        return -1;
    }
    if (tp_client_context_init(&e->client_context) < 0 ||
        tp_client_context_set(e->client_context, "client.bus_dir", e->bus_dir) < 0 ||
        tp_client_context_set(e->client_context, "client.allowed_base_dirs", base_dir) < 0)
    {
        return -1;
    }
    return 0;
}

void tp_cli_embedded_close(tp_cli_embedded_t *e)
{
    tp_driver_close(e->driver); /* removes the stream's regions (cleanup_shm_on_exit) */
    tp_driver_context_close(e->driver_context);
    tp_client_context_close(e->client_context);
    if (e->namespace_dir[0] != '\0')
    {
        tp_fs_remove_tree(e->namespace_dir);
        tp_fs_remove_tree(e->bus_dir);
    }
    memset(e, 0, sizeof(*e));
}
