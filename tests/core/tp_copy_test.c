/* tp_copy_payload: byte-exact against a reference for every length around the vector step and threshold, at
 * every relative alignment of source and destination, never touching a byte outside the destination range. */
#include <stdlib.h>
#include <string.h>

#include "core/tp_copy.h"
#include "tp_test_util.h"

static void check(size_t length, size_t src_off, size_t dst_off)
{
    static uint8_t src[70000 + 128];
    static uint8_t dst[70000 + 256];
    for (size_t i = 0; i < sizeof(src); i++)
    {
        src[i] = (uint8_t)(i * 131 + length);
    }
    memset(dst, 0xee, sizeof(dst));
    tp_copy_payload(dst + 64 + dst_off, src + src_off, length);
    assert_memory_equal(dst + 64 + dst_off, src + src_off, length);
    for (size_t i = 0; i < 64 + dst_off; i++)
    {
        assert_int_equal(dst[i], 0xee);
    }
    for (size_t i = 64 + dst_off + length; i < sizeof(dst); i++)
    {
        assert_int_equal(dst[i], 0xee);
    }
}

static void test_lengths_and_alignments(void **state)
{
    (void)state;
    const size_t lengths[] = { 0, 1, 63, 127, 128, 129, 4095, 4096, 4097, 4096 + 127, 4096 + 128, 65536, 65536 + 77,
        70000 };
    for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++)
    {
        for (size_t s = 0; s < 64; s += 7)
        {
            for (size_t d = 0; d < 64; d += 9)
            {
                check(lengths[l], s, d);
            }
        }
    }
    print_message("vector path on this CPU: %s\n", tp_copy_is_vectorised() ? "yes" : "no");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths_and_alignments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
