/*
 * What the peer benchmark programs share (tp-peer-zmq, tp-peer-iceoryx): their arguments, pinning, a clock and
 * the one JSON line they print. Each is a publisher child on CPU 0 and a subscriber parent on CPU 1, as in
 * `tp bench frames` and `tp bench bus`, so `tp bench --peers` can set the figures side by side.
 */
#ifndef TP_PEER_UTIL_H
#define TP_PEER_UTIL_H

#include <stdint.h>
#include <sys/types.h>

typedef struct tp_peer_args
{
    uint32_t size;
    double seconds;
} tp_peer_args_t;

int64_t tp_peer_now_ns(void);

/* `PROGRAM SIZE SECONDS`: a message size of 1 B .. 64 MiB and a window of 0.05 .. 60 s; exits 2 otherwise. */
tp_peer_args_t tp_peer_parse(int argc, char **argv, const char *what);

/* Fork the publisher (CPU 0; killed with its parent); the parent goes on as the subscriber on CPU 1. */
pid_t tp_peer_fork_publisher(void (*publisher)(const tp_peer_args_t *), const tp_peer_args_t *a);

/* Kill and reap the publisher. */
void tp_peer_stop(pid_t pid);

/* The one JSON line: {"peer":...,"bytes":...,"msgs_per_s":...,"gib_s":...}. */
void tp_peer_print(const char *peer, uint32_t size, uint64_t messages, int64_t elapsed_ns);

#endif
