/*
 * Fuzz: the UDP transport's receive path. The input is a sequence of datagrams, each preceded by a 2-byte
 * little-endian length: every one is classified, a SETUP opens the image (terms up to 1 MiB here, to keep runs
 * quick), DATA goes into it, and after each datagram the image rebuilds, delivers and runs its loss detection.
 * Nothing may crash, read out of bounds or deliver more than was inserted.
 */
#include <string.h>

#include "bus/tp_bus_udp_image.h"
#include "tp_fuzz.h"

static uint64_t delivered_bytes;

static void on_message(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)clientd;
    (void)header;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < length; i += 512)
    {
        sink ^= buffer[i]; /* touch the message: ASan checks it lies in mapped memory */
    }
    (void)sink;
    delivered_bytes += length;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_udp_sub_counters_t counters;
    tp_bus_counters_t bus_counters;
    memset(&counters, 0, sizeof(counters));
    memset(&bus_counters, 0, sizeof(bus_counters));
    tp_udp_image_context_t ctx = { .fd = -1, .receiver_id = 1, .is_reliable = size % 2 == 0,
        .counters = &counters, .bus_counters = &bus_counters };
    tp_udp_address_t nowhere;
    memset(&nowhere, 0, sizeof(nowhere));
    tp_udp_image_t image;
    memset(&image, 0, sizeof(image));
    uint64_t inserted = 0;
    int64_t now_ns = 1000000000;
    delivered_bytes = 0;
    size_t at = 0;
    while (at + 2 <= size)
    {
        size_t length = (size_t)data[at] | ((size_t)data[at + 1] << 8);
        at += 2;
        if (length > size - at)
        {
            length = size - at;
        }
        static uint8_t datagram[65536];
        memcpy(datagram, data + at, length); /* a datagram arrives in its own buffer */
        at += length;
        now_ns += 50000;
        int type = tp_udp_frame_classify(datagram, length);
        if (type == TP_UDP_TYPE_SETUP && !image.is_active)
        {
            tp_udp_setup_t s;
            tp_udp_setup_get(&s, datagram);
            if (s.term_length > 0 && s.term_length <= (1 << 20))
            {
                tp_udp_image_open(&image, &s, &nowhere, &ctx, now_ns);
            }
        }
        else if (type == TP_UDP_TYPE_DATA && image.is_active &&
                 tp_udp_image_insert(&image, &ctx, datagram, length, now_ns))
        {
            inserted += length;
        }
        if (image.is_active)
        {
            tp_udp_image_deliver(&image, &ctx, on_message, NULL, 64);
            tp_udp_image_do_work(&image, &ctx, now_ns);
        }
    }
    /* Payload delivered never exceeds what arrived, except where reliable=false padded a gap. */
    if (ctx.is_reliable && delivered_bytes > inserted)
    {
        __builtin_trap();
    }
    tp_udp_image_close(&image);
    return 0;
}
