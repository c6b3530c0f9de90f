/* Helpers for bus tests: checksummed test messages and a private bus directory per test. */
#ifndef TP_BUS_TEST_UTIL_H
#define TP_BUS_TEST_UTIL_H

#include <stdint.h>
#include <string.h>

#include "core/tp_crc32c.h"

/* A test message: writer id, sequence, filler, CRC32C of all before it. */
typedef struct test_msg
{
    uint32_t writer;
    uint32_t length; /* whole message bytes */
    uint64_t seq;
} test_msg_t;

static inline size_t test_msg_make(uint8_t *buf, uint32_t writer, uint64_t seq, uint32_t length)
{
    test_msg_t m = { .writer = writer, .length = length, .seq = seq };
    memcpy(buf, &m, sizeof(m));
    for (uint32_t i = sizeof(m); i + 4 < length; i++)
    {
        buf[i] = (uint8_t)(seq * 7 + i * 13 + writer);
    }
    uint32_t crc = tp_crc32c(0, buf, length - 4);
    memcpy(buf + length - 4, &crc, 4);
    return length;
}

/* 1 if buf holds an intact test message of exactly length bytes; fills m. */
static inline int test_msg_check(const uint8_t *buf, size_t length, test_msg_t *m)
{
    if (length < sizeof(*m) + 4)
    {
        return 0;
    }
    memcpy(m, buf, sizeof(*m));
    uint32_t crc;
    memcpy(&crc, buf + length - 4, 4);
    return m->length == length && tp_crc32c(0, buf, length - 4) == crc;
}

#endif
