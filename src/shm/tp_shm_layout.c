/* Canonical layout; see tp_shm_layout.h. */
#include "shm/tp_shm_layout.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/tp_err.h"
#include "shm/tp_region_uri.h"

static int component_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

void tp_shm_sanitize_component(const char *in, char *out, size_t capacity)
{
    size_t n = 0;
    for (; in != NULL && in[n] != '\0' && n + 1 < capacity; n++)
    {
        out[n] = component_char_ok(in[n]) ? in[n] : '_';
    }
    out[n] = '\0';
    if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    {
        snprintf(out, capacity, "_");
    }
}

int tp_shm_component_is_safe(const char *name)
{
    if (name == NULL || name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    {
        return 0;
    }
    for (const char *c = name; *c != '\0'; c++)
    {
        if (!component_char_ok(*c))
        {
            return 0;
        }
    }
    return 1;
}

int tp_shm_user_dir_name(char *out, size_t capacity)
{
    char raw[256];
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) == 0 && found != NULL && found->pw_name != NULL)
    {
        snprintf(raw, sizeof(raw), "%s", found->pw_name);
    }
    else
    {
        snprintf(raw, sizeof(raw), "uid%u", (unsigned)geteuid());
    }
    char safe[256];
    tp_shm_sanitize_component(raw, safe, sizeof(safe));
    int n = snprintf(out, capacity, "tensorpool-%s", safe);
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "user directory name does not fit %zu bytes", capacity);
        return -1;
    }
    return 0;
}

int tp_shm_layout_stream_dir(char *out, size_t capacity, const char *base_dir, const char *name_space,
    uint32_t stream_id)
{
    if (base_dir == NULL || base_dir[0] != '/')
    {
        TP_SET_ERR(TP_E_CONFIG, "shm base directory '%s' is not absolute", base_dir != NULL ? base_dir : "(null)");
        return -1;
    }
    if (!tp_shm_component_is_safe(name_space))
    {
        TP_SET_ERR(TP_E_CONFIG, "shm namespace '%s' must be one path component of [A-Za-z0-9._-]",
            name_space != NULL ? name_space : "(null)");
        return -1;
    }
    char user[300];
    if (tp_shm_user_dir_name(user, sizeof(user)) < 0)
    {
        return -1;
    }
    size_t base_n = strlen(base_dir);
    while (base_n > 1 && base_dir[base_n - 1] == '/')
    {
        base_n--;
    }
    int n = snprintf(out, capacity, "%.*s/%s/%s/%" PRIu32, (int)base_n, base_dir, user, name_space, stream_id);
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
