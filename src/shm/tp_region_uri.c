/* Region URI parsing; see tp_region_uri.h. */
#include "shm/tp_region_uri.h"

#include <stdio.h>
#include <string.h>

#include "core/tp_err.h"

#define URI_PREFIX "shm:file?"

static int path_char_ok(unsigned char c)
{
    /* ABNF abs-path = 1*( VCHAR except "?" and "|" and SP ) */
    return c >= 0x21 && c <= 0x7E && c != '?' && c != '|';
}

static int uri_param(tp_region_uri_t *out, const char *p, size_t n, int *has_path, int *has_huge)
{
    const char *eq = memchr(p, '=', n);
    if (eq == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "region URI parameter '%.*s' has no '='", (int)n, p);
        return -1;
    }
    size_t key_n = (size_t)(eq - p);
    const char *value = eq + 1;
    size_t value_n = n - key_n - 1;
    if (key_n == 4 && memcmp(p, "path", 4) == 0)
    {
        if (*has_path)
        {
            TP_SET_ERR(TP_E_INVALID, "region URI repeats 'path'");
            return -1;
        }
        *has_path = 1;
        if (value_n == 0 || value[0] != '/')
        {
            TP_SET_ERR(TP_E_INVALID, "region URI path '%.*s' is not absolute (must start with '/')", (int)value_n,
                value);
            return -1;
        }
        if (value_n >= sizeof(out->path))
        {
            TP_SET_ERR(TP_E_INVALID, "region URI path is %zu bytes, longer than %d", value_n, TP_PATH_MAX - 1);
            return -1;
        }
        for (size_t i = 0; i < value_n; i++)
        {
            if (!path_char_ok((unsigned char)value[i]))
            {
                TP_SET_ERR(TP_E_INVALID, "region URI path holds a forbidden byte 0x%02x at position %zu",
                    (unsigned char)value[i], i);
                return -1;
            }
        }
        memcpy(out->path, value, value_n);
        out->path[value_n] = '\0';
        /* '&' is a legal path byte, but "&require_hugepages=" is a mistaken separator: honouring it as part of the
         * path would silently drop the hugepage requirement (wire spec 15.22). */
        if (strstr(out->path, "&require_hugepages=") != NULL || strstr(out->path, "&path=") != NULL)
        {
            TP_SET_ERR(TP_E_INVALID, "region URI parameters are separated by '|', not '&' (in '%s')", out->path);
            return -1;
        }
        return 0;
    }
    if (key_n == 17 && memcmp(p, "require_hugepages", 17) == 0)
    {
        if (*has_huge)
        {
            TP_SET_ERR(TP_E_INVALID, "region URI repeats 'require_hugepages'");
            return -1;
        }
        *has_huge = 1;
        if (value_n == 4 && memcmp(value, "true", 4) == 0)
        {
            out->require_hugepages = true;
            return 0;
        }
        if (value_n == 5 && memcmp(value, "false", 5) == 0)
        {
            out->require_hugepages = false;
            return 0;
        }
        TP_SET_ERR(TP_E_INVALID, "require_hugepages must be 'true' or 'false', not '%.*s'", (int)value_n, value);
        return -1;
    }
    TP_SET_ERR(TP_E_INVALID, "region URI has unknown parameter '%.*s'", (int)key_n, p);
    return -1;
}

int tp_region_uri_parse(tp_region_uri_t *out, const char *uri, size_t length)
{
    memset(out, 0, sizeof(*out));
    size_t prefix_n = strlen(URI_PREFIX);
    if (uri == NULL || length < prefix_n || memcmp(uri, URI_PREFIX, prefix_n) != 0)
    {
        const char *colon = uri != NULL ? memchr(uri, ':', length) : NULL;
        TP_SET_ERR(TP_E_INVALID, "unsupported region URI scheme '%.*s' (only shm:file is supported)",
            colon != NULL ? (int)(colon - uri) : (int)(length > 32 ? 32 : length), uri != NULL ? uri : "");
        return -1;
    }
    int has_path = 0;
    int has_huge = 0;
    const char *p = uri + prefix_n;
    const char *end = uri + length;
    while (p <= end)
    {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *stop = bar != NULL ? bar : end;
        if (stop == p)
        {
            TP_SET_ERR(TP_E_INVALID, "region URI has an empty parameter");
            return -1;
        }
        if (uri_param(out, p, (size_t)(stop - p), &has_path, &has_huge) < 0)
        {
            return -1;
        }
        if (bar == NULL)
        {
            break;
        }
        p = bar + 1;
    }
    if (!has_path)
    {
        TP_SET_ERR(TP_E_INVALID, "region URI has no path parameter");
        return -1;
    }
    return 0;
}

int tp_region_uri_format(char *out, size_t capacity, const char *path, bool require_hugepages)
{
    if (path == NULL || path[0] != '/')
    {
        TP_SET_ERR(TP_E_INVALID, "region path '%s' is not absolute", path != NULL ? path : "(null)");
        return -1;
    }
    for (const char *c = path; *c != '\0'; c++)
    {
        if (!path_char_ok((unsigned char)*c))
        {
            TP_SET_ERR(TP_E_INVALID, "region path '%s' holds a byte a region URI cannot carry", path);
            return -1;
        }
    }
    int n = snprintf(out, capacity, URI_PREFIX "path=%s%s", path, require_hugepages ? "|require_hugepages=true" : "");
    if (n < 0 || (size_t)n >= capacity)
    {
        TP_SET_ERR(TP_E_INVALID, "region URI for '%s' does not fit %zu bytes", path, capacity);
        return -1;
    }
    return 0;
}
