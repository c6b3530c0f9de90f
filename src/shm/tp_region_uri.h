/*
 * Region URIs (wire spec 15.22): `shm:file?path=<absolute path>[|require_hugepages=true|false]`.
 * Parameters are separated by '|'; path is required exactly once; require_hugepages at most once; anything
 * else (other schemes, unknown or repeated parameters, relative paths, paths with '?', '|', spaces, control or
 * non-ASCII bytes) is rejected with the reason.
 */
#ifndef TP_SHM_REGION_URI_H
#define TP_SHM_REGION_URI_H

#include <stdbool.h>
#include <stddef.h>

#define TP_PATH_MAX 4096

typedef struct tp_region_uri
{
    char path[TP_PATH_MAX];
    bool require_hugepages;
} tp_region_uri_t;

/* Parse `length` bytes of uri (need not be NUL-terminated). -1 (TP_E_INVALID) with the reason. */
int tp_region_uri_parse(tp_region_uri_t *out, const char *uri, size_t length);

/* Format a URI for path; -1 if it does not fit or the path is not a valid absolute path. */
int tp_region_uri_format(char *out, size_t capacity, const char *path, bool require_hugepages);

#endif
