/*
 * Canonical filesystem layout (wire spec 15.21a.3):
 *   <base>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/header.ring
 *   <base>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/<pool_id>.pool
 * <user> is the effective user name, sanitised so it cannot leave the base directory; <namespace> must be a
 * single safe path component (configuration error otherwise). File names are stable: header.ring, N.pool.
 */
#ifndef TP_SHM_LAYOUT_H
#define TP_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* <base>/tensorpool-<user>/<namespace>/<stream_id>/<epoch> */
int tp_shm_layout_epoch_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    uint32_t stream_id, uint64_t epoch);
/* <base>/tensorpool-<user>/<namespace> */
int tp_shm_layout_namespace_dir(char *out, size_t capacity, const char *base_dir, const char *name_space);
/* The mode of the directories below the namespace for a file mode: its r bits give x (660 -> 770). */
mode_t tp_shm_layout_dir_mode(mode_t file_mode);
/* Create what is missing of <base>/tensorpool-<user>/<namespace> and put its path in out. Private (gid -1): the
 * per-user directory 0700 (whatever the file mode, other users get no way in: wire spec 15.21a.6), the namespace
 * directory dir_mode. Shared with group gid: both get dir_mode (with setgid) and the group, even if they existed. */
int tp_shm_layout_make_namespace_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    mode_t dir_mode, gid_t gid);
/* <base>/tensorpool-<user>/<namespace>/<stream_id> */
int tp_shm_layout_stream_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    uint32_t stream_id);
/* The number a <stream_id> or <epoch> directory name stands for: only the canonical decimal form the layout writes
 * (digits, no sign, no leading zero, no overflow) counts, so "-1", "+5", "007", "1e3" or "" are not epochs.
 * Returns 0 and sets *out, or -1 (no error text: a directory scan skips such names). */
int tp_shm_layout_parse_number(const char *name, uint64_t *out);
int tp_shm_layout_header_path(char *out, size_t capacity, const char *epoch_dir);
int tp_shm_layout_pool_path(char *out, size_t capacity, const char *epoch_dir, uint16_t pool_id);

#endif
