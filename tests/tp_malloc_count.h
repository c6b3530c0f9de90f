/*
 * Counts every heap allocation the process makes, by interposing malloc/calloc/realloc/posix_memalign over
 * glibc's. Link tp_malloc_count.c into a test to use it. Under ASan (which owns malloc) counting is disabled and
 * tp_malloc_count_available() returns 0.
 */
#ifndef TP_MALLOC_COUNT_H
#define TP_MALLOC_COUNT_H

#include <stdint.h>

int tp_malloc_count_available(void);
uint64_t tp_malloc_count(void);
/* Only the calling thread's: for hot paths measured while other threads (an embedded driver) do their own work. */
uint64_t tp_malloc_count_thread(void);

#endif
