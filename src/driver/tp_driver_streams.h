/* The driver's streams: epochs and their regions, activity, damage, epoch GC, announces (tp_driver_streams.c). */
#ifndef TP_DRIVER_STREAMS_H
#define TP_DRIVER_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver/tp_driver_internal.h"

tp_driver_stream_t *tp_driver_stream_find(tp_driver_t *d, uint32_t stream_id);
/* Add a stream and provision its first epoch (above anything on disk). */
tp_driver_stream_t *tp_driver_stream_add(tp_driver_t *d, uint32_t stream_id, const char *name,
    const tp_driver_profile_config_t *profile, bool is_dynamic);
/* Move a stream to a new epoch with fresh regions (old epoch directories are left for GC). */
int tp_driver_stream_bump_epoch(tp_driver_t *d, tp_driver_stream_t *s);
void tp_driver_stream_release(tp_driver_stream_t *s);
/* Refresh activity timestamps of every region. */
void tp_driver_streams_touch(tp_driver_t *d, uint64_t now_ns);
/* A region file of the stream's epoch shrank (truncated by a process that can write it): one fstat per region. */
bool tp_driver_stream_is_damaged(const tp_driver_stream_t *s);
/* Delete old epoch directories of one stream per the GC policy. Returns how many. */
int tp_driver_stream_gc(tp_driver_t *d, const tp_driver_stream_t *s, bool is_startup);
/* At startup: the same for streams found on disk that this driver does not serve. Returns how many. */
int tp_driver_gc_stale_streams(tp_driver_t *d);
/* Every served stream's old epochs again (wire spec 15.21a.7): those a consumer still mapped at the last epoch
 * change go once nobody maps them. Returns the directories removed. */
int tp_driver_gc_sweep(tp_driver_t *d);
/* Encode and publish ShmPoolAnnounce for one stream. */
int tp_driver_announce(tp_driver_t *d, const tp_driver_stream_t *s);

#endif
