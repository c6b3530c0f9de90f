/*
 * Tensor rules (wire spec 8.2) and the embedded TensorHeader.
 */
#include <string.h>

#include "tp_sbe_wire.h"
#include "tp_test_util.h"
#include "wire/tp_tensor.h"

static tp_tensor_desc_t image(int32_t h, int32_t w, int32_t c)
{
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
        .dims = { h, w, c } };
    return t;
}

/* covers: W-8.2-16 */
static void test_inferred_and_explicit_strides(void **state)
{
    (void)state;
    tp_tensor_desc_t t = image(720, 1280, 3);
    int64_t s[TP_MAX_DIMS];
    uint64_t span;
    tp_assert_ok(tp_tensor_resolve(&t, s, &span));
    assert_int_equal(s[2], 1);
    assert_int_equal(s[1], 3);
    assert_int_equal(s[0], 3840);
    assert_int_equal(span, 720 * 1280 * 3);
    /* padded rows: explicit outer stride larger than needed is fine */
    t.strides[0] = 4096;
    tp_assert_ok(tp_tensor_resolve(&t, s, &span));
    assert_int_equal(span, 719 * 4096 + 1279 * 3 + 2 + 1);
    /* column-major: the first dimension is innermost */
    tp_tensor_desc_t c = { .dtype = TP_DTYPE_FLOAT32, .major_order = TP_MAJOR_ORDER_COLUMN, .ndims = 2,
        .dims = { 4, 5 } };
    tp_assert_ok(tp_tensor_resolve(&c, s, &span));
    assert_int_equal(s[0], 4);
    assert_int_equal(s[1], 16);
}

/* covers: W-8.2-10, W-8.2-11, W-8.2-17, W-15.8-1 */
static void test_rejections(void **state)
{
    (void)state;
    tp_tensor_desc_t t = image(2, 3, 4);
    t.ndims = 0;
    tp_assert_fails_with(tp_tensor_validate(&t), "ndims 0");
    t.ndims = 9;
    tp_assert_fails_with(tp_tensor_validate(&t), "ndims 9");
    t = image(2, 3, 4);
    t.dtype = (tp_dtype_t)12; /* a hole in the registry */
    tp_assert_fails_with(tp_tensor_validate(&t), "dtype 12");
    t = image(2, 3, 4);
    t.major_order = (tp_major_order_t)3;
    tp_assert_fails_with(tp_tensor_validate(&t), "major_order 3");
    t = image(2, 3, 4);
    t.strides[1] = -4;
    tp_assert_fails_with(tp_tensor_validate(&t), "negative");
    t = image(2, 3, 4);
    t.strides[1] = 2; /* rows of 4-byte pixels cannot be 2 bytes apart: overlap */
    tp_assert_fails_with(tp_tensor_validate(&t), "overlaps");
    t = image(2, 3, 4);
    t.major_order = TP_MAJOR_ORDER_COLUMN;
    t.strides[0] = 12;
    t.strides[2] = 1; /* row-major strides declared column-major: contradicts the order */
    tp_assert_fails_with(tp_tensor_validate(&t), "overlaps");
    t = image(2, -3, 4);
    tp_assert_fails_with(tp_tensor_validate(&t), "negative");
}

static void test_progress_stride(void **state)
{
    (void)state;
    /* covers: W-8.2-6, W-8.2-18, W-15.8-1 */
    tp_tensor_desc_t t = image(10, 20, 3);
    t.progress_unit = TP_PROGRESS_UNIT_ROWS;
    t.progress_stride_bytes = 0;
    tp_assert_fails_with(tp_tensor_validate(&t), "progress_stride_bytes 0");
    t.progress_stride_bytes = 61;
    tp_assert_fails_with(tp_tensor_validate(&t), "does not match the row stride 60");
    t.progress_stride_bytes = 60;
    tp_assert_ok(tp_tensor_validate(&t));
    t.progress_unit = TP_PROGRESS_UNIT_COLUMNS;
    t.progress_stride_bytes = 60; /* the row stride is not the column stride */
    tp_assert_fails_with(tp_tensor_validate(&t), "does not match the column stride 3");
    t.progress_stride_bytes = 0;
    tp_assert_fails_with(tp_tensor_validate(&t), "progress_stride_bytes 0");
    t.progress_stride_bytes = 3;
    tp_assert_ok(tp_tensor_validate(&t));
    tp_tensor_desc_t line = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 1, .dims = { 8 },
        .progress_unit = TP_PROGRESS_UNIT_COLUMNS, .progress_stride_bytes = 1 };
    tp_assert_fails_with(tp_tensor_validate(&line), "COLUMNS needs at least 2 dimensions");
    t.progress_unit = (tp_progress_unit_t)5;
    tp_assert_fails_with(tp_tensor_validate(&t), "progress_unit 5");
}

