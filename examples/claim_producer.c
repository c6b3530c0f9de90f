/*
 * The zero-copy path, as a camera or DMA engine would use it: claim the next slot of the pool that fits, let
 * the "device" write the frame straight into shared memory, commit (or abort if the capture failed).
 * Usage: claim_producer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES]]]. The driver must serve stream 10000.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_dirs.h"
#include "tensorpool/tp_client.h"

#define STREAM_ID 10000
#define WIDTH 64
#define HEIGHT 48

/* Stand-in for a device writing a WIDTH x HEIGHT grey image into the buffer it was given. */
static int device_capture(uint8_t *buffer, uint32_t capacity, uint64_t frame)
{
    if (capacity < WIDTH * HEIGHT)
    {
        return -1;
    }
    for (uint32_t i = 0; i < WIDTH * HEIGHT; i++)
    {
        buffer[i] = (uint8_t)(frame + i);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 4)
    {
        fprintf(stderr, "usage: claim_producer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES]]]\n");
        return 2;
    }
    int frames = argc > 3 ? atoi(argv[3]) : 100;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_producer_t *producer = NULL;
    if (tp_client_context_init(&ctx) < 0 || example_set_dirs(ctx, argc, argv, 1) < 0 || tp_client_connect(&client, ctx) < 0 ||
        tp_producer_attach(&producer, client, STREAM_ID, 5000000000LL) < 0)
    {
        fprintf(stderr, "claim_producer: %s\n", tp_errmsg());
        return 1;
    }
    tp_tensor_desc_t tensor;
    memset(&tensor, 0, sizeof(tensor));
    tensor.dtype = TP_DTYPE_UINT8;
    tensor.major_order = TP_MAJOR_ORDER_ROW;
    tensor.ndims = 2;
    tensor.dims[0] = HEIGHT;
    tensor.dims[1] = WIDTH;
    int published = 0;
    for (int i = 0; i < frames; i++)
    {
        tp_claim_t claim;
        int claimed = tp_producer_try_claim_by_size(producer, WIDTH * HEIGHT, &claim);
        if (claimed == TP_PRODUCER_NOT_ATTACHED)
        {
            i--; /* attaching again (a driver restart, a revocation): tp_producer_do_work below brings it back */
            tp_producer_do_work(producer);
            continue;
        }
        if (claimed < 0)
        {
            fprintf(stderr, "claim_producer: %s\n", tp_errmsg());
            return 1;
        }
        if (device_capture(claim.buffer, claim.capacity, claim.seq) < 0)
        {
            tp_producer_abort(producer, &claim); /* nothing is published; the slot is claimed again next time */
            continue;
        }
        if (tp_producer_commit(producer, &claim, WIDTH * HEIGHT, &tensor, 0, 0) >= 0)
        {
            published++;
        }
        tp_producer_do_work(producer);
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    printf("claim_producer: %d frames written in place into pool slots and published\n", published);
    tp_producer_close(producer);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return published == frames ? 0 : 1;
}
