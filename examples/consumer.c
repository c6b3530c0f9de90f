/*
 * A consumer: connect to a running driver, attach to a stream, and receive frames through a callback until
 * FRAMES of them arrived or TIMEOUT seconds passed. Each frame is copied out (validated) before it is used.
 * Usage: consumer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES [TIMEOUT]]]]. Exit status 0 when FRAMES frames arrived
 * intact. Frames the producer wrote faster than this consumer read them are lost once the ring is lapped: the
 * counters at the end say how many (gaps).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_dirs.h"
#include "tensorpool/tp_client.h"

#define STREAM_ID 10000

typedef struct received
{
    int frames;
    int bad;
    float copy[1024];
} received_t;

static void on_frame(void *clientd, const tp_frame_t *frame)
{
    received_t *r = clientd;
    /* The safe path: copy the payload out; only a copy the library validated is used. */
    if (tp_frame_copy_out(frame, r->copy, sizeof(r->copy)) < 0)
    {
        return; /* overwritten while copying: counted as a late drop */
    }
    float expected = (float)frame->seq; /* the example producer writes seq + k/1024 into value k */
    if (frame->tensor.dtype != TP_DTYPE_FLOAT32 || frame->tensor.dims[0] != 1024 || r->copy[0] != expected)
    {
        r->bad++;
    }
    r->frames++;
}

int main(int argc, char **argv)
{
    if (argc > 5)
    {
        fprintf(stderr, "usage: consumer [BUS_DIR|- [SHM_BASE_DIR|- [FRAMES [TIMEOUT]]]]\n");
        return 2;
    }
    int frames = argc > 3 ? atoi(argv[3]) : 100;
    double timeout = argc > 4 ? atof(argv[4]) : 10;
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_consumer_t *consumer = NULL;
    if (tp_client_context_init(&ctx) < 0 || example_set_dirs(ctx, argc, argv, 1) < 0 || tp_client_connect(&client, ctx) < 0 ||
        tp_consumer_attach(&consumer, client, STREAM_ID, 5000000000LL) < 0)
    {
        fprintf(stderr, "consumer: %s\n", tp_errmsg());
        return 1;
    }
    printf("consumer: attached to stream %d\n", STREAM_ID);
    fflush(stdout);
    received_t r;
    memset(&r, 0, sizeof(r));
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do
    {
        int want = frames - r.frames < 16 ? frames - r.frames : 16; /* stop at exactly `frames` */
        if (tp_consumer_poll(consumer, on_frame, &r, want) == 0)
        {
            struct timespec us = { 0, 100000 };
            nanosleep(&us, NULL);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (r.frames < frames && (double)(now.tv_sec - start.tv_sec) < timeout);
    tp_consumer_counters_t k;
    tp_consumer_counters(consumer, &k);
    printf("consumer: %d frames (%d bad), gaps %llu, late %llu, remaps %llu\n", r.frames, r.bad,
        (unsigned long long)k.drops_gap, (unsigned long long)k.drops_late, (unsigned long long)k.remaps);
    if (k.drops_gap > 0)
    {
        /* by design, never silently: the ring keeps the stream's last header_nslots frames */
        printf("consumer: %llu frames were overwritten before this consumer read them: poll more often, or give "
               "the stream's profile more header_nslots\n",
            (unsigned long long)k.drops_gap);
    }
    tp_consumer_close(consumer);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return r.frames >= frames && r.bad == 0 ? 0 : 1;
}
