/* The `tp web` server: see tp_web.h. */
#include "cli/tp_web.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/tp_cli_monitor.h"
#include "cli/tp_image.h"
#include "cli/tp_web_page.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_strbuf.h"
#include "driver/tp_driver_internal.h"
#include "driver/tp_driver_status.h"
#include "tensorpool/tp_client.h"

#define MAX_PREVIEWS 32
#define PREVIEW_RATE_HZ 5
#define PREVIEW_WIDTH 320
#define SAMPLE_PERIOD_NS TP_NS_PER_S
#define MAX_STATUS_BYTES (4u << 20)
#define MAX_URL_BYTES 256
#define MAX_EVENT_CLIENTS 8
#define KEEPALIVE_NS (5 * TP_NS_PER_S)

enum
{
    PREVIEW_WAITING = 0, /* no frame yet */
    PREVIEW_IMAGE = 1,
    PREVIEW_STATS = 2,
    PREVIEW_NONE = 3, /* neither an image nor numbers (BYTES) */
};

typedef struct preview
{
    tp_web_t *web;
    uint32_t stream_id;
    tp_consumer_t *consumer; /* the sampler's */
    /* under web->lock */
    int kind;
    uint64_t seq;
    uint8_t *png;
    size_t png_length;
    uint32_t width;
    uint32_t height;
    tp_tensor_stats_t stats;
    char why[160];
} preview_t;

struct tp_web
{
    char listen[64];
    char url[80];
    char status_path[4096];
    struct MHD_Daemon *daemon;
    pthread_t sampler;
    bool has_sampler;
    atomic_int stop;
    /* the sampler's */
    tp_monitor_t *monitor;
    tp_client_context_t *ctx;
    tp_client_t *client;
    uint8_t *scratch;
    size_t scratch_capacity;
    tp_strbuf_t json;
    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *snapshot; /* /api/streams and the events */
    size_t snapshot_length;
    uint64_t version;
    char *status; /* the driver's status file, as it was at the last sample */
    size_t status_length;
    int event_clients;
    uint32_t known[TP_MONITOR_MAX_STREAMS]; /* the driver's streams at the last sample */
    size_t known_count;
    preview_t previews[MAX_PREVIEWS];
};

/* ---- the sampler ---- */

static void on_preview_frame(void *clientd, const tp_frame_t *f)
{
    preview_t *p = clientd;
    tp_web_t *w = p->web;
    size_t need = f->payload_length > 0 ? f->payload_length : 1;
    if (need > w->scratch_capacity)
    {
        uint8_t *grown = realloc(w->scratch, need);
        if (grown == NULL)
        {
            return;
        }
        w->scratch = grown;
        w->scratch_capacity = need;
    }
    if (tp_frame_copy_out(f, w->scratch, w->scratch_capacity) < 0)
    {
        return; /* overwritten while copied: the next one */
    }
    tp_image_t image;
    uint8_t *png = NULL;
    size_t png_length = 0;
    tp_tensor_stats_t stats;
    int kind = PREVIEW_NONE;
    char why[160] = "";
    if (tp_image_from_tensor(&image, &f->tensor, w->scratch, f->payload_length) == 0)
    {
        if (tp_image_downscale(&image, PREVIEW_WIDTH) == 0 && tp_image_encode_png(&image, &png, &png_length) == 0)
        {
            kind = PREVIEW_IMAGE;
        }
        tp_image_free(&image);
    }
    else if (tp_tensor_stats(&f->tensor, w->scratch, f->payload_length, &stats) == 0)
    {
        kind = PREVIEW_STATS;
    }
    else
    {
        snprintf(why, sizeof(why), "%s", tp_errmsg());
    }
    pthread_mutex_lock(&w->lock);
    free(p->png);
    p->png = png;
    p->png_length = png_length;
    p->kind = kind;
    p->seq = f->seq;
    if (kind == PREVIEW_IMAGE)
    {
        p->width = image.width;
        p->height = image.height;
    }
    if (kind == PREVIEW_STATS)
    {
        p->stats = stats;
    }
    snprintf(p->why, sizeof(p->why), "%s", why);
    pthread_mutex_unlock(&w->lock);
}

