/* Frames as image, NumPy and raw files; see tp_image.h. */
#include "cli/tp_image.h"

#include <math.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "core/tp_err.h"

/* The image's geometry in the tensor: which dim is height, width and channel. */
typedef struct layout
{
    int h_dim;
    int w_dim;
    int c_dim; /* -1: one channel */
    uint32_t channels;
} layout_t;

static bool is_channel_count(int32_t n)
{
    return n == 1 || n == 3 || n == 4;
}

static int image_layout(const tp_tensor_desc_t *t, layout_t *l)
{
    if (t->dtype != TP_DTYPE_UINT8 && t->dtype != TP_DTYPE_UINT16 && t->dtype != TP_DTYPE_FLOAT32)
    {
        TP_SET_ERR(TP_E_INVALID, "a %s tensor is not an image (UINT8, UINT16 or FLOAT32 are); write .npy or .raw",
            tp_dtype_name(t->dtype) != NULL ? tp_dtype_name(t->dtype) : "unknown");
        return -1;
    }
    if (t->ndims == 2)
    {
        *l = (layout_t){ .h_dim = 0, .w_dim = 1, .c_dim = -1, .channels = 1 };
    }
    else if (t->ndims == 3 && is_channel_count(t->dims[2]))
    {
        *l = (layout_t){ .h_dim = 0, .w_dim = 1, .c_dim = 2, .channels = (uint32_t)t->dims[2] };
    }
    else if (t->ndims == 3 && is_channel_count(t->dims[0]))
    {
        *l = (layout_t){ .h_dim = 1, .w_dim = 2, .c_dim = 0, .channels = (uint32_t)t->dims[0] };
    }
    else
    {
        TP_SET_ERR(TP_E_INVALID,
            "a tensor of %u dims is not an image (2 dims H x W, or 3 with 1, 3 or 4 channels first or last are); "
            "write .npy or .raw",
            t->ndims);
        return -1;
    }
    if (t->dtype == TP_DTYPE_FLOAT32 && l->channels != 1)
    {
        TP_SET_ERR(TP_E_INVALID, "a FLOAT32 image has one channel (a depth or heat map), this one has %u",
            l->channels);
        return -1;
    }
    if (t->dims[l->h_dim] <= 0 || t->dims[l->w_dim] <= 0)
    {
        TP_SET_ERR(TP_E_INVALID, "an image needs a height and a width above 0");
        return -1;
    }
    return 0;
}

static double sample(const tp_tensor_desc_t *t, const uint8_t *at)
{
    switch (t->dtype)
    {
    case TP_DTYPE_UINT8:
        return *at;
    case TP_DTYPE_UINT16: {
        uint16_t v;
        memcpy(&v, at, sizeof(v));
        return v;
    }
    default: {
        float f;
        memcpy(&f, at, sizeof(f));
        return f;
    }
    }
}

int tp_image_from_tensor(tp_image_t *out, const tp_tensor_desc_t *t, const uint8_t *payload, size_t length)
{
    memset(out, 0, sizeof(*out));
    layout_t l;
    int64_t strides[TP_MAX_DIMS];
    uint64_t span = 0;
    if (image_layout(t, &l) < 0 || tp_tensor_resolve(t, strides, &span) < 0)
    {
        return -1;
    }
    if (span > length)
    {
        TP_SET_ERR(TP_E_INVALID, "the tensor spans %llu bytes, the payload has %zu", (unsigned long long)span, length);
        return -1;
    }
    out->height = (uint32_t)t->dims[l.h_dim];
    out->width = (uint32_t)t->dims[l.w_dim];
    out->channels = l.channels;
    out->bit_depth = t->dtype == TP_DTYPE_UINT16 ? 16 : 8;
    size_t bytes_per_sample = out->bit_depth / 8;
    size_t count = (size_t)out->width * out->height * out->channels;
    out->pixels = malloc(count * bytes_per_sample);
    if (out->pixels == NULL)
    {
        TP_SET_ERR(TP_E_CAPACITY, "out of memory for a %ux%u image", out->width, out->height);
        return -1;
    }
    double lo = 0;
    double hi = 0;
    bool has_range = false;
    for (int pass = t->dtype == TP_DTYPE_FLOAT32 ? 0 : 1; pass < 2; pass++)
    {
        size_t n = 0;
        for (uint32_t y = 0; y < out->height; y++)
        {
            for (uint32_t x = 0; x < out->width; x++)
            {
                for (uint32_t c = 0; c < out->channels; c++, n++)
                {
                    int64_t offset = (int64_t)y * strides[l.h_dim] + (int64_t)x * strides[l.w_dim] +
                        (l.c_dim >= 0 ? (int64_t)c * strides[l.c_dim] : 0);
                    double v = sample(t, payload + offset);
                    if (pass == 0)
                    {
                        /* NaN and infinities (a depth map's "no reading") take no part in the range */
                        if (isfinite(v))
                        {
                            lo = !has_range || v < lo ? v : lo;
                            hi = !has_range || v > hi ? v : hi;
                            has_range = true;
                        }
                    }
                    else if (t->dtype == TP_DTYPE_FLOAT32)
                    {
                        double scaled = isfinite(v) && hi > lo ? (v - lo) * 255.0 / (hi - lo) : 0.0;
                        out->pixels[n] = (uint8_t)(scaled + 0.5);
                    }
                    else if (out->bit_depth == 16)
                    {
                        uint16_t s = (uint16_t)v;
                        out->pixels[2 * n] = (uint8_t)(s >> 8);
                        out->pixels[2 * n + 1] = (uint8_t)(s & 0xFF);
                    }
                    else
                    {
                        out->pixels[n] = (uint8_t)v;
                    }
                }
            }
        }
    }
    out->is_scaled = t->dtype == TP_DTYPE_FLOAT32;
    out->min = lo;
    out->max = hi;
    return 0;
}

