/* Tensor rules (wire spec 8.2) and the embedded TensorHeader codec. */
#include "wire/tp_tensor.h"

#include <inttypes.h>
#include <string.h>

#include "core/tp_err.h"
#include "tp_sbe_wire.h"

size_t tp_dtype_size_bytes(tp_dtype_t dtype)
{
    switch (dtype)
    {
    case TP_DTYPE_UNKNOWN:
    case TP_DTYPE_UINT8:
    case TP_DTYPE_INT8:
    case TP_DTYPE_BOOLEAN:
    case TP_DTYPE_BYTES:
    case TP_DTYPE_BIT: return 1;
    case TP_DTYPE_UINT16:
    case TP_DTYPE_INT16: return 2;
    case TP_DTYPE_UINT32:
    case TP_DTYPE_INT32:
    case TP_DTYPE_FLOAT32: return 4;
    case TP_DTYPE_UINT64:
    case TP_DTYPE_INT64:
    case TP_DTYPE_FLOAT64: return 8;
    }
    return 0;
}

const char *tp_dtype_name(tp_dtype_t dtype)
{
    return tp_wire_dtype_name(dtype);
}

void tp_tensor_bytes(tp_tensor_desc_t *tensor, uint32_t length_bytes)
{
    memset(tensor, 0, sizeof(*tensor));
    tensor->dtype = TP_DTYPE_BYTES;
    tensor->major_order = TP_MAJOR_ORDER_ROW;
    tensor->ndims = 1;
    tensor->dims[0] = (int32_t)(length_bytes > INT32_MAX ? INT32_MAX : length_bytes);
}

/* Rule failures are formatted only when the caller asked for a report: the consumer's per-frame check drops a bad
 * frame without formatting anything (hot path). */
#define TENSOR_FAIL(report, ...)                                                                                      \
    do                                                                                                                \
    {                                                                                                                 \
        if (report)                                                                                                   \
        {                                                                                                             \
            TP_SET_ERR(TP_E_VALIDATION, __VA_ARGS__);                                                                 \
        }                                                                                                             \
        return -1;                                                                                                    \
    } while (0)

/* Inner-to-outer walk: for ROW (and UNKNOWN) the innermost dimension is the last one, for COLUMN the first. */
static int tensor_dim_at(const tp_tensor_desc_t *t, int step)
{
    return t->major_order == TP_MAJOR_ORDER_COLUMN ? step : t->ndims - 1 - step;
}

static int tensor_resolve(const tp_tensor_desc_t *t, int64_t strides_out[TP_MAX_DIMS], uint64_t *span_bytes,
    bool report)
{
    if (t->ndims < 1 || t->ndims > TP_MAX_DIMS)
    {
        TENSOR_FAIL(report, "ndims %u is outside 1..%d", t->ndims, TP_MAX_DIMS);
    }
    if (!tp_wire_dtype_is_valid(t->dtype))
    {
        TENSOR_FAIL(report, "dtype %d is not in the registry", (int)t->dtype);
    }
    if (!tp_wire_major_order_is_valid(t->major_order))
    {
        TENSOR_FAIL(report, "major_order %d is not in the registry", (int)t->major_order);
    }
    int64_t inner_stride = 0;
    int64_t inner_extent = 0;
    uint64_t span = 0;
    bool is_empty = false;
    for (int step = 0; step < t->ndims; step++)
    {
        int d = tensor_dim_at(t, step);
        if (t->dims[d] < 0)
        {
            TENSOR_FAIL(report, "dims[%d] = %d is negative", d, t->dims[d]);
        }
        if (t->strides[d] < 0)
        {
            TENSOR_FAIL(report, "strides[%d] = %d is negative (unsupported in v1.2)", d, t->strides[d]);
        }
        int64_t expected = step == 0 ? (int64_t)tp_dtype_size_bytes(t->dtype) : inner_stride * inner_extent;
        int64_t stride = t->strides[d] == 0 ? expected : t->strides[d];
        if (stride < expected)
        {
            TENSOR_FAIL(report,
                "strides[%d] = %lld overlaps the inner dimension (needs at least %lld for %s-major order)", d,
                (long long)stride, (long long)expected, t->major_order == TP_MAJOR_ORDER_COLUMN ? "column" : "row");
        }
        if (stride > INT32_MAX)
        {
            TENSOR_FAIL(report, "strides[%d] would be %lld, beyond int32", d, (long long)stride);
        }
        strides_out[d] = stride;
        if (t->dims[d] == 0)
        {
            is_empty = true;
        }
        else
        {
            span += (uint64_t)stride * (uint64_t)(t->dims[d] - 1);
        }
        inner_stride = stride;
        inner_extent = t->dims[d] == 0 ? 1 : t->dims[d];
    }
    for (int d = t->ndims; d < TP_MAX_DIMS; d++)
    {
        strides_out[d] = 0;
    }
    *span_bytes = is_empty ? 0 : span + tp_dtype_size_bytes(t->dtype);
    return 0;
}

