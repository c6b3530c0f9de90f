#include "tp_malloc_count.h"

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TP_MALLOC_COUNT_DISABLED 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TP_MALLOC_COUNT_DISABLED 1
#endif
#endif

static uint64_t calls;
static __thread uint64_t thread_calls; /* the executable's own TLS: no allocation to reach it */

#ifndef TP_MALLOC_COUNT_DISABLED
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
int posix_memalign(void **out, size_t align, size_t size);

void *malloc(size_t size)
{
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    thread_calls++;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    thread_calls++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    thread_calls++;
    return __libc_realloc(p, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    thread_calls++;
    void *p = __libc_memalign(align, size);
    if (p == NULL)
    {
        return 12; /* ENOMEM */
    }
    *out = p;
    return 0;
}

int tp_malloc_count_available(void)
{
    return 1;
}
#else
int tp_malloc_count_available(void)
{
    return 0;
}
#endif

uint64_t tp_malloc_count(void)
{
    return __atomic_load_n(&calls, __ATOMIC_RELAXED);
}

uint64_t tp_malloc_count_thread(void)
{
    return thread_calls;
}
