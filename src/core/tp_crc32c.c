/* CRC32C; see tp_crc32c.h. */
#include "core/tp_crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++)
    {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
        {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
    {
        for (int t = 1; t < 8; t++)
        {
            crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xFF];
        }
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t tp_crc32c_sw(uint32_t crc, const void *data, size_t length)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (length >= 8)
    {
        uint32_t lo;
        uint32_t hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        length -= 8;
    }
    while (length-- > 0)
    {
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
    }
    return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t tp_crc32c_hw(uint32_t crc, const void *data, size_t length)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (length >= 8)
    {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length-- > 0)
    {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return ~c32;
}
#else
uint32_t tp_crc32c_hw(uint32_t crc, const void *data, size_t length)
{
    return tp_crc32c_sw(crc, data, length);
}
#endif

int tp_crc32c_has_hw(void)
{
    pthread_once(&crc_once, crc_init);
    return crc_hw;
}

uint32_t tp_crc32c(uint32_t crc, const void *data, size_t length)
{
    pthread_once(&crc_once, crc_init);
    return crc_hw ? tp_crc32c_hw(crc, data, length) : tp_crc32c_sw(crc, data, length);
}