int tp_tensor_resolve(const tp_tensor_desc_t *t, int64_t strides_out[TP_MAX_DIMS], uint64_t *span_bytes)
{
    return tensor_resolve(t, strides_out, span_bytes, true);
}

/* Our rule, beyond wire spec 8.2: the bytes the layout spans lie within the frame's values_len_bytes, so that no
 * view built from dims and strides (a NumPy array, a user's loop) reads past the payload. */
static int tensor_validate(const tp_tensor_desc_t *t, uint64_t length_bytes, bool report)
{
    int64_t strides[TP_MAX_DIMS];
    uint64_t span;
    if (tensor_resolve(t, strides, &span, report) < 0)
    {
        return -1;
    }
    if (span > length_bytes)
    {
        TENSOR_FAIL(report, "the tensor's dims and strides span %" PRIu64 " bytes, more than the frame's %" PRIu64,
            span, length_bytes);
    }
    if (!tp_wire_progress_unit_is_valid(t->progress_unit))
    {
        TENSOR_FAIL(report, "progress_unit %d is not in the registry", (int)t->progress_unit);
    }
    if (t->progress_unit == TP_PROGRESS_UNIT_NONE)
    {
        return 0;
    }
    /* Wire spec 8.2: progress_stride_bytes is non-zero and equals the true row (dimension 0) or column
     * (dimension 1) stride of the layout. */
    int d = t->progress_unit == TP_PROGRESS_UNIT_ROWS ? 0 : 1;
    if (d >= t->ndims)
    {
        TENSOR_FAIL(report, "progress_unit COLUMNS needs at least 2 dimensions, ndims is %u", t->ndims);
    }
    if (t->progress_stride_bytes == 0 || (int64_t)t->progress_stride_bytes != strides[d])
    {
        TENSOR_FAIL(report, "progress_stride_bytes %u does not match the %s stride %lld",
            t->progress_stride_bytes, d == 0 ? "row" : "column", (long long)strides[d]);
    }
    return 0;
}

void tp_tensor_header_encode(uint8_t *dst, const tp_tensor_desc_t *t)
{
    memset(dst, 0, TP_TENSOR_HEADER_BYTES);
    tp_sbe_put_u16(dst, TP_WIRE_TENSOR_HEADER_BLOCK_LENGTH);
    tp_sbe_put_u16(dst + 2, TP_WIRE_TENSOR_HEADER_TEMPLATE_ID);
    tp_sbe_put_u16(dst + 4, TP_WIRE_SCHEMA_ID);
    tp_sbe_put_u16(dst + 6, TP_WIRE_SCHEMA_VERSION);
    uint8_t *b = dst + TP_SBE_HEADER_LENGTH;
    tp_sbe_put_i16(b + TP_WIRE_TENSOR_HEADER_DTYPE_OFFSET, (int16_t)t->dtype);
    tp_sbe_put_i16(b + TP_WIRE_TENSOR_HEADER_MAJOR_ORDER_OFFSET, (int16_t)t->major_order);
    tp_sbe_put_u8(b + TP_WIRE_TENSOR_HEADER_NDIMS_OFFSET, t->ndims);
    tp_sbe_put_u8(b + TP_WIRE_TENSOR_HEADER_PROGRESS_UNIT_OFFSET, (uint8_t)t->progress_unit);
    tp_sbe_put_u32(b + TP_WIRE_TENSOR_HEADER_PROGRESS_STRIDE_BYTES_OFFSET, t->progress_stride_bytes);
    for (int i = 0; i < t->ndims && i < TP_MAX_DIMS; i++)
    {
        /* Dimensions past ndims stay zero (wire spec 8.2). */
        tp_sbe_put_i32(b + TP_WIRE_TENSOR_HEADER_DIMS_OFFSET + 4 * i, t->dims[i]);
        tp_sbe_put_i32(b + TP_WIRE_TENSOR_HEADER_STRIDES_OFFSET + 4 * i, t->strides[i]);
    }
}