void tp_image_free(tp_image_t *image)
{
    free(image->pixels);
    image->pixels = NULL;
}

typedef struct png_out
{
    FILE *file;       /* a file, or */
    uint8_t *data;    /* a growing buffer */
    size_t length;
    size_t capacity;
    bool has_failed;
} png_out_t;

static void png_write_bytes(png_structp png, png_bytep bytes, png_size_t n)
{
    png_out_t *o = png_get_io_ptr(png);
    if (o->file != NULL)
    {
        o->has_failed |= fwrite(bytes, 1, n, o->file) != n;
        return;
    }
    if (o->length + n > o->capacity)
    {
        size_t capacity = (o->length + n) * 2;
        uint8_t *grown = realloc(o->data, capacity);
        if (grown == NULL)
        {
            o->has_failed = true;
            return;
        }
        o->data = grown;
        o->capacity = capacity;
    }
    memcpy(o->data + o->length, bytes, n);
    o->length += n;
}

static void png_flush_nothing(png_structp png)
{
    (void)png;
}

static int encode_png(const tp_image_t *image, png_out_t *o)
{
    static const int color_types[5] = { 0, PNG_COLOR_TYPE_GRAY, 0, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA };
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png != NULL ? png_create_info_struct(png) : NULL;
    if (info == NULL || setjmp(png_jmpbuf(png)))
    {
        png_destroy_write_struct(&png, &info);
        TP_SET_ERR(TP_E_GENERIC, "libpng failed");
        return -1;
    }
    png_set_write_fn(png, o, png_write_bytes, png_flush_nothing);
    png_set_IHDR(png, info, image->width, image->height, (int)image->bit_depth, color_types[image->channels],
        PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t row_bytes = (size_t)image->width * image->channels * (image->bit_depth / 8);
    for (uint32_t y = 0; y < image->height; y++)
    {
        png_write_row(png, image->pixels + (size_t)y * row_bytes);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (o->has_failed)
    {
        TP_SET_ERR(TP_E_GENERIC, "writing the PNG failed");
        return -1;
    }
    return 0;
}

int tp_image_write_png(const tp_image_t *image, const char *path)
{
    png_out_t o = { .file = fopen(path, "wb") };
    if (o.file == NULL)
    {
        TP_SET_ERR(TP_E_GENERIC, "cannot create '%s'", path);
        return -1;
    }
    int rc = encode_png(image, &o);
    if (fclose(o.file) != 0 || rc < 0)
    {
        TP_APPEND_ERR("'%s'", path);
        return -1;
    }
    return 0;
}

int tp_image_encode_png(const tp_image_t *image, uint8_t **out, size_t *length)
{
    png_out_t o = { 0 };
    if (encode_png(image, &o) < 0)
    {
        free(o.data);
        return -1;
    }
    *out = o.data;
    *length = o.length;
    return 0;
}

int tp_image_write_jpeg(const tp_image_t *image, const char *path, int quality)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
    {
        TP_SET_ERR(TP_E_GENERIC, "cannot create '%s'", path);
        return -1;
    }
    uint32_t out_channels = image->channels == 1 ? 1 : 3;
    uint8_t *row = malloc((size_t)image->width * out_channels);
    if (row == NULL)
    {
        fclose(f);
        TP_SET_ERR(TP_E_CAPACITY, "out of memory");
        return -1;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = image->width;
    c.image_height = image->height;
    c.input_components = (int)out_channels;
    c.in_color_space = out_channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    size_t step = image->bit_depth / 8; /* 16-bit: the high byte comes first */
    for (uint32_t y = 0; y < image->height; y++)
    {
        const uint8_t *src = image->pixels + (size_t)y * image->width * image->channels * step;
        for (uint32_t x = 0; x < image->width; x++)
        {
            for (uint32_t ch = 0; ch < out_channels; ch++)
            {
                row[(size_t)x * out_channels + ch] = src[((size_t)x * image->channels + ch) * step];
            }
        }
        JSAMPROW rows[1] = { row };
        jpeg_write_scanlines(&c, rows, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    if (fclose(f) != 0)
    {
        TP_SET_ERR(TP_E_GENERIC, "writing '%s' failed", path);
        return -1;
    }
    return 0;
}

const char *tp_npy_descr(tp_dtype_t dtype)
{
    switch (dtype)
    {
    case TP_DTYPE_UINT8:
    case TP_DTYPE_BYTES:
    case TP_DTYPE_UNKNOWN:
        return "|u1";
    case TP_DTYPE_INT8:
        return "|i1";
    case TP_DTYPE_UINT16:
        return "<u2";
    case TP_DTYPE_INT16:
        return "<i2";
    case TP_DTYPE_UINT32:
        return "<u4";
    case TP_DTYPE_INT32:
        return "<i4";
    case TP_DTYPE_UINT64:
        return "<u8";
    case TP_DTYPE_INT64:
        return "<i8";
    case TP_DTYPE_FLOAT32:
        return "<f4";
    case TP_DTYPE_FLOAT64:
        return "<f8";
    case TP_DTYPE_BOOLEAN:
        return "|b1";
    default:
        return NULL;
    }
}

/* Visit the elements in C order (the last index fastest, whatever the strides); stops when fn returns < 0. */
static int each_element(const tp_tensor_desc_t *t, const int64_t *strides, const uint8_t *payload,
    int (*fn)(void *ctx, const uint8_t *at), void *ctx)
{
    int32_t index[TP_MAX_DIMS] = { 0 };
    uint64_t count = 1;
    for (int d = 0; d < t->ndims; d++)
    {
        count *= (uint64_t)t->dims[d];
    }
    for (uint64_t n = 0; n < count; n++)
    {
        int64_t offset = 0;
        for (int d = 0; d < t->ndims; d++)
        {
            offset += (int64_t)index[d] * strides[d];
        }
        if (fn(ctx, payload + offset) < 0)
        {
            return -1;
        }
        for (int d = t->ndims - 1; d >= 0 && ++index[d] == t->dims[d]; d--)
        {
            index[d] = 0;
        }
    }
    return 0;
}

typedef struct write_ctx
{
    FILE *f;
    size_t element;
} write_ctx_t;

static int write_one(void *ctx, const uint8_t *at)
{
    write_ctx_t *w = ctx;
    return fwrite(at, w->element, 1, w->f) == 1 ? 0 : -1;
}

static int write_elements(FILE *f, const tp_tensor_desc_t *t, const int64_t *strides, const uint8_t *payload,
    size_t element)
{
    write_ctx_t w = { f, element };
    return each_element(t, strides, payload, write_one, &w);
}

/* One element as a double (NaN for BYTES, BIT and unknown dtypes). */
static double element_value(tp_dtype_t dtype, const uint8_t *at)
{
    union
    {
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
    } v;
    memcpy(&v, at, tp_dtype_size_bytes(dtype) <= sizeof(v) ? tp_dtype_size_bytes(dtype) : sizeof(v));
    switch (dtype)
    {
    case TP_DTYPE_UINT8:
    case TP_DTYPE_BOOLEAN:
        return *at;
    case TP_DTYPE_INT8:
        return v.i8;
    case TP_DTYPE_UINT16:
        return v.u16;
    case TP_DTYPE_INT16:
        return v.i16;
    case TP_DTYPE_UINT32:
        return v.u32;
    case TP_DTYPE_INT32:
        return v.i32;
    case TP_DTYPE_UINT64:
        return (double)v.u64;
    case TP_DTYPE_INT64:
        return (double)v.i64;
    case TP_DTYPE_FLOAT32:
        return v.f32;
    case TP_DTYPE_FLOAT64:
        return v.f64;
    default:
        return NAN;
    }
}

typedef struct stats_ctx
{
    tp_dtype_t dtype;
    tp_tensor_stats_t *s;
    double sum;
    int pass; /* 0: min, max, mean; 1: the histogram */
} stats_ctx_t;

static int stats_one(void *ctx, const uint8_t *at)
{
    stats_ctx_t *c = ctx;
    tp_tensor_stats_t *s = c->s;
    double v = element_value(c->dtype, at);
    if (!isfinite(v))
    {
        s->non_finite += c->pass == 0 ? 1 : 0;
        return 0;
    }
    if (c->pass == 0)
    {
        s->min = s->count == 0 || v < s->min ? v : s->min;
        s->max = s->count == 0 || v > s->max ? v : s->max;
        s->count++;
        c->sum += v;
        return 0;
    }
    double span = s->max - s->min;
    int bin = span > 0 ? (int)((v - s->min) / span * TP_TENSOR_STATS_BINS) : 0;
    s->histogram[bin >= TP_TENSOR_STATS_BINS ? TP_TENSOR_STATS_BINS - 1 : bin < 0 ? 0 : bin]++;
    return 0;
}

int tp_tensor_stats(const tp_tensor_desc_t *t, const uint8_t *payload, size_t length, tp_tensor_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    int64_t strides[TP_MAX_DIMS];
    uint64_t span = 0;
    if (tp_tensor_resolve(t, strides, &span) < 0)
    {
        return -1;
    }
    if (span > length)
    {
        TP_SET_ERR(TP_E_INVALID, "the tensor spans %llu bytes, the payload has %zu", (unsigned long long)span, length);
        return -1;
    }
    if (isnan(element_value(t->dtype, payload)) && t->dtype != TP_DTYPE_FLOAT32 && t->dtype != TP_DTYPE_FLOAT64)
    {
        TP_SET_ERR(TP_E_INVALID, "%s elements have no numeric value", tp_dtype_name(t->dtype));
        return -1;
    }
    stats_ctx_t c = { .dtype = t->dtype, .s = out };
    each_element(t, strides, payload, stats_one, &c);
    out->mean = out->count > 0 ? c.sum / (double)out->count : 0;
    c.pass = 1;
    each_element(t, strides, payload, stats_one, &c);
    return 0;
}

int tp_image_downscale(tp_image_t *image, uint32_t max_width)
{
    if (image->width <= max_width || max_width == 0)
    {
        return 0;
    }
    uint32_t width = max_width;
    uint32_t height = (uint32_t)((uint64_t)image->height * max_width / image->width);
    height = height > 0 ? height : 1;
    size_t pixel = (size_t)image->channels * (image->bit_depth / 8);
    uint8_t *pixels = malloc((size_t)width * height * pixel);
    if (pixels == NULL)
    {
        TP_SET_ERR(TP_E_GENERIC, "out of memory for a %ux%u preview", width, height);
        return -1;
    }
    for (uint32_t y = 0; y < height; y++)
    {
        uint32_t sy = (uint32_t)((uint64_t)y * image->height / height);
        for (uint32_t x = 0; x < width; x++)
        {
            uint32_t sx = (uint32_t)((uint64_t)x * image->width / width);
            memcpy(pixels + ((size_t)y * width + x) * pixel, image->pixels + ((size_t)sy * image->width + sx) * pixel,
                pixel);
        }
    }
    free(image->pixels);
    image->pixels = pixels;
    image->width = width;
    image->height = height;
    return 0;
}

int tp_npy_write(const char *path, const tp_tensor_desc_t *t, const uint8_t *payload, size_t length)
{
    const char *descr = tp_npy_descr(t->dtype);
    int64_t strides[TP_MAX_DIMS];
    uint64_t span = 0;
    if (descr == NULL)
    {
        TP_SET_ERR(TP_E_INVALID, "NumPy has no dtype for %s elements; write .raw", tp_dtype_name(t->dtype));
        return -1;
    }
    if (tp_tensor_resolve(t, strides, &span) < 0)
    {
        return -1;
    }
    if (span > length)
    {
        TP_SET_ERR(TP_E_INVALID, "the tensor spans %llu bytes, the payload has %zu", (unsigned long long)span, length);
        return -1;
    }
    char shape[256] = "";
    size_t used = 0;
    for (int d = 0; d < t->ndims; d++)
    {
        used += (size_t)snprintf(shape + used, sizeof(shape) - used, "%d,%s", t->dims[d],
            d + 1 < t->ndims ? " " : "");
    }
    if (t->ndims > 1)
    {
        shape[used - 1] = '\0'; /* (2, 3) but (2,) */
    }
    char header[512];
    int n = snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    /* magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in '\n' */
    size_t total = ((size_t)10 + (size_t)n + 1 + 63) / 64 * 64;
    size_t header_length = total - 10;
    memset(header + n, ' ', header_length - (size_t)n - 1);
    header[header_length - 1] = '\n';
    FILE *f = fopen(path, "wb");
    if (f == NULL)
    {
        TP_SET_ERR(TP_E_GENERIC, "cannot create '%s'", path);
        return -1;
    }
    uint8_t preamble[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(header_length & 0xFF),
        (uint8_t)(header_length >> 8) };
    int rc = fwrite(preamble, sizeof(preamble), 1, f) == 1 && fwrite(header, header_length, 1, f) == 1 &&
            write_elements(f, t, strides, payload, tp_dtype_size_bytes(t->dtype)) == 0
        ? 0
        : -1;
    if (fclose(f) != 0 || rc < 0)
    {
        TP_SET_ERR(TP_E_GENERIC, "writing '%s' failed", path);
        return -1;
    }
    return 0;
}
