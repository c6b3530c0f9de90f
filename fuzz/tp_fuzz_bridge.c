/*
 * Fuzz: the bridge receiver's chunk assembly. The input is a sequence of BridgeFrameChunk messages, each preceded
 * by a 2-byte little-endian length, for a stream whose source announced epoch 7; frames that complete are checked
 * against their own header. Nothing may crash, read or write out of bounds, or deliver a frame whose payload length
 * disagrees with its slot header.
 */
#include <string.h>

#include "bridge/tp_bridge_chunk.h"
#include "shm/tp_header_ring.h"
#include "tp_fuzz.h"

static void on_frame(void *clientd, const tp_bridge_frame_t *f, const tp_tensor_desc_t *tensor)
{
    (void)clientd;
    (void)tensor;
    tp_slot_fields_t fields;
    tp_slot_read_fields(f->header, &fields);
    if (fields.values_len_bytes != f->payload_length)
    {
        __builtin_trap();
    }
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < f->payload_length; i += 256)
    {
        sink ^= f->payload[i];
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tp_bridge_assembler_t *a;
    if (a == NULL)
    {
        tp_bridge_assembler_limits_t l = { .chunk_bytes = 1280, .max_payload_bytes = 1u << 18,
            .is_integrity = false, .timeout_ns = 1000000, .in_flight = 2 };
        if (tp_bridge_assembler_init(&a, 55000, &l, on_frame, NULL) < 0)
        {
            return 0;
        }
    }
    tp_bridge_announce_t an = { .epoch = 7, .pool_count = 2 };
    an.pools[0].pool_id = 1;
    an.pools[0].stride_bytes = 1u << 12;
    an.pools[1].pool_id = 2;
    an.pools[1].stride_bytes = 1u << 18;
    tp_bridge_assembler_on_announce(a, &an);
    int64_t now = 0;
    size_t at = 0;
    while (at + 2 <= size)
    {
        size_t length = (size_t)data[at] | ((size_t)data[at + 1] << 8);
        at += 2;
        length = length > size - at ? size - at : length;
        static uint8_t message[65536];
        memcpy(message, data + at, length);
        at += length;
        now += 100000;
        tp_bridge_announce_t decoded;
        uint32_t stream_id;
        (void)tp_bridge_announce_decode(&decoded, &stream_id, message, length); /* the control channel's decoder */
        tp_bridge_assembler_on_chunk(a, message, length, now);
    }
    tp_bridge_assembler_expire(a, now + 1000000000); /* nothing carries over to the next input */
    return 0;
}
