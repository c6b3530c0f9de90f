/*
 * `tp web`: a read-only dashboard of the local driver in the browser, served by libmicrohttpd (bound to
 * 127.0.0.1:8080 unless told otherwise):
 *   /                                the page: the driver's streams and leases, refreshed every second, and a
 *                                    preview of each stream's latest frame
 *   /api/status                      the driver's status file as it is (streams, leases, counters), JSON
 *   /api/streams                     its streams, JSON
 *   /api/streams/ID/latest.png       the stream's newest frame as PNG when it is an image (tp snapshot's rules)
 * Previews are taken by an ordinary consumer, attached for the request and detached after it, at most once per
 * 200 ms per stream (later requests get the cached PNG): a browser tab costs the producer nothing.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_image.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"

#define PREVIEW_PERIOD_NS (200 * TP_NS_PER_MS)
#define FRAME_TIMEOUT_NS (2 * TP_NS_PER_S)
#define MAX_PREVIEWS 32
#define MAX_STATUS_BYTES (4u << 20)
#define MAX_URL_BYTES 256

typedef struct preview
{
    uint32_t stream_id;
    int64_t taken_ns;
    uint8_t *png;
    size_t png_length;
} preview_t;

typedef struct web
{
    char status_path[4096];
    tp_client_t *client;
    pthread_mutex_t lock; /* previews, and the client (one request at a time uses it) */
    preview_t previews[MAX_PREVIEWS];
} web_t;

static const char page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>tensorpool</title><style>"
    "body{font:14px sans-serif;margin:1em;background:#fafafa}table{border-collapse:collapse}"
    "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
    "img{max-width:320px;max-height:240px;background:#222;display:block}"
    ".dim{color:#888}</style></head><body>"
    "<h1>tensorpool <span id=\"driver\" class=\"dim\"></span></h1>"
    "<table><thead><tr><th>stream</th><th>name</th><th>epoch</th><th>producer</th><th>consumers</th>"
    "<th>slots</th><th>preview</th></tr></thead><tbody id=\"streams\"></tbody></table>"
    "<h2>leases</h2><table><thead><tr><th>lease</th><th>stream</th><th>role</th><th>client</th></tr></thead>"
    "<tbody id=\"leases\"></tbody></table>"
    "<script>"
    "function td(t){var e=document.createElement('td');e.textContent=t;return e}"
    "function refresh(){fetch('/api/status').then(function(r){return r.json()}).then(function(s){"
    "document.getElementById('driver').textContent=s.instance_id+' ('+s.state+', pid '+s.pid+')';"
    "var b=document.getElementById('streams');b.textContent='';"
    "(s.streams||[]).forEach(function(x){var r=document.createElement('tr');"
    "[x.stream_id,x.name,x.epoch,x.producer_client_id||'-',x.consumers,x.header_nslots].forEach(function(v){"
    "r.appendChild(td(v))});var c=document.createElement('td');var i=document.createElement('img');"
    "i.alt='no image';i.src='/api/streams/'+x.stream_id+'/latest.png?t='+Date.now();c.appendChild(i);"
    "r.appendChild(c);b.appendChild(r)});"
    "var l=document.getElementById('leases');l.textContent='';"
    "(s.leases||[]).forEach(function(x){var r=document.createElement('tr');"
    "[x.lease_id,x.stream_id,x.role,x.client_id].forEach(function(v){r.appendChild(td(v))});l.appendChild(r)});"
    "}).catch(function(){document.getElementById('driver').textContent='(no driver)'})}"
    "refresh();setInterval(refresh,1000);"
    "</script></body></html>";

static void web_usage(FILE *out)
{
    fprintf(out,
        "usage: tp web [--listen ADDR:PORT] [--bus-dir DIR] [--allowed-base-dirs DIRS] [--control-stream-id N]\n\n"
        "Serve a read-only dashboard of the local driver (default 127.0.0.1:8080; open http://127.0.0.1:8080/):\n"
        "its streams and leases refreshed every second, and a preview of each stream's newest frame. A JSON API\n"
        "under the same server:\n"
        "  /api/status                  the driver's status file (streams, leases, counters)\n"
        "  /api/streams                 its streams\n"
        "  /api/streams/ID/latest.png   the newest frame as PNG when the tensor is an image (404 otherwise)\n"
        "Previews come from an ordinary consumer, at most five per second per stream. Ctrl-C stops it.\n\n"
        "example:\n"
        "  tp web --listen 127.0.0.1:8080\n\n"
        "exit status: 0 stopped; 1 it could not listen or find the bus; 2 bad arguments.\n");
}

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

