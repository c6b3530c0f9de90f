/*
 * tp-peer-iceoryx SIZE SECONDS: iceoryx's zero-copy publish/subscribe between two processes, for
 * `tp bench --peers`. A publisher in a child on CPU 0 loans a SIZE-byte chunk, fills all of it from a source
 * buffer (as tp_producer_offer_frame copies a frame into its slot) and publishes it; a subscriber in the parent on
 * CPU 1 takes and releases chunks. Both use iceoryx's default policies (a full queue drops its oldest chunk), and
 * the subscriber's queue holds 16 chunks, as the frames bench's ring has 16 slots. Counted after 0.2 s of warm-up
 * for SECONDS. Needs a running RouDi (`iox-roudi`, whose memory pools must hold SIZE-byte chunks;
 * `tp bench --peers` starts one).
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"

#include "tp_peer_util.h"

#define WARM_UP_NS 200000000
#define QUEUE 16

static volatile sig_atomic_t stop_requested;

static void on_stop(int signo)
{
    (void)signo;
    stop_requested = 1;
}

static void publisher(const tp_peer_args_t *a)
{
    signal(SIGTERM, on_stop); /* first: the parent may ask it to stop at any time */
    char name[64];
    snprintf(name, sizeof(name), "tp-peer-pub-%d", (int)getpid());
    iox_runtime_init(name);
    iox_pub_options_t options;
    iox_pub_options_init(&options);
    iox_pub_storage_t storage;
    iox_pub_t pub = iox_pub_init(&storage, "tensorpool", "peer-bench", "frames", &options);
    uint8_t *source = calloc(1, a->size);
    for (uint64_t i = 0; source != NULL && !stop_requested; i++)
    {
        void *chunk = NULL;
        if (iox_pub_loan_chunk(pub, &chunk, a->size) != AllocationResult_SUCCESS)
        {
            continue; /* every chunk is in a queue or held: try again */
        }
        memcpy(source, &i, a->size < sizeof(i) ? a->size : sizeof(i));
        memcpy(chunk, source, a->size);
        iox_pub_publish_chunk(pub, chunk);
    }
    /* Deregistered by the runtime's destructor at exit, so that RouDi does not try to stop a process that is gone
     * when it stops itself (iceoryx 2.0.3's RouDi aborts then and leaves its shared memory behind). */
    iox_pub_deinit(pub);
    free(source);
    exit(0);
}

int main(int argc, char **argv)
{
    tp_peer_args_t a = tp_peer_parse(argc, argv,
        "iceoryx publisher (loan, fill, publish; a child on CPU 0) -> subscriber (take, release; CPU 1): chunks\n"
        "received per second. Needs a running iox-roudi.");
    iox_set_loglevel(Iceoryx_LogLevel_Warn);
    pid_t child = tp_peer_fork_publisher(publisher, &a);
    char name[64];
    snprintf(name, sizeof(name), "tp-peer-sub-%d", (int)getpid());
    iox_runtime_init(name);
    iox_sub_options_t options;
    iox_sub_options_init(&options);
    options.queueCapacity = QUEUE;
    iox_sub_storage_t storage;
    iox_sub_t sub = iox_sub_init(&storage, "tensorpool", "peer-bench", "frames", &options);
    int status = 1;
    uint64_t counted = 0;
    int64_t start = 0;
    int64_t now = tp_peer_now_ns();
    int64_t end = now + 10 * (int64_t)1000000000; /* the first chunk within 10 s */
    bool has_first = false;
    for (uint64_t polls = 0; now < end; polls++)
    {
        const void *chunk = NULL;
        if (iox_sub_take_chunk(sub, &chunk) == ChunkReceiveResult_SUCCESS)
        {
            iox_sub_release_chunk(sub, chunk);
            if (!has_first)
            {
                has_first = true;
                start = tp_peer_now_ns() + WARM_UP_NS;
                end = start + (int64_t)(a.seconds * 1e9);
            }
            counted += now >= start;
        }
        if ((polls & 63) == 0 || a.size >= 4096)
        {
            now = tp_peer_now_ns();
        }
    }
    if (has_first)
    {
        tp_peer_print("iceoryx", a.size, counted, now - start);
        status = 0;
    }
    else
    {
        fprintf(stderr, "tp-peer-iceoryx: no chunk from the publisher within 10 s\n");
    }
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    iox_sub_deinit(sub);
    return status; /* the runtime deregisters in its destructor (after iox_runtime_shutdown it could hang there) */
}