/* covers: W-8.2-14, W-8.2-15 */
static void test_header_round_trip_and_unused_dims(void **state)
{
    (void)state;
    tp_tensor_desc_t t = image(720, 1280, 3);
    t.dims[5] = 99; /* past ndims: must not be written */
    uint8_t raw[TP_TENSOR_HEADER_BYTES];
    tp_tensor_header_encode(raw, &t);
    tp_wire_tensor_header_t th;
    tp_assert_ok(tp_wire_tensor_header_decode(&th, raw, sizeof(raw)));
    assert_int_equal(tp_wire_tensor_header_dims(&th, 5), 0);
    assert_int_equal(tp_wire_tensor_header_ndims(&th), 3);
    tp_tensor_desc_t back;
    tp_assert_ok(tp_tensor_header_decode(raw, sizeof(raw), &back));
    assert_int_equal(back.dims[0], 720);
    assert_int_equal(back.dims[2], 3);
    /* junk past ndims on the wire is ignored: neither a drop nor visible in the view */
    tp_sbe_put_i32(raw + 8 + TP_WIRE_TENSOR_HEADER_DIMS_OFFSET + 4 * 6, -7);
    tp_sbe_put_i32(raw + 8 + TP_WIRE_TENSOR_HEADER_STRIDES_OFFSET + 4 * 7, -9);
    tp_assert_ok(tp_tensor_header_decode(raw, sizeof(raw), &back));
    assert_int_equal(back.dims[6], 0);
    assert_int_equal(back.strides[7], 0);
}

static void test_padding_is_zeroed_and_ignored(void **state)
{
    (void)state;
    /* The producer's encoder leaves nothing of its own in the padding (padAlign and the bytes after pad): no
     * pointer or address can leak there. A reader ignores whatever another writer put in it.
     * covers: W-8.2-19 */
    tp_tensor_desc_t t = image(720, 1280, 3);
    uint8_t raw[TP_TENSOR_HEADER_BYTES];
    memset(raw, 0xA5, sizeof(raw));
    tp_tensor_header_encode(raw, &t);
    const size_t body = 8;
    assert_int_equal(raw[body + TP_WIRE_TENSOR_HEADER_PAD_ALIGN_OFFSET], 0);
    for (size_t i = body + TP_WIRE_TENSOR_HEADER_PAD_OFFSET; i < body + TP_WIRE_TENSOR_HEADER_BLOCK_LENGTH; i++)
    {
        assert_int_equal(raw[i], 0);
    }
    tp_tensor_desc_t clean;
    tp_assert_ok(tp_tensor_header_decode(raw, sizeof(raw), &clean));
    raw[body + TP_WIRE_TENSOR_HEADER_PAD_ALIGN_OFFSET] = 0xFF;
    for (size_t i = body + TP_WIRE_TENSOR_HEADER_PAD_OFFSET; i < body + TP_WIRE_TENSOR_HEADER_BLOCK_LENGTH; i++)
    {
        raw[i] = (uint8_t)(i * 37 + 1);
    }
    tp_tensor_desc_t dirty;
    tp_assert_ok(tp_tensor_header_decode(raw, sizeof(raw), &dirty));
    assert_int_equal(dirty.dtype, clean.dtype);
    assert_int_equal(dirty.major_order, clean.major_order);
    assert_int_equal(dirty.ndims, clean.ndims);
    assert_int_equal(dirty.progress_unit, clean.progress_unit);
    assert_memory_equal(dirty.dims, clean.dims, sizeof(clean.dims));
    assert_memory_equal(dirty.strides, clean.strides, sizeof(clean.strides));
}