int tp_tensor_validate(const tp_tensor_desc_t *t)
{
    return tensor_validate(t, UINT64_MAX, true);
}

int tp_tensor_validate_length(const tp_tensor_desc_t *t, uint64_t length_bytes)
{
    return tensor_validate(t, length_bytes, true);
}

static int tensor_header_decode(const uint8_t *src, uint32_t length, uint64_t values_len_bytes, tp_tensor_desc_t *out,
    bool report)
{
    if (length != TP_TENSOR_HEADER_BYTES)
    {
        TENSOR_FAIL(report, "headerBytes is %u bytes; a v1.2 TensorHeader is %d", length, TP_TENSOR_HEADER_BYTES);
    }
    uint16_t block_length = tp_sbe_get_u16(src);
    uint16_t template_id = tp_sbe_get_u16(src + 2);
    uint16_t schema_id = tp_sbe_get_u16(src + 4);
    uint16_t version = tp_sbe_get_u16(src + 6);
    if (block_length != TP_WIRE_TENSOR_HEADER_BLOCK_LENGTH || template_id != TP_WIRE_TENSOR_HEADER_TEMPLATE_ID ||
        schema_id != TP_WIRE_SCHEMA_ID || version != TP_WIRE_SCHEMA_VERSION)
    {
        TENSOR_FAIL(report,
            "embedded header is blockLength %u templateId %u schemaId %u version %u; "
            "expected TensorHeader 184/52/900/1",
            block_length, template_id, schema_id, version);
    }
    const uint8_t *b = src + TP_SBE_HEADER_LENGTH;
    memset(out, 0, sizeof(*out));
    out->dtype = (tp_dtype_t)tp_sbe_get_i16(b + TP_WIRE_TENSOR_HEADER_DTYPE_OFFSET);
    out->major_order = (tp_major_order_t)tp_sbe_get_i16(b + TP_WIRE_TENSOR_HEADER_MAJOR_ORDER_OFFSET);
    out->ndims = tp_sbe_get_u8(b + TP_WIRE_TENSOR_HEADER_NDIMS_OFFSET);
    out->progress_unit = (tp_progress_unit_t)tp_sbe_get_u8(b + TP_WIRE_TENSOR_HEADER_PROGRESS_UNIT_OFFSET);
    out->progress_stride_bytes = tp_sbe_get_u32(b + TP_WIRE_TENSOR_HEADER_PROGRESS_STRIDE_BYTES_OFFSET);
    for (int i = 0; i < out->ndims && i < TP_MAX_DIMS; i++)
    {
        out->dims[i] = tp_sbe_get_i32(b + TP_WIRE_TENSOR_HEADER_DIMS_OFFSET + 4 * i);
        out->strides[i] = tp_sbe_get_i32(b + TP_WIRE_TENSOR_HEADER_STRIDES_OFFSET + 4 * i);
    }
    return tensor_validate(out, values_len_bytes, report);
}

int tp_tensor_header_decode(const uint8_t *src, uint32_t length, tp_tensor_desc_t *out)
{
    return tensor_header_decode(src, length, UINT64_MAX, out, true);
}

int tp_tensor_header_check(const uint8_t *src, uint32_t length, uint32_t values_len_bytes, tp_tensor_desc_t *out)
{
    return tensor_header_decode(src, length, values_len_bytes, out, false);
}
