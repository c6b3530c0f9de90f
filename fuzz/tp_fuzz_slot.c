/* Fuzz: a hostile header slot (and its embedded TensorHeader) as a consumer reads it. */
#include <string.h>

#include "shm/tp_header_ring.h"
#include "tp_fuzz.h"
#include "wire/tp_tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _Alignas(64) uint8_t slot[TP_HEADER_SLOT_BYTES];
    memset(slot, 0, sizeof(slot));
    memcpy(slot, data, size < sizeof(slot) ? size : sizeof(slot));
    uint64_t seq_commit;
    memcpy(&seq_commit, slot, 8);
    tp_slot_fields_t fields;
    tp_tensor_desc_t tensor;
    uint64_t stable;
    tp_slot_snapshot(slot, seq_commit >> 1, &fields, &tensor, &stable);
    if (size >= TP_TENSOR_HEADER_BYTES)
    {
        tp_tensor_header_decode(data, TP_TENSOR_HEADER_BYTES, &tensor);
    }
    int64_t strides[TP_MAX_DIMS];
    uint64_t span;
    tp_tensor_resolve(&tensor, strides, &span);
    return 0;
}
