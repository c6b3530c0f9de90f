/*
 * Example: describe a camera frame for tensorpool and check it the way a consumer will.
 * Uses only the public API (links libtensorpool.so).
 */
#include <inttypes.h>
#include <stdio.h>

#include <tensorpool/tp.h>

int main(void)
{
    /* 720 rows of 1280 RGB pixels, rows padded to 4096 bytes (a typical DMA alignment). */
    tp_tensor_desc_t frame = {
        .dtype = TP_DTYPE_UINT8,
        .major_order = TP_MAJOR_ORDER_ROW,
        .ndims = 3,
        .dims = { 720, 1280, 3 },
        .strides = { 4096, 0, 0 }, /* 0 = contiguous, inferred */
        .progress_unit = TP_PROGRESS_UNIT_ROWS,
        .progress_stride_bytes = 4096, /* consumers may read whole rows as they arrive */
    };
    int64_t strides[TP_MAX_DIMS];
    uint64_t span = 0;
    if (tp_tensor_validate(&frame) < 0 || tp_tensor_resolve(&frame, strides, &span) < 0)
    {
        fprintf(stderr, "invalid frame: %s\n", tp_errmsg());
        return 1;
    }
    printf("tensorpool %s: %s frame, strides %" PRId64 "/%" PRId64 "/%" PRId64 " bytes, spans %" PRIu64 " bytes\n",
        tp_version(), tp_dtype_name(frame.dtype), strides[0], strides[1], strides[2], span);

    /* Rows closer together than a row of pixels would overlap: refused, with the reason. */
    frame.strides[0] = 1024;
    if (tp_tensor_validate(&frame) == 0)
    {
        fprintf(stderr, "an overlapping layout was accepted\n");
        return 1;
    }
    printf("refused as expected: %s\n", tp_errmsg());
    return 0;
}
