/*
 * The only allocator of the library. Every heap allocation goes through tp_alloc/tp_free so tests can count
 * them: a steady-state hot path must make zero calls.
 */
#ifndef TP_CORE_ALLOC_H
#define TP_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Allocate zeroed memory into *out. Returns 0, or -1 with ENOMEM set as the error. */
int tp_alloc(void **out, size_t size_bytes);

/* Resize *p (new bytes are not zeroed). Returns 0, or -1 leaving *p untouched. */
int tp_realloc(void **p, size_t size_bytes);

/* Free memory from tp_alloc; NULL is fine. */
void tp_free(void *p);

/* Copy a string into tp_alloc'd memory. NULL on failure (error set). */
char *tp_strdup(const char *s);

/* Number of tp_alloc/tp_realloc calls made by this process so far (relaxed counter, for tests). */
uint64_t tp_alloc_count(void);

#endif
