/*
 * Fuzz harnesses: each file defines LLVMFuzzerTestOneInput for one parser of untrusted input. They build either
 * as libFuzzer targets (clang, -DTP_FUZZ=ON, `make fuzz`) or, always, linked with tp_fuzz_driver.c as a plain
 * program that replays a corpus and a fixed number of deterministic mutations (the smoke run in ctest).
 */
#ifndef TP_FUZZ_H
#define TP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
