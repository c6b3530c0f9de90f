/*
 * A producer, as in the user guide's quickstart: connect to a running driver, attach to a stream, offer frames
 * (the copy path), close. Usage: producer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES]]]. The driver must serve stream
 * 10000 (tp driver CONFIG with bus_dir and base_dir as given here, or the defaults).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_dirs.h"
#include "tensorpool/tp_client.h"

#define STREAM_ID 10000

static int fail(const char *what)
{
    fprintf(stderr, "producer: %s: %s\n", what, tp_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 4)
    {
        fprintf(stderr, "usage: producer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES]]]\n");
        return 2;
    }
    int frames = argc > 3 ? atoi(argv[3]) : 100;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_producer_t *producer = NULL;
    if (tp_client_context_init(&ctx) < 0 || example_set_dirs(ctx, argc, argv, 1) < 0 || tp_client_connect(&client, ctx) < 0)
    {
        return fail("connect");
    }
    if (tp_producer_attach(&producer, client, STREAM_ID, 5000000000LL) < 0)
    {
        return fail("attach");
    }
    /* A 1-D tensor of 1024 float32 values per frame. */
    float values[1024];
    tp_tensor_desc_t tensor;
    memset(&tensor, 0, sizeof(tensor));
    tensor.dtype = TP_DTYPE_FLOAT32;
    tensor.major_order = TP_MAJOR_ORDER_ROW;
    tensor.ndims = 1;
    tensor.dims[0] = 1024;
    for (int i = 0; i < frames; i++)
    {
        for (int k = 0; k < 1024; k++)
        {
            values[k] = (float)i + (float)k / 1024.0f;
        }
        int64_t rc = tp_producer_offer_frame(producer, values, sizeof(values), &tensor, 1, 0);
        if (rc == TP_PRODUCER_NOT_ATTACHED)
        {
            i--; /* the driver restarted or revoked us: the lease comes back in tp_producer_do_work; offer again */
        }
        else if (rc < 0)
        {
            return fail("offer");
        }
        tp_producer_do_work(producer); /* keepalives */
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    printf("producer: %d frames offered on stream %d, epoch %llu\n", frames, STREAM_ID,
        (unsigned long long)tp_producer_epoch(producer));
    tp_producer_close(producer);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return 0;
}