/* The driver's status file; NULL (and 503) when there is none. */
static char *read_status(const web_t *w, size_t *length)
{
    uint8_t *text = NULL;
    if (tp_fs_read_file(w->status_path, MAX_STATUS_BYTES, &text, length) < 0)
    {
        return NULL;
    }
    return (char *)text;
}

static enum MHD_Result serve_streams(web_t *w, struct MHD_Connection *c, bool is_whole)
{
    size_t length = 0;
    char *text = read_status(w, &length);
    if (text == NULL)
    {
        return respond_text(c, 503, "no driver status on this bus (is tp driver running?)\n");
    }
    if (is_whole)
    {
        enum MHD_Result rc = respond(c, 200, "application/json", text, length, MHD_RESPMEM_MUST_COPY);
        tp_free(text);
        return rc;
    }
    const char *at = strstr(text, "\"streams\":");
    const char *end = at != NULL ? strstr(at, "],\"leases\"") : NULL;
    if (at == NULL || end == NULL)
    {
        tp_free(text);
        return respond_text(c, 502, "the driver status has no streams\n");
    }
    char *json = malloc((size_t)(end - at) + 16);
    int n = json != NULL ? snprintf(json, (size_t)(end - at) + 16, "{%.*s]}", (int)(end - at), at) : -1;
    tp_free(text);
    if (n < 0)
    {
        free(json);
        return respond_text(c, 500, "out of memory\n");
    }
    return respond(c, 200, "application/json", json, (size_t)n, MHD_RESPMEM_MUST_FREE);
}

typedef struct take
{
    tp_image_t image;
    bool is_done;
    bool is_image;
} take_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    take_t *t = clientd;
    if (t->is_done)
    {
        return;
    }
    uint8_t *copy = malloc(f->payload_length > 0 ? f->payload_length : 1);
    if (copy == NULL || tp_frame_copy_out(f, copy, f->payload_length) < 0)
    {
        free(copy);
        return; /* lapped while copied: the next one */
    }
    t->is_done = true;
    t->is_image = tp_image_from_tensor(&t->image, &f->tensor, copy, f->payload_length) == 0;
    free(copy);
}

/* A fresh PNG of the stream's next frame into p (under w->lock). 0, or an HTTP status. */
static unsigned int take_preview(web_t *w, preview_t *p)
{
    tp_consumer_t *consumer = NULL;
    if (tp_consumer_attach(&consumer, w->client, p->stream_id, FRAME_TIMEOUT_NS) < 0)
    {
        return 404;
    }
    take_t t = { 0 };
    int64_t deadline = tp_clock_monotonic_ns() + FRAME_TIMEOUT_NS;
    while (!t.is_done && tp_clock_monotonic_ns() < deadline)
    {
        if (tp_consumer_poll(consumer, on_frame, &t, 16) <= 0)
        {
            usleep(1000);
        }
    }
    tp_consumer_close(consumer);
    if (!t.is_done || !t.is_image)
    {
        tp_image_free(&t.image);
        return t.is_done ? 415 : 504;
    }
    uint8_t *png = NULL;
    size_t length = 0;
    int rc = tp_image_encode_png(&t.image, &png, &length);
    tp_image_free(&t.image);
    if (rc < 0)
    {
        return 500;
    }
    free(p->png);
    p->png = png;
    p->png_length = length;
    p->taken_ns = tp_clock_monotonic_ns();
    return 0;
}

