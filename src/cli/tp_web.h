/*
 * The `tp web` server, also run by `tp demo --web`: a read-only dashboard of a driver's bus in the browser, and a
 * JSON API under the same server (see tp web --help). Two kinds of threads: one sampler that owns the bus (the
 * monitor of tp top) and the preview consumers, and libmicrohttpd's, one per connection, that only copy what the
 * sampler published under a lock. Nothing a browser does reaches a producer: previews come from RATE_LIMITED
 * consumers (5 frames/s at most), and a slow or silent client costs one connection of a bounded number.
 */
#ifndef TP_CLI_WEB_H
#define TP_CLI_WEB_H

#include <stdint.h>

typedef struct tp_web tp_web_t;

typedef struct tp_web_options
{
    const char *listen;         /* IPv4 ADDR:PORT; NULL: 127.0.0.1:8080 */
    const char *bus_dir;        /* NULL: the default bus */
    const char *base_dirs;      /* where regions may be mapped from; NULL: the client default */
    uint32_t control_stream_id; /* 0: 1000 */
} tp_web_options_t;

/* Listen and start sampling. -1 naming why (a bad address, a port in use, no bus). */
int tp_web_start(tp_web_t **out, const tp_web_options_t *options);
/* "http://ADDR:PORT/" */
const char *tp_web_url(const tp_web_t *web);
/* Close every connection and stop. NULL is fine. */
void tp_web_stop(tp_web_t *web);

#endif
