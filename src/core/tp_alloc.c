/* Counting allocator wrapper; see tp_alloc.h. */
#include "core/tp_alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_atomic.h"
#include "core/tp_err.h"

static uint64_t alloc_calls;

int tp_alloc(void **out, size_t size_bytes)
{
    tp_fetch_add_relaxed_u64(&alloc_calls, 1);
    void *p = calloc(1, size_bytes == 0 ? 1 : size_bytes);
    if (p == NULL)
    {
        TP_SET_ERR(ENOMEM, "out of memory allocating %zu bytes", size_bytes);
        return -1;
    }
    *out = p;
    return 0;
}

int tp_realloc(void **p, size_t size_bytes)
{
    tp_fetch_add_relaxed_u64(&alloc_calls, 1);
    void *n = realloc(*p, size_bytes == 0 ? 1 : size_bytes);
    if (n == NULL)
    {
        TP_SET_ERR(ENOMEM, "out of memory growing to %zu bytes", size_bytes);
        return -1;
    }
    *p = n;
    return 0;
}

void tp_free(void *p)
{
    free(p);
}

char *tp_strdup(const char *s)
{
    size_t n = strlen(s);
    char *copy = NULL;
    if (tp_alloc((void **)&copy, n + 1) < 0)
    {
        return NULL;
    }
    memcpy(copy, s, n + 1);
    return copy;
}

uint64_t tp_alloc_count(void)
{
    return tp_load_relaxed_u64(&alloc_calls);
}