static enum MHD_Result serve_preview(web_t *w, struct MHD_Connection *c, uint32_t stream_id)
{
    pthread_mutex_lock(&w->lock);
    preview_t *p = NULL;
    preview_t *oldest = &w->previews[0];
    for (int i = 0; i < MAX_PREVIEWS && p == NULL; i++)
    {
        if (w->previews[i].stream_id == stream_id)
        {
            p = &w->previews[i];
        }
        oldest = w->previews[i].taken_ns < oldest->taken_ns ? &w->previews[i] : oldest;
    }
    if (p == NULL)
    {
        p = oldest;
        free(p->png);
        *p = (preview_t){ .stream_id = stream_id };
    }
    unsigned int status = 0;
    if (p->png == NULL || tp_clock_monotonic_ns() - p->taken_ns >= PREVIEW_PERIOD_NS)
    {
        status = take_preview(w, p);
    }
    if (status != 0 && p->png == NULL)
    {
        pthread_mutex_unlock(&w->lock);
        return respond_text(c, status,
            status == 404   ? "no such stream\n"
                : status == 415 ? "the stream's frames are not images (tp snapshot writes them as .npy)\n"
                                : "no frame in time\n");
    }
    enum MHD_Result rc = respond(c, 200, "image/png", p->png, p->png_length, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    web_t *w = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    {
        return respond_text(c, 405, "read-only: GET only\n");
    }
    if (strlen(url) > MAX_URL_BYTES)
    {
        return respond_text(c, 414, "URL too long\n");
    }
    if (strcmp(url, "/") == 0)
    {
        return respond(c, 200, "text/html; charset=utf-8", (void *)page, sizeof(page) - 1, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/api/status") == 0 || strcmp(url, "/api/streams") == 0)
    {
        return serve_streams(w, c, strcmp(url, "/api/status") == 0);
    }
    unsigned long id = 0;
    int consumed = 0;
    if (sscanf(url, "/api/streams/%lu/latest.png%n", &id, &consumed) == 1 && url[consumed] == '\0' && id > 0 &&
        id <= UINT32_MAX && strncmp(url, "/api/streams/", 13) == 0 && url[13] >= '0' && url[13] <= '9')
    {
        return serve_preview(w, c, (uint32_t)id);
    }
    return respond_text(c, 404, "not found (see tp web --help for the API)\n");
}

static int parse_listen(const char *text, struct sockaddr_in *addr)
{
    char host[64];
    unsigned port = 0;
    if (sscanf(text, "%63[^:]:%u", host, &port) != 2 || port == 0 || port > 65535)
    {
        return -1;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

int tp_cmd_web(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    const char *bus_dir = NULL;
    const char *base_dirs = NULL;
    uint64_t control_stream_id = 1000;
    for (int i = 1; i < argc; i++)
    {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (tp_cli_is_help(argv[i]))
        {
            web_usage(stdout);
            return TP_EXIT_OK;
        }
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "web", "'%s' is unknown, or lacks its value (see --help)", argv[i]);
        }
        if (strcmp(argv[i], "--listen") == 0)
        {
            listen = v;
        }
        else if (strcmp(argv[i], "--bus-dir") == 0)
        {
            bus_dir = v;
        }
        else if (strcmp(argv[i], "--allowed-base-dirs") == 0)
        {
            base_dirs = v;
        }
        else if (strcmp(argv[i], "--control-stream-id") == 0)
        {
            if (tp_cli_parse_u64(v, 1, UINT32_MAX, &control_stream_id) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "web", "--control-stream-id: %s", tp_errmsg());
            }
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "web", "unknown option '%s' (see --help)", argv[i]);
        }
        i++;
    }
    struct sockaddr_in addr;
    if (parse_listen(listen, &addr) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "web", "--listen '%s': expected an IPv4 ADDR:PORT such as 127.0.0.1:8080",
            listen);
    }
    static web_t w;
    pthread_mutex_init(&w.lock, NULL);
    tp_client_context_t *ctx = NULL;
    tp_bus_t *bus = NULL;
    struct MHD_Daemon *daemon = NULL;
    int status = TP_EXIT_OK;
    if (tp_bus_init_existing(&bus, bus_dir) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, "web", "%s", tp_errmsg());
    }
    snprintf(w.status_path, sizeof(w.status_path), "%s/driver-%" PRIu64 ".json", tp_bus_dir(bus), control_stream_id);
    tp_bus_close(bus);
    tp_cli_install_stop_handlers();
    if (tp_client_context_init(&ctx) < 0 ||
        (bus_dir != NULL && tp_client_context_set(ctx, "client.bus_dir", bus_dir) < 0) ||
        (base_dirs != NULL && tp_client_context_set(ctx, "client.allowed_base_dirs", base_dirs) < 0) ||
        tp_client_connect(&w.client, ctx) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "web", "%s", tp_errmsg());
        goto done;
    }
    daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, &w,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
    if (daemon == NULL)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "web", "cannot listen on %s (in use, or not an address of this host)",
            listen);
        goto done;
    }
    printf("tp web: http://%s/ (Ctrl-C stops it)\n", listen);
    fflush(stdout);
    while (!tp_cli_stop_requested())
    {
        usleep(50000);
    }
done:
    if (daemon != NULL)
    {
        MHD_stop_daemon(daemon);
    }
    for (int i = 0; i < MAX_PREVIEWS; i++)
    {
        free(w.previews[i].png);
    }
    tp_client_close(w.client);
    tp_client_context_close(ctx);
    return status;
}
