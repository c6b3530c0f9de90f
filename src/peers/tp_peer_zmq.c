/*
 * tp-peer-zmq SIZE SECONDS: ZeroMQ's message stream between two processes, for `tp bench --peers`.
 * A PUSH socket in a child on CPU 0 sends SIZE-byte messages (zmq_send copies each) as fast as ZeroMQ takes
 * them; a PULL socket in the parent on CPU 1 receives them over ipc:// (a Unix socket, ZeroMQ's local
 * transport between processes). Counted after 0.2 s of warm-up for SECONDS. PUSH blocks at its high-water mark,
 * so nothing is lost: the rate is what the receiver took.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "tp_peer_util.h"

#define WARM_UP_NS 200000000

static char endpoint[256];

static void publisher(const tp_peer_args_t *a)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    char *message = calloc(1, a->size);
    if (push == NULL || message == NULL || zmq_connect(push, endpoint) != 0)
    {
        fprintf(stderr, "tp-peer-zmq: publisher: %s\n", zmq_strerror(zmq_errno()));
        _exit(1);
    }
    for (uint64_t i = 0;; i++)
    {
        memcpy(message, &i, a->size < sizeof(i) ? a->size : sizeof(i));
        if (zmq_send(push, message, a->size, 0) < 0 && zmq_errno() != EINTR)
        {
            _exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    tp_peer_args_t a = tp_peer_parse(argc, argv,
        "ZeroMQ PUSH (a child on CPU 0) -> PULL (CPU 1) over ipc://: messages received per second.");
    const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    snprintf(endpoint, sizeof(endpoint), "ipc://%s/tp-peer-zmq-%d.sock", tmp, (int)getpid());
    /* The child first, so it inherits no ZeroMQ state; its connect retries until the bind below. */
    pid_t child = tp_peer_fork_publisher(publisher, &a);
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    char *buffer = malloc(a.size);
    int status = 1;
    int timeout_ms = 10000;
    int linger_ms = 0;
    if (pull == NULL || zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms)) != 0 ||
        zmq_setsockopt(pull, ZMQ_LINGER, &linger_ms, sizeof(linger_ms)) != 0 ||
        zmq_bind(pull, endpoint) != 0)
    {
        fprintf(stderr, "tp-peer-zmq: binding %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    uint64_t counted = 0;
    int64_t start = 0;
    int64_t now = 0;
    int64_t end = INT64_MAX;
    for (uint64_t received = 0; buffer != NULL && now < end; received++)
    {
        if (zmq_recv(pull, buffer, a.size, 0) < 0)
        {
            fprintf(stderr, "tp-peer-zmq: receiving: %s\n", zmq_strerror(zmq_errno()));
            goto done;
        }
        if (received == 0)
        {
            start = tp_peer_now_ns() + WARM_UP_NS;
            end = start + (int64_t)(a.seconds * 1e9);
        }
        if ((received & 63) == 0 || a.size >= 4096)
        {
            now = tp_peer_now_ns();
        }
        counted += now >= start;
    }
    tp_peer_print("zeromq", a.size, counted, now - start);
    status = 0;
done:
    tp_peer_stop(child);
    free(buffer);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    unlink(endpoint + strlen("ipc://"));
    return status;
}
