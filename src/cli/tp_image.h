/*
 * Frames as files, for `tp snapshot`: a tensor seen as an image when it looks like one, written as PNG (libpng) or
 * JPEG (libjpeg); any tensor as .npy (NumPy's format: dtype, shape, C order) or as raw bytes with a JSON sidecar.
 *
 * An image is UINT8, UINT16 or FLOAT32 with 2 dims (H, W) or 3 dims with 1, 3 or 4 channels, channels last
 * (H, W, C) or first (C, H, W; taken when the last dim is not 1, 3 or 4), in either major order and with any
 * strides the tensor header gives. FLOAT32 has one channel and is scaled from its min..max to 0..255 (the range is
 * reported); UINT16 stays 16-bit in PNG and keeps its high byte in JPEG.
 */
#ifndef TP_IMAGE_H
#define TP_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensorpool/tp_tensor.h"

typedef struct tp_image
{
    uint32_t width;
    uint32_t height;
    uint32_t channels;   /* 1 gray, 3 RGB, 4 RGBA */
    uint32_t bit_depth;  /* 8 or 16 */
    uint8_t *pixels;     /* rows top to bottom, channels interleaved; 16-bit samples big-endian (PNG's order) */
    bool is_scaled;      /* FLOAT32 mapped to 0..255 from [min, max] */
    double min;
    double max;
} tp_image_t;

/* Lay out the tensor's payload as an image (allocates pixels); -1 naming why it is not one. */
int tp_image_from_tensor(tp_image_t *out, const tp_tensor_desc_t *tensor, const uint8_t *payload, size_t length);
void tp_image_free(tp_image_t *image);

int tp_image_write_png(const tp_image_t *image, const char *path);
/* The PNG in memory (*out: malloc'd, the caller frees it). */
int tp_image_encode_png(const tp_image_t *image, uint8_t **out, size_t *length);
/* quality 1..100; 16-bit images keep their high byte, RGBA drops alpha. */
int tp_image_write_jpeg(const tp_image_t *image, const char *path, int quality);

/* Shrink to at most max_width pixels wide (nearest neighbour), keeping the aspect ratio. */
int tp_image_downscale(tp_image_t *image, uint32_t max_width);

/* What a tensor that is not an image holds: min, max and mean of its finite elements and their histogram over
 * [min, max] in TP_TENSOR_STATS_BINS bins; -1 for BYTES, BIT and unknown elements. */
#define TP_TENSOR_STATS_BINS 16
typedef struct tp_tensor_stats
{
    uint64_t count;
    uint64_t non_finite;
    double min;
    double max;
    double mean;
    uint64_t histogram[TP_TENSOR_STATS_BINS];
} tp_tensor_stats_t;

int tp_tensor_stats(const tp_tensor_desc_t *tensor, const uint8_t *payload, size_t length, tp_tensor_stats_t *out);

/* The tensor as NumPy .npy (version 1.0), its elements in C order whatever its layout. */
int tp_npy_write(const char *path, const tp_tensor_desc_t *tensor, const uint8_t *payload, size_t length);
/* The NumPy dtype string ("<u2", "|u1", ...) of a dtype, NULL if NumPy has none (BIT). */
const char *tp_npy_descr(tp_dtype_t dtype);

#endif
