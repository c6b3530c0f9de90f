/* Canonical layout; see tp_shm_layout.h. */
#include "shm/tp_shm_layout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "shm/tp_region_uri.h"

int tp_shm_layout_namespace_dir(char *out, size_t capacity, const char *base_dir, const char *name_space)
{
    if (base_dir == NULL || base_dir[0] != '/')
    {
        TP_SET_ERR(TP_E_CONFIG, "shm base directory '%s' is not absolute", base_dir != NULL ? base_dir : "(null)");
        return -1;
    }
    if (!tp_fs_component_is_safe(name_space))
    {
        TP_SET_ERR(TP_E_CONFIG, "shm namespace '%s' must be one path component of [A-Za-z0-9._-]",
            name_space != NULL ? name_space : "(null)");
        return -1;
    }
    char user[300];
    if (tp_fs_user_dir_name(user, sizeof(user)) < 0)
    {
        return -1;
    }
    size_t base_n = strlen(base_dir);
    while (base_n > 1 && base_dir[base_n - 1] == '/')
    {
        base_n--;
    }
    int n = snprintf(out, capacity, "%.*s/%s/%s", (int)base_n, base_dir, user, name_space);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "namespace directory path does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

int tp_shm_layout_parse_number(const char *name, uint64_t *out)
{
    if (name[0] < '0' || name[0] > '9' || (name[0] == '0' && name[1] != '\0'))
    {
        return -1;
    }
    uint64_t v = 0;
    for (const char *c = name; *c != '\0'; c++)
    {
        if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
        {
            return -1;
        }
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *out = v;
    return 0;
}

int tp_shm_layout_stream_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    uint32_t stream_id)
{
    char ns_dir[TP_PATH_MAX];
    if (tp_shm_layout_namespace_dir(ns_dir, sizeof(ns_dir), base_dir, name_space) < 0)
    {
        return -1;
    }
    int n = snprintf(out, capacity, "%s/%" PRIu32, ns_dir, stream_id);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "stream directory path does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

int tp_shm_layout_epoch_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    uint32_t stream_id, uint64_t epoch)
{
    char stream_dir[TP_PATH_MAX];
    if (tp_shm_layout_stream_dir(stream_dir, sizeof(stream_dir), base_dir, name_space, stream_id) < 0)
    {
        return -1;
    }
    int n = snprintf(out, capacity, "%s/%" PRIu64, stream_dir, epoch);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "epoch directory path does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

int tp_shm_layout_header_path(char *out, size_t capacity, const char *epoch_dir)
{
    int n = snprintf(out, capacity, "%s/header.ring", epoch_dir);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "header ring path does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

int tp_shm_layout_pool_path(char *out, size_t capacity, const char *epoch_dir, uint16_t pool_id)
{
    int n = snprintf(out, capacity, "%s/%u.pool", epoch_dir, (unsigned)pool_id);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "pool path does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

mode_t tp_shm_layout_dir_mode(mode_t file_mode)
{
    return (mode_t)(file_mode | ((file_mode & 0444) >> 2) | 0700);
}

int tp_shm_layout_make_namespace_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    mode_t dir_mode, gid_t gid)
{
    if (tp_shm_layout_namespace_dir(out, capacity, base_dir, name_space) < 0)
    {
        return -1;
    }
    char user_dir[TP_PATH_MAX];
    const char *slash = strrchr(out, '/');
    snprintf(user_dir, sizeof(user_dir), "%.*s", (int)(slash - out), out);
    if (gid == (gid_t)-1)
    {
        return tp_fs_mkdirs(base_dir, user_dir, 0700) < 0 || tp_fs_mkdirs(base_dir, out, dir_mode) < 0 ? -1 : 0;
    }
    /* The per-user and namespace directories join the group, whether made now or by an earlier private run. */
    if (tp_fs_mkdirs_shared(base_dir, out, dir_mode, gid) < 0)
    {
        TP_APPEND_ERR("sharing SHM namespace '%s' with group %u", out, (unsigned)gid);
        return -1;
    }
    return 0;
}
