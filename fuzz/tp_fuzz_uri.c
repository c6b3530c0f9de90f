/* Fuzz: region URI parsing. */
#include "shm/tp_region_uri.h"
#include "tp_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_region_uri_t uri;
    tp_region_uri_parse(&uri, (const char *)data, size);
    return 0;
}