/* covers: W-8.3-8, W-8.3-9, W-8.2-5, W-15.21-3 */
static void test_embedded_header_checks(void **state)
{
    (void)state;
    tp_tensor_desc_t t = image(2, 2, 2);
    uint8_t raw[TP_TENSOR_HEADER_BYTES];
    tp_tensor_desc_t out;
    tp_tensor_header_encode(raw, &t);
    tp_assert_fails_with(tp_tensor_header_decode(raw, 191, &out), "191 bytes");
    tp_sbe_put_u16(raw + 2, 51);
    tp_assert_fails_with(tp_tensor_header_decode(raw, sizeof(raw), &out), "templateId 51");
    tp_sbe_put_u16(raw + 2, 52);
    tp_sbe_put_u16(raw + 4, 901);
    tp_assert_fails_with(tp_tensor_header_decode(raw, sizeof(raw), &out), "schemaId 901");
    tp_sbe_put_u16(raw + 4, 900);
    tp_sbe_put_u16(raw + 6, 2);
    tp_assert_fails_with(tp_tensor_header_decode(raw, sizeof(raw), &out), "version 2");
    tp_sbe_put_u16(raw + 6, 1);
    tp_sbe_put_u16(raw, 183);
    tp_assert_fails_with(tp_tensor_header_decode(raw, sizeof(raw), &out), "blockLength 183");
    tp_sbe_put_u16(raw, 184);
    raw[8 + TP_WIRE_TENSOR_HEADER_NDIMS_OFFSET] = 0;
    tp_assert_fails_with(tp_tensor_header_decode(raw, sizeof(raw), &out), "ndims 0");
    /* the per-frame check drops the same header without touching the error record (no formatting) */
    tp_err_clear();
    assert_int_equal(tp_tensor_header_check(raw, sizeof(raw), 8, &out), -1);
    assert_int_equal(tp_errcode(), 0);
}

static void test_layout_fits_the_payload(void **state)
{
    (void)state;
    /* Our rule (issue: a 64-byte frame described as 65536 x 65536): the span of dims and strides fits the payload. */
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2,
        .dims = { 65536, 65536 } };
    tp_assert_ok(tp_tensor_validate(&t));
    tp_assert_fails_with(tp_tensor_validate_length(&t, 64), "span 4294967296 bytes, more than the frame's 64");
    t = image(2, 3, 4);
    tp_assert_ok(tp_tensor_validate_length(&t, 24));
    tp_assert_fails_with(tp_tensor_validate_length(&t, 23), "span 24 bytes");
    t.strides[0] = 16; /* padded rows: the last row needs only 12 bytes */
    tp_assert_ok(tp_tensor_validate_length(&t, 28));
    tp_assert_fails_with(tp_tensor_validate_length(&t, 27), "span 28 bytes");
    t = image(0, 3, 4); /* empty: spans nothing */
    tp_assert_ok(tp_tensor_validate_length(&t, 0));
    /* The consumer's per-frame check applies the same bound to values_len_bytes, without formatting. */
    uint8_t raw[TP_TENSOR_HEADER_BYTES];
    tp_tensor_desc_t out;
    t = image(2, 3, 4);
    tp_tensor_header_encode(raw, &t);
    tp_err_clear();
    assert_int_equal(tp_tensor_header_check(raw, sizeof(raw), 24, &out), 0);
    assert_int_equal(tp_tensor_header_check(raw, sizeof(raw), 23, &out), -1);
    assert_int_equal(tp_errcode(), 0);
}

static void test_dtype_sizes(void **state)
{
    (void)state;
    assert_int_equal(tp_dtype_size_bytes(TP_DTYPE_FLOAT64), 8);
    assert_int_equal(tp_dtype_size_bytes(TP_DTYPE_INT16), 2);
    assert_int_equal(tp_dtype_size_bytes((tp_dtype_t)12), 0);
    assert_string_equal(tp_dtype_name(TP_DTYPE_BIT), "BIT");
    tp_tensor_desc_t b;
    tp_tensor_bytes(&b, 0);
    tp_assert_ok(tp_tensor_validate(&b)); /* empty payloads are valid */
    int64_t s[TP_MAX_DIMS];
    uint64_t span;
    tp_assert_ok(tp_tensor_resolve(&b, s, &span));
    assert_int_equal(span, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inferred_and_explicit_strides),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_progress_stride),
        cmocka_unit_test(test_header_round_trip_and_unused_dims),
        cmocka_unit_test(test_padding_is_zeroed_and_ignored),
        cmocka_unit_test(test_embedded_header_checks),
        cmocka_unit_test(test_layout_fits_the_payload),
        cmocka_unit_test(test_dtype_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
