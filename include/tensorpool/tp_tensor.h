/*
 * Tensor descriptions: element type, memory order, shape and strides of one frame's payload.
 *
 * Values are the wire spec v1.2 registry (section 15.8); they never change within v1.x.
 */
#ifndef TENSORPOOL_TP_TENSOR_H
#define TENSORPOOL_TP_TENSOR_H

#include "tensorpool/tp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_MAX_DIMS 8

typedef enum tp_dtype
{
    TP_DTYPE_UNKNOWN = 0,
    TP_DTYPE_UINT8 = 1,
    TP_DTYPE_INT8 = 2,
    TP_DTYPE_UINT16 = 3,
    TP_DTYPE_INT16 = 4,
    TP_DTYPE_UINT32 = 5,
    TP_DTYPE_INT32 = 6,
    TP_DTYPE_UINT64 = 7,
    TP_DTYPE_INT64 = 8,
    TP_DTYPE_FLOAT32 = 9,
    TP_DTYPE_FLOAT64 = 10,
    TP_DTYPE_BOOLEAN = 11,
    TP_DTYPE_BYTES = 13,
    TP_DTYPE_BIT = 14,
} tp_dtype_t;

typedef enum tp_major_order
{
    TP_MAJOR_ORDER_UNKNOWN = 0,
    TP_MAJOR_ORDER_ROW = 1,
    TP_MAJOR_ORDER_COLUMN = 2,
} tp_major_order_t;

typedef enum tp_progress_unit
{
    TP_PROGRESS_UNIT_NONE = 0,
    TP_PROGRESS_UNIT_ROWS = 1,
    TP_PROGRESS_UNIT_COLUMNS = 2,
} tp_progress_unit_t;

/*
 * Shape of a payload. dims[i] and strides[i] for i >= ndims are ignored on input and zero on output.
 * A stride of 0 means "contiguous, inferred": the innermost dimension (last for ROW, first for COLUMN) gets the
 * element size and every outer one the product of the inner stride and extent. Explicit strides must not make
 * dimensions overlap (an outer stride is at least inner stride x inner extent); negative strides are invalid.
 * UNKNOWN and BIT elements infer as 1 byte. UNKNOWN major order infers like ROW.
 */
typedef struct tp_tensor_desc
{
    tp_dtype_t dtype;
    tp_major_order_t major_order;
    uint8_t ndims;
    tp_progress_unit_t progress_unit;
    uint32_t progress_stride_bytes; /* required (>0, equal to the row/column stride) when progress_unit != NONE */
    int32_t dims[TP_MAX_DIMS];
    int32_t strides[TP_MAX_DIMS];
} tp_tensor_desc_t;

/* Size of one element in bytes (1 for UNKNOWN, BYTES, BOOLEAN and BIT), 0 for a value outside the registry. */
TP_API size_t tp_dtype_size_bytes(tp_dtype_t dtype);

/* "FLOAT32", ... or NULL for a value outside the registry. */
TP_API const char *tp_dtype_name(tp_dtype_t dtype);

/* Check every rule of wire spec 8.2 (ndims 1..8, known enums, non-negative dims and strides, no overlap, order
 * consistent, progress stride consistent). 0 if valid, -1 with a message naming the rule otherwise. */
TP_API int tp_tensor_validate(const tp_tensor_desc_t *tensor);

/* tp_tensor_validate, plus our own rule (not in the spec's text): the bytes the layout spans (from the first
 * element to the end of the last) fit in length_bytes, the frame's payload. Producers refuse a frame that breaks it
 * and consumers drop one (counted invalid), so no view built from dims and strides reads past the payload. */
TP_API int tp_tensor_validate_length(const tp_tensor_desc_t *tensor, uint64_t length_bytes);

/* Resolve the effective byte strides (inferring zeros) and the number of bytes the layout spans.
 * Returns 0, or -1 if the tensor is invalid. */
TP_API int tp_tensor_resolve(const tp_tensor_desc_t *tensor, int64_t strides_out[TP_MAX_DIMS], uint64_t *span_bytes);

/* A 1-D tensor of length bytes of dtype BYTES (length 0 is fine). */
TP_API void tp_tensor_bytes(tp_tensor_desc_t *tensor, uint32_t length_bytes);

#ifdef __cplusplus
}
#endif

#endif
