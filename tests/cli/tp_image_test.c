/*
 * Tensors as images, in memory: a FLOAT32 map is scaled from the range of its finite values (NaN and infinities,
 * a depth map's "no reading", become 0 and never widen the range); layouts that are not images are refused naming
 * why; the PNG encoder's output decodes back to the same pixels.
 */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tp_image.h"
#include "tp_test_util.h"

static void test_float_map_with_holes(void **state)
{
    (void)state;
    const float values[6] = { 1.0f, NAN, 3.0f, INFINITY, 2.0f, -INFINITY };
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_FLOAT32, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2, .dims = { 2, 3 } };
    tp_image_t image;
    tp_assert_ok(tp_image_from_tensor(&image, &t, (const uint8_t *)values, sizeof(values)));
    assert_true(image.is_scaled);
    assert_true(image.min == 1.0 && image.max == 3.0);
    const uint8_t want[6] = { 0, 0, 255, 0, 128, 0 };
    assert_memory_equal(image.pixels, want, 6);
    uint8_t *png = NULL;
    size_t length = 0;
    tp_assert_ok(tp_image_encode_png(&image, &png, &length));
    assert_true(length > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    free(png);
    tp_image_free(&image);
}

static void test_not_images(void **state)
{
    (void)state;
    uint8_t bytes[256] = { 0 };
    tp_image_t image;
    tp_tensor_desc_t cube = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 4,
        .dims = { 2, 2, 2, 2 } };
    assert_int_equal(tp_image_from_tensor(&image, &cube, bytes, sizeof(bytes)), -1);
    tp_test_assert_contains(tp_errmsg(), "4 dims is not an image");
    tp_tensor_desc_t ints = { .dtype = TP_DTYPE_INT32, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2, .dims = { 4, 4 } };
    assert_int_equal(tp_image_from_tensor(&image, &ints, bytes, sizeof(bytes)), -1);
    tp_test_assert_contains(tp_errmsg(), "INT32 tensor is not an image");
    tp_tensor_desc_t rgb_float = { .dtype = TP_DTYPE_FLOAT32, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
        .dims = { 2, 2, 3 } };
    assert_int_equal(tp_image_from_tensor(&image, &rgb_float, bytes, sizeof(bytes)), -1);
    tp_test_assert_contains(tp_errmsg(), "one channel");
    tp_tensor_desc_t big = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2, .dims = { 64, 64 } };
    assert_int_equal(tp_image_from_tensor(&image, &big, bytes, sizeof(bytes)), -1); /* spans more than the payload */
    tp_test_assert_contains(tp_errmsg(), "the payload has 256");
    assert_string_equal(tp_npy_descr(TP_DTYPE_UINT16), "<u2");
    assert_null(tp_npy_descr(TP_DTYPE_BIT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_map_with_holes),
        cmocka_unit_test(test_not_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