static preview_t *find_preview(tp_web_t *w, uint32_t stream_id)
{
    for (int i = 0; i < MAX_PREVIEWS; i++)
    {
        if (w->previews[i].stream_id == stream_id)
        {
            return &w->previews[i];
        }
    }
    return NULL;
}

static void preview_close(tp_web_t *w, preview_t *p)
{
    tp_consumer_close(p->consumer);
    pthread_mutex_lock(&w->lock);
    free(p->png);
    memset(p, 0, sizeof(*p));
    pthread_mutex_unlock(&w->lock);
}

/* One RATE_LIMITED consumer per stream with a producer; streams that are gone give theirs back. */
static void sync_previews(tp_web_t *w)
{
    const tp_monitor_t *m = w->monitor;
    for (int i = 0; i < MAX_PREVIEWS; i++)
    {
        preview_t *p = &w->previews[i];
        bool is_wanted = false;
        for (size_t k = 0; p->stream_id != 0 && k < m->count; k++)
        {
            is_wanted = is_wanted || (m->streams[k].stream_id == p->stream_id && m->streams[k].in_status);
        }
        if (p->stream_id != 0 && !is_wanted)
        {
            preview_close(w, p);
        }
    }
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    o.mode = TP_CONSUMER_RATE_LIMITED;
    o.max_rate_hz = PREVIEW_RATE_HZ;
    for (size_t k = 0; w->client != NULL && k < m->count; k++)
    {
        const tp_monitor_stream_t *s = &m->streams[k];
        preview_t *free_slot = find_preview(w, 0);
        if (!s->in_status || s->producer_client_id == 0 || find_preview(w, s->stream_id) != NULL || free_slot == NULL)
        {
            continue;
        }
        tp_consumer_t *c = NULL;
        if (tp_consumer_open(&c, w->client, s->stream_id, &o, -1) == 0) /* attaches in its polls */
        {
            pthread_mutex_lock(&w->lock);
            *free_slot = (preview_t){ .web = w, .stream_id = s->stream_id, .consumer = c };
            pthread_mutex_unlock(&w->lock);
        }
    }
}

static const char *kind_name(int kind)
{
    return kind == PREVIEW_IMAGE ? "image" : kind == PREVIEW_STATS ? "stats" : kind == PREVIEW_NONE ? "none" : "waiting";
}

/* The snapshot every client gets: the driver, the streams (rates, drops, history, consumers), the previews, the
 * status file. */
