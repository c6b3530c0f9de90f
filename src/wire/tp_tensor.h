/*
 * TensorHeader: the 192-byte embedded SBE message (8-byte header + 184-byte block) that lives in every header
 * slot's headerBytes. Encoding writes every byte (reserved ones zero); decoding checks the embedded header
 * (length 192, blockLength 184, templateId 52, schemaId 900, version 1) and then every tensor rule.
 */
#ifndef TP_WIRE_TENSOR_H
#define TP_WIRE_TENSOR_H

#include <stdint.h>

#include "tensorpool/tp_tensor.h"

#define TP_TENSOR_HEADER_BYTES 192

/* Write the complete embedded message into dst (192 bytes). The caller validated the tensor. */
void tp_tensor_header_encode(uint8_t *dst, const tp_tensor_desc_t *tensor);

/* Decode and validate an embedded TensorHeader of `length` bytes. -1 (TP_E_VALIDATION or TP_E_MALFORMED) with
 * the reason when it must be dropped. Indices >= ndims come out zero whatever the bytes held. */
int tp_tensor_header_decode(const uint8_t *src, uint32_t length, tp_tensor_desc_t *out);

/* The same checks without recording an error (no formatting), and one more: the tensor's layout spans at most the
 * frame's values_len_bytes. For the consumer's per-frame path. */
/* Hot path: no alloc, syscalls or locks. */
int tp_tensor_header_check(const uint8_t *src, uint32_t length, uint32_t values_len_bytes, tp_tensor_desc_t *out);

#endif
