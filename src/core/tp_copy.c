/* Payload copies; see tp_copy.h. */
#include "core/tp_copy.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TP_COPY_HAS_AVX2_PATH 1

/* 128 bytes per step: four unaligned 32-byte loads, then four unaligned stores; the tail through memcpy. */
__attribute__((target("avx2"))) static void copy_avx2(uint8_t *dst, const uint8_t *src, size_t length)
{
    size_t i = 0;
    for (; i + 128 <= length; i += 128)
    {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 96));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), a);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), b);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 64), c);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 96), d);
    }
    memcpy(dst + i, src + i, length - i);
}
#endif

int tp_copy_is_vectorised(void)
{
#ifdef TP_COPY_HAS_AVX2_PATH
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

void tp_copy_payload(void *dst, const void *src, size_t length)
{
#ifdef TP_COPY_HAS_AVX2_PATH
    if (length >= TP_COPY_VECTOR_MIN_BYTES && __builtin_cpu_supports("avx2"))
    {
        copy_avx2(dst, src, length);
        return;
    }
#endif
    memcpy(dst, src, length);
}