static void publish_snapshot(tp_web_t *w, int64_t now_ns)
{
    const tp_monitor_t *m = w->monitor;
    size_t status_length = 0;
    uint8_t *status = NULL;
    if (tp_fs_read_file(w->status_path, MAX_STATUS_BYTES, &status, &status_length) < 0)
    {
        status = NULL;
        status_length = 0;
    }
    tp_strbuf_t *b = &w->json;
    tp_strbuf_reset(b);
    tp_strbuf_printf(b, "{\"version\":%" PRIu64 ",\"updated_unix_ms\":%" PRId64
        ",\"driver\":{\"running\":%s,\"pid\":%" PRIu64 ",\"line\":",
        w->version + 1, (int64_t)(tp_clock_realtime_ns() / TP_NS_PER_MS), m->driver_running ? "true" : "false",
        m->driver_pid);
    tp_strbuf_json_string(b, m->driver_line, strlen(m->driver_line));
    tp_strbuf_puts(b, ",\"instance_id\":");
    tp_strbuf_json_string(b, m->instance_id, strlen(m->instance_id));
    tp_strbuf_puts(b, "},\"streams\":");
    tp_monitor_streams_json(m, b, now_ns);
    tp_strbuf_puts(b, ",\"previews\":[");
    pthread_mutex_lock(&w->lock);
    w->known_count = 0;
    for (size_t k = 0; k < m->count; k++)
    {
        if (m->streams[k].in_status)
        {
            w->known[w->known_count++] = m->streams[k].stream_id;
        }
    }
    int n = 0;
    for (int i = 0; i < MAX_PREVIEWS; i++)
    {
        const preview_t *p = &w->previews[i];
        if (p->stream_id == 0)
        {
            continue;
        }
        tp_strbuf_printf(b, "%s{\"stream_id\":%" PRIu32 ",\"kind\":\"%s\",\"seq\":%" PRIu64, n++ > 0 ? "," : "",
            p->stream_id, kind_name(p->kind), p->seq);
        if (p->kind == PREVIEW_IMAGE)
        {
            tp_strbuf_printf(b, ",\"width\":%" PRIu32 ",\"height\":%" PRIu32, p->width, p->height);
        }
        if (p->kind == PREVIEW_STATS)
        {
            const tp_tensor_stats_t *s = &p->stats;
            tp_strbuf_printf(b, ",\"stats\":{\"count\":%" PRIu64 ",\"non_finite\":%" PRIu64
                ",\"min\":%.6g,\"max\":%.6g,\"mean\":%.6g,\"histogram\":[",
                s->count, s->non_finite, s->min, s->max, s->mean);
            for (int k = 0; k < TP_TENSOR_STATS_BINS; k++)
            {
                tp_strbuf_printf(b, "%s%" PRIu64, k > 0 ? "," : "", s->histogram[k]);
            }
            tp_strbuf_puts(b, "]}");
        }
        if (p->why[0] != '\0')
        {
            tp_strbuf_puts(b, ",\"why\":");
            tp_strbuf_json_string(b, p->why, strlen(p->why));
        }
        tp_strbuf_putc(b, '}');
    }
    tp_strbuf_puts(b, "],\"status\":");
    if (status != NULL && status_length > 0)
    {
        tp_strbuf_append(b, (const char *)status, status_length);
    }
    else
    {
        tp_strbuf_puts(b, "null");
    }
    tp_strbuf_putc(b, '}');
    char *snapshot = malloc(b->length + 1);
    if (snapshot != NULL)
    {
        memcpy(snapshot, tp_strbuf_cstr(b), b->length + 1);
        free(w->snapshot);
        w->snapshot = snapshot;
        w->snapshot_length = b->length;
        free(w->status);
        w->status = (char *)status;
        w->status_length = status_length;
        status = NULL;
        w->version++;
        pthread_cond_broadcast(&w->changed);
    }
    pthread_mutex_unlock(&w->lock);
    free(status);
}

static void *sampler_main(void *arg)
{
    tp_web_t *w = arg;
    int64_t window_start = tp_clock_monotonic_ns();
    int64_t next_sample = window_start; /* a first snapshot at once */
    while (!atomic_load(&w->stop))
    {
        int work = tp_monitor_poll(w->monitor);
        for (int i = 0; i < MAX_PREVIEWS; i++)
        {
            preview_t *p = &w->previews[i];
            if (p->consumer != NULL)
            {
                work += tp_consumer_poll(p->consumer, on_preview_frame, p, 4) > 0 ? 1 : 0;
            }
        }
        int64_t now = tp_clock_monotonic_ns();
        if (now >= next_sample)
        {
            tp_monitor_read_status(w->monitor);
            tp_monitor_sample(w->monitor, (double)(now - window_start) / 1e9, now);
            sync_previews(w);
            publish_snapshot(w, now);
            window_start = now;
            next_sample = now + SAMPLE_PERIOD_NS;
        }
        if (work == 0)
        {
            usleep(2000);
        }
    }
    return NULL;
}

/* ---- HTTP ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned int code, const char *type, void *data,
    size_t length, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(length, data, mode);
    if (r == NULL)
    {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned int code, const char *text)
{
    return respond(c, code, "text/plain; charset=utf-8", (void *)text, strlen(text), MHD_RESPMEM_MUST_COPY);
}

/* A copy of a shared buffer, for a response (the lock is not held while the client reads). */
static enum MHD_Result respond_copy(tp_web_t *w, struct MHD_Connection *c, const char *type, char *const *data,
    const size_t *length, const char *missing)
{
    pthread_mutex_lock(&w->lock);
    char *copy = *data != NULL ? malloc(*length + 1) : NULL;
    size_t n = *length;
    if (copy != NULL)
    {
        memcpy(copy, *data, n);
    }
    pthread_mutex_unlock(&w->lock);
    if (copy == NULL)
    {
        return respond_text(c, 503, missing);
    }
    return respond(c, 200, type, copy, n, MHD_RESPMEM_MUST_FREE);
}

/* /api/streams is the snapshot without the status file's copy. With ?after=V it is a long poll: the answer waits
 * (10 s at most, on this connection's own thread) for a snapshot newer than version V. */
