/* CRC32C: the standard check value, and the hardware and table paths agree. */
#include <stdlib.h>
#include <string.h>

#include "core/tp_crc32c.h"
#include "tp_test_util.h"

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(tp_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tp_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(tp_crc32c(0, "", 0), 0);
    /* 32 zero bytes: RFC 3720 B.4 */
    uint8_t zeros[32] = { 0 };
    assert_int_equal(tp_crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);
}

static void test_incremental_equals_whole(void **state)
{
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t whole = tp_crc32c(0, s, strlen(s));
    uint32_t part = tp_crc32c(0, s, 10);
    part = tp_crc32c(part, s + 10, strlen(s) - 10);
    assert_int_equal(whole, part);
}

static void test_hw_and_sw_agree_on_random_buffers(void **state)
{
    (void)state;
    if (!tp_crc32c_has_hw())
    {
        skip();
    }
    srand(1234);
    uint8_t buf[4099];
    for (int round = 0; round < 500; round++)
    {
        size_t n = (size_t)rand() % sizeof(buf);
        size_t off = (size_t)rand() % 8;
        if (off + n > sizeof(buf))
        {
            n = sizeof(buf) - off;
        }
        for (size_t i = 0; i < sizeof(buf); i++)
        {
            buf[i] = (uint8_t)rand();
        }
        uint32_t seed = (uint32_t)rand();
        assert_int_equal(tp_crc32c_hw(seed, buf + off, n), tp_crc32c_sw(seed, buf + off, n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_incremental_equals_whole),
        cmocka_unit_test(test_hw_and_sw_agree_on_random_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
