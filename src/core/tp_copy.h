/*
 * Payload copies into and out of pool slots.
 *
 * Slots start 64 bytes into their page (after the superblock, wire spec 6), while a large malloc'd buffer starts
 * 16 bytes into its page. glibc's memcpy avoids `rep movsb` when destination and source are that close modulo
 * 4096 and falls back to a loop that is a quarter slower on this hardware (640 KiB into a slot: 28-31 GiB/s
 * against 37-39 GiB/s). tp_copy_payload uses 32-byte vector loads and stores for large copies on x86-64 with
 * AVX2, whatever the alignment, and memcpy otherwise. No allocation, lock or system call.
 */
#ifndef TP_COPY_H
#define TP_COPY_H

#include <stddef.h>

/* Copies below this size go to memcpy. */
#define TP_COPY_VECTOR_MIN_BYTES 4096

void tp_copy_payload(void *dst, const void *src, size_t length);

/* true if tp_copy_payload uses the vector loop on this CPU (for tp bench's report). */
int tp_copy_is_vectorised(void);

#endif
