/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by the bridge and meta blobs.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a slicing-by-8 table otherwise; both give identical
 * results (tested). CRC32C("123456789") = 0xE3069283.
 */
#ifndef TP_CORE_CRC32C_H
#define TP_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#include "tensorpool/tp_common.h"

/* CRC of data, continuing from crc (pass 0 to start). */
TP_API uint32_t tp_crc32c(uint32_t crc, const void *data, size_t length);

/* The portable table implementation, always available (tests compare it with the hardware path). */
uint32_t tp_crc32c_sw(uint32_t crc, const void *data, size_t length);

/* The SSE4.2 implementation; call only when tp_crc32c_has_hw() returns 1. */
uint32_t tp_crc32c_hw(uint32_t crc, const void *data, size_t length);
int tp_crc32c_has_hw(void);

#endif