static enum MHD_Result serve_streams_only(tp_web_t *w, struct MHD_Connection *c)
{
    const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    uint64_t wanted = after != NULL ? strtoull(after, NULL, 10) : 0;
    pthread_mutex_lock(&w->lock);
    if (after != NULL)
    {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (!atomic_load(&w->stop) && w->version <= wanted &&
            pthread_cond_timedwait(&w->changed, &w->lock, &until) == 0)
        {
        }
    }
    char *copy = NULL;
    size_t n = 0;
    if (w->snapshot != NULL)
    {
        const char *cut = strstr(w->snapshot, ",\"status\":");
        n = cut != NULL ? (size_t)(cut - w->snapshot) : w->snapshot_length;
        copy = malloc(n + 2);
        if (copy != NULL)
        {
            memcpy(copy, w->snapshot, n);
            copy[n++] = '}';
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (copy == NULL)
    {
        return respond_text(c, 503, "starting: no sample yet\n");
    }
    return respond(c, 200, "application/json", copy, n, MHD_RESPMEM_MUST_FREE);
}

/* The latest preview of a stream: its PNG, or its numbers. */
static enum MHD_Result serve_preview(tp_web_t *w, struct MHD_Connection *c, uint32_t stream_id, bool wants_png)
{
    pthread_mutex_lock(&w->lock);
    preview_t *p = find_preview(w, stream_id);
    bool is_known = false;
    for (size_t k = 0; k < w->known_count; k++)
    {
        is_known = is_known || w->known[k] == stream_id;
    }
    unsigned int code = 200;
    const char *text = NULL;
    char *body = NULL;
    size_t length = 0;
    if (w->version == 0)
    {
        code = 503;
        text = "starting: no sample yet\n";
    }
    else if (p == NULL && !is_known)
    {
        code = 404;
        text = "no such stream on this driver\n";
    }
    else if (p == NULL || p->kind == PREVIEW_WAITING)
    {
        code = 503;
        text = "no frame yet (a stream without a producer, or one that has not published since we looked)\n";
    }
    else if (wants_png && p->kind != PREVIEW_IMAGE)
    {
        code = 415;
        text = "the stream's frames are not images: see /api/streams/ID/stats (tp snapshot writes them as .npy)\n";
    }
    else if (!wants_png && p->kind != PREVIEW_STATS)
    {
        code = p->kind == PREVIEW_IMAGE ? 415 : 422;
        text = p->kind == PREVIEW_IMAGE ? "the stream's frames are images: see /api/streams/ID/latest.png\n"
                                        : "the stream's elements have no numeric value\n";
    }
    else if (wants_png)
    {
        body = malloc(p->png_length);
        length = p->png_length;
        if (body != NULL)
        {
            memcpy(body, p->png, length);
        }
    }
    else
    {
        tp_strbuf_t b;
        tp_strbuf_init(&b);
        const tp_tensor_stats_t *s = &p->stats;
        tp_strbuf_printf(&b, "{\"stream_id\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"count\":%" PRIu64
            ",\"non_finite\":%" PRIu64 ",\"min\":%.6g,\"max\":%.6g,\"mean\":%.6g,\"histogram\":[",
            stream_id, p->seq, s->count, s->non_finite, s->min, s->max, s->mean);
        for (int k = 0; k < TP_TENSOR_STATS_BINS; k++)
        {
            tp_strbuf_printf(&b, "%s%" PRIu64, k > 0 ? "," : "", s->histogram[k]);
        }
        tp_strbuf_puts(&b, "]}");
        length = b.length;
        body = malloc(length);
        if (body != NULL)
        {
            memcpy(body, tp_strbuf_cstr(&b), length);
        }
        tp_strbuf_fini(&b);
    }
    pthread_mutex_unlock(&w->lock);
    if (text != NULL)
    {
        return respond_text(c, code, text);
    }
    if (body == NULL)
    {
        return respond_text(c, 500, "out of memory\n");
    }
    return respond(c, 200, wants_png ? "image/png" : "application/json", body, length, MHD_RESPMEM_MUST_FREE);
}

/* ---- server-sent events: each new snapshot as an event "streams" ---- */

typedef struct event_reader
{
    tp_web_t *w;
    uint64_t version; /* of the last snapshot sent */
    char *pending;
    size_t pending_length;
    size_t sent;
} event_reader_t;

static ssize_t read_events(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    event_reader_t *r = cls;
    tp_web_t *w = r->w;
    if (r->sent == r->pending_length)
    {
        free(r->pending);
        r->pending = NULL;
        r->sent = 0;
        r->pending_length = 0;
        /* Thread per connection: this thread may wait for the next snapshot (or send a keep-alive comment). */
        pthread_mutex_lock(&w->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += KEEPALIVE_NS / TP_NS_PER_S;
        while (!atomic_load(&w->stop) && w->version == r->version &&
            pthread_cond_timedwait(&w->changed, &w->lock, &until) == 0)
        {
        }
        if (atomic_load(&w->stop))
        {
            pthread_mutex_unlock(&w->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (w->version != r->version && w->snapshot != NULL)
        {
            r->version = w->version;
            r->pending_length = w->snapshot_length + 32;
            r->pending = malloc(r->pending_length);
            if (r->pending != NULL)
            {
                r->pending_length = (size_t)snprintf(r->pending, r->pending_length, "event: streams\ndata: %s\n\n",
                    w->snapshot);
                /* One data line: the status file's line breaks become spaces (JSON strings hold none raw). */
                for (size_t i = 21; i + 2 < r->pending_length; i++)
                {
                    r->pending[i] = r->pending[i] == '\n' || r->pending[i] == '\r' ? ' ' : r->pending[i];
                }
            }
        }
        pthread_mutex_unlock(&w->lock);
        if (r->pending == NULL)
        {
            static const char keepalive[] = ": still here\n\n";
            r->pending = strdup(keepalive);
            r->pending_length = r->pending != NULL ? sizeof(keepalive) - 1 : 0;
        }
        if (r->pending == NULL)
        {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = r->pending_length - r->sent < max ? r->pending_length - r->sent : max;
    memcpy(buf, r->pending + r->sent, n);
    r->sent += n;
    return (ssize_t)n;
}

static void free_events(void *cls)
{
    event_reader_t *r = cls;
    pthread_mutex_lock(&r->w->lock);
    r->w->event_clients--;
    pthread_mutex_unlock(&r->w->lock);
    free(r->pending);
    free(r);
}

static enum MHD_Result serve_events(tp_web_t *w, struct MHD_Connection *c)
{
    pthread_mutex_lock(&w->lock);
    bool is_full = w->event_clients >= MAX_EVENT_CLIENTS;
    w->event_clients += is_full ? 0 : 1;
    pthread_mutex_unlock(&w->lock);
    if (is_full)
    {
        return respond_text(c, 503, "too many live dashboards open; close one or poll /api/streams\n");
    }
    event_reader_t *r = calloc(1, sizeof(*r));
    struct MHD_Response *resp =
        r != NULL ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_events, r, free_events) : NULL;
    if (resp == NULL)
    {
        if (r != NULL)
        {
            r->w = w;
            free_events(r);
        }
        return MHD_NO;
    }
    r->w = w;
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

static bool parse_stream_path(const char *url, const char *suffix, uint32_t *id)
{
    const char *prefix = "/api/streams/";
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0 || url[n] < '1' || url[n] > '9')
    {
        return false;
    }
    char *end = NULL;
    unsigned long long v = strtoull(url + n, &end, 10);
    if (v == 0 || v > UINT32_MAX || strcmp(end, suffix) != 0)
    {
        return false;
    }
    *id = (uint32_t)v;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    tp_web_t *w = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    {
        return respond_text(c, 405, "read-only: GET only\n");
    }
    if (strlen(url) > MAX_URL_BYTES)
    {
        return respond_text(c, 414, "URL too long\n");
    }
    uint32_t id = 0;
    if (strcmp(url, "/") == 0)
    {
        return respond(c, 200, "text/html; charset=utf-8", (void *)tp_web_page, strlen(tp_web_page),
            MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/api/status") == 0)
    {
        return respond_copy(w, c, "application/json", &w->status, &w->status_length,
            "no driver status on this bus (is tp driver running?)\n");
    }
    if (strcmp(url, "/api/streams") == 0)
    {
        return serve_streams_only(w, c);
    }
    if (strcmp(url, "/api/events") == 0)
    {
        return serve_events(w, c);
    }
    if (parse_stream_path(url, "/latest.png", &id))
    {
        return serve_preview(w, c, id, true);
    }
    if (parse_stream_path(url, "/stats", &id))
    {
        return serve_preview(w, c, id, false);
    }
    return respond_text(c, 404, "not found (see tp web --help for the API)\n");
}

/* ---- start and stop ---- */

static int parse_listen(const char *text, struct sockaddr_in *addr)
{
    char host[64];
    unsigned port = 0;
    char extra = 0;
    if (sscanf(text, "%63[^:]:%u%c", host, &port, &extra) != 2 || port == 0 || port > 65535)
    {
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

int tp_web_start(tp_web_t **out, const tp_web_options_t *o)
{
    *out = NULL;
    const char *listen = o->listen != NULL ? o->listen : "127.0.0.1:8080";
    struct sockaddr_in addr;
    if (parse_listen(listen, &addr) < 0)
    {
        TP_SET_ERR(TP_E_INVALID, "--listen '%s': expected an IPv4 ADDR:PORT such as 127.0.0.1:8080", listen);
        return -1;
    }
    tp_web_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->monitor = calloc(1, sizeof(*w->monitor))) == NULL)
    {
        free(w);
        TP_SET_ERR(TP_E_GENERIC, "out of memory");
        return -1;
    }
    snprintf(w->listen, sizeof(w->listen), "%s", listen);
    snprintf(w->url, sizeof(w->url), "http://%s/", listen);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->changed, &ca); /* CLOCK_REALTIME: read_events waits on it */
    pthread_condattr_destroy(&ca);
    tp_strbuf_init(&w->json);
    uint32_t control = o->control_stream_id != 0 ? o->control_stream_id : 1000;
    if (tp_monitor_open(w->monitor, o->bus_dir, control) < 0)
    {
        goto error;
    }
    tp_driver_status_path(w->status_path, sizeof(w->status_path), tp_bus_dir(w->monitor->bus), control);
    if (tp_client_context_init(&w->ctx) < 0 ||
        (o->bus_dir != NULL && tp_client_context_set(w->ctx, "client.bus_dir", o->bus_dir) < 0) ||
        (o->base_dirs != NULL && tp_client_context_set(w->ctx, "client.allowed_base_dirs", o->base_dirs) < 0) ||
        tp_client_connect(&w->client, w->ctx) < 0)
    {
        goto error;
    }
    w->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
        on_request, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)64, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)24, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)10, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)(256 * 1024), MHD_OPTION_END);
    if (w->daemon == NULL)
    {
        TP_SET_ERR(TP_E_GENERIC, "cannot listen on %s (in use, or not an address of this host)", listen);
        goto error;
    }
    if (pthread_create(&w->sampler, NULL, sampler_main, w) != 0)
    {
        TP_SET_ERR(TP_E_GENERIC, "cannot start the sampler thread");
        goto error;
    }
    w->has_sampler = true;
    *out = w;
    return 0;
error:
    TP_APPEND_ERR("starting tp web on %s", listen);
    tp_web_stop(w);
    return -1;
}

const char *tp_web_url(const tp_web_t *w)
{
    return w->url;
}

void tp_web_stop(tp_web_t *w)
{
    if (w == NULL)
    {
        return;
    }
    atomic_store(&w->stop, 1);
    pthread_mutex_lock(&w->lock);
    pthread_cond_broadcast(&w->changed); /* live dashboards end their streams */
    pthread_mutex_unlock(&w->lock);
    if (w->daemon != NULL)
    {
        MHD_stop_daemon(w->daemon);
    }
    if (w->has_sampler)
    {
        pthread_join(w->sampler, NULL);
    }
    for (int i = 0; i < MAX_PREVIEWS; i++)
    {
        if (w->previews[i].stream_id != 0)
        {
            preview_close(w, &w->previews[i]);
        }
    }
    tp_client_close(w->client);
    tp_client_context_close(w->ctx);
    if (w->monitor->bus != NULL)
    {
        tp_monitor_close(w->monitor);
    }
    free(w->monitor);
    free(w->snapshot);
    free(w->status);
    free(w->scratch);
    tp_strbuf_fini(&w->json);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
