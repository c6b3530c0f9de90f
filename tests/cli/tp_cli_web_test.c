/*
 * `tp web` as a process beside a `tp driver` process and this test's producer of an RGB test pattern, asked over
 * plain HTTP: the page, the driver's status and streams as JSON, the stream's latest frame as a PNG with the
 * pattern's pixels, clear errors for unknown streams, long URLs and writes, and service to others while idle
 * clients hold connections open.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tp_test_util.h"

#define STREAM 10
#define DEPTH 11 /* a FLOAT32 1-D stream: numbers, not an image */
#define W 32
#define H 24

static char dir[512];
static char bus_dir[600];
static char shm[600];
static pid_t driver_pid;
static pid_t web_pid;
static int port;
static tp_client_context_t *cctx;
static tp_client_t *client;
static tp_producer_t *producer;
static tp_producer_t *depth;
static char response[1 << 20];

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TP_LOG_LEVEL", "30", 1);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-web");
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    char config[700];
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "[profiles.p]\nheader_nslots = 8\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"p\"\n[streams.depth]\nstream_id = %d\nprofile = \"p\"\n",
        bus_dir, shm, STREAM, DEPTH);
    fclose(f);
    driver_pid = tp_test_start_driver_process(config, bus_dir);
    tp_assert_ok(tp_client_context_init(&cctx));
    tp_assert_ok(tp_client_context_set(cctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(cctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_connect(&client, cctx));
    tp_assert_ok(tp_producer_attach(&producer, client, STREAM, 5 * TP_NS_PER_S));
    tp_assert_ok(tp_producer_attach(&depth, client, DEPTH, 5 * TP_NS_PER_S));
    port = 20000 + (int)(getpid() % 20000);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    char *web_argv[] = { TP_TOOL, "web", "--listen", listen, "--bus-dir", bus_dir, "--allowed-base-dirs", shm, NULL };
    web_pid = spawn(web_argv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(web_pid, SIGTERM);
    waitpid(web_pid, NULL, 0);
    tp_producer_close(producer);
    tp_producer_close(depth);
    tp_client_close(client);
    tp_client_context_close(cctx);
    kill(driver_pid, SIGTERM);
    waitpid(driver_pid, NULL, 0);
    tp_test_remove_dir(dir);
    return 0;
}

static int connect_web(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
    {
        close(fd);
        return -1;
    }
    return fd;
}

/* Publish a frame of the pattern (the web's preview consumer takes the next one). */
static void publish(void)
{
    static uint8_t buf[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
        {
            buf[(y * W + x) * 3] = (uint8_t)(x * 8);
            buf[(y * W + x) * 3 + 1] = (uint8_t)(y * 10);
            buf[(y * W + x) * 3 + 2] = 200;
        }
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
        .dims = { H, W, 3 } };
    tp_producer_offer_frame(producer, buf, sizeof(buf), &t, 0, 0);
    tp_producer_do_work(producer);
    /* 100 values 0..99 (min 0, max 99, mean 49.5; 16 bins of 6 or 7) */
    float values[100];
    for (int i = 0; i < 100; i++)
    {
        values[i] = (float)i;
    }
    tp_tensor_desc_t v = { .dtype = TP_DTYPE_FLOAT32, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 1, .dims = { 100 } };
    tp_producer_offer_frame(depth, values, sizeof(values), &v, 0, 0);
    tp_producer_do_work(depth);
}

/* One request; the status code, the body at *body (inside `response`) of *length bytes. Publishes while it waits. */
static int get(const char *method, const char *path, const char **body, size_t *length)
{
    int fd = -1;
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while ((fd = connect_web()) < 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline); /* the server is starting */
        usleep(10000);
    }
    char request[8192];
    int n = snprintf(request, sizeof(request), "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    assert_int_equal(write(fd, request, (size_t)n), n);
    size_t got = 0;
    struct timeval tv = { .tv_sec = 0, .tv_usec = 20000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        ssize_t r = read(fd, response + got, sizeof(response) - 1 - got);
        if (r == 0)
        {
            break;
        }
        if (r > 0)
        {
            got += (size_t)r;
        }
        publish(); /* keep frames coming while the server waits for one */
    }
    close(fd);
    response[got] = '\0';
    int code = 0;
    assert_int_equal(sscanf(response, "HTTP/1.%*d %d", &code), 1);
    const char *end = strstr(response, "\r\n\r\n");
    assert_non_null(end);
    *body = end + 4;
    *length = got - (size_t)(end + 4 - response);
    return code;
}

/* The same, asked again while the answer is 503 (the server has not seen a frame yet). */
static int get_ready(const char *path, const char **body, size_t *length)
{
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    int code;
    while ((code = get("GET", path, body, length)) == 503)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(50000);
    }
    return code;
}

typedef struct reader
{
    const uint8_t *data;
    size_t length;
    size_t at;
} reader_t;

static void read_bytes(png_structp png, png_bytep out, png_size_t n)
{
    reader_t *r = png_get_io_ptr(png);
    if (r->at + n > r->length)
    {
        png_error(png, "short PNG");
    }
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

static void test_dashboard_api_and_preview(void **state)
{
    (void)state;
    const char *body;
    size_t length;
    assert_int_equal(get("GET", "/", &body, &length), 200);
    tp_test_assert_contains(body, "<title>tensorpool</title>");
    assert_int_equal(get_ready("/api/streams", &body, &length), 200);
    tp_test_assert_contains(body, "\"stream_id\":10");
    assert_int_equal(get_ready("/api/status", &body, &length), 200);
    tp_test_assert_contains(body, "\"leases\":[");
    /* the preview: the pattern's pixels exactly */
    assert_int_equal(get_ready("/api/streams/10/latest.png", &body, &length), 200);
    reader_t r = { .data = (const uint8_t *)body, .length = length };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_set_read_fn(png, &r, read_bytes);
    png_read_info(png, info);
    assert_int_equal(png_get_image_width(png, info), W);
    assert_int_equal(png_get_image_height(png, info), H);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    uint8_t row[W * 3];
    int wrong = 0;
    for (int y = 0; y < H; y++)
    {
        png_read_row(png, row, NULL);
        for (int x = 0; x < W; x++)
        {
            wrong += row[x * 3] != (uint8_t)(x * 8) || row[x * 3 + 1] != (uint8_t)(y * 10) || row[x * 3 + 2] != 200;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    assert_int_equal(wrong, 0);
}

static void test_errors_and_idle_clients(void **state)
{
    (void)state;
    const char *body;
    size_t length;
    assert_int_equal(get_ready("/api/streams", &body, &length), 200);
    assert_int_equal(get("GET", "/api/streams/99/latest.png", &body, &length), 404);
    tp_test_assert_contains(body, "no such stream");
    assert_int_equal(get("GET", "/etc/passwd", &body, &length), 404);
    assert_int_equal(get("GET", "/api/streams/10/latest.png/../../x", &body, &length), 404);
    const char *malformed[] = { "/api/streams/abc/latest.png", "/api/streams/-1/latest.png", "/api/streams/0/stats",
        "/api/streams/99999999999/latest.png", "/api/streams/10%00/latest.png", "/api/streams//latest.png",
        "/api/streams/010/latest.png", "/api/streams/10/latest.pngx", "/api/events/../status" };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++)
    {
        int code = get("GET", malformed[i], &body, &length);
        if (code != 404 && code != 400)
        {
            fail_msg("%s answered %d", malformed[i], code);
        }
    }
    char long_path[2048];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    assert_int_equal(get("GET", long_path, &body, &length), 414);
    assert_int_equal(get("POST", "/api/streams", &body, &length), 405);
    /* and from the command line: a driver configuration that is not there, an address that is not one */
    char out[4096];
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s web --config '%s/missing.toml' 2>&1", TP_TOOL, dir);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "missing.toml");
    snprintf(cmd, sizeof(cmd), "%s web --listen localhost 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "expected an IPv4 ADDR:PORT");
    /* clients that connect and never send anything do not stop the others */
    int idle[8];
    for (int i = 0; i < 8; i++)
    {
        idle[i] = connect_web();
        assert_true(idle[i] >= 0);
    }
    assert_int_equal(get("GET", "/api/streams", &body, &length), 200);
    for (int i = 0; i < 8; i++)
    {
        close(idle[i]);
    }
}

/* A tensor that is not an image: its numbers, and a clear refusal to draw it. */
static void test_stats_of_numbers(void **state)
{
    (void)state;
    const char *body;
    size_t length;
    assert_int_equal(get_ready("/api/streams/11/stats", &body, &length), 200);
    tp_test_assert_contains(body, "\"count\":100");
    tp_test_assert_contains(body, "\"min\":0,");
    tp_test_assert_contains(body, "\"max\":99,");
    tp_test_assert_contains(body, "\"mean\":49.5,");
    tp_test_assert_contains(body, "\"histogram\":[7,6,6,6,6,7,6,6,6,6,7,6,6,6,6,7]");
    assert_int_equal(get("GET", "/api/streams/11/latest.png", &body, &length), 415);
    tp_test_assert_contains(body, "not images");
    assert_int_equal(get_ready("/api/streams/10/stats", &body, &length), 415);
    /* the snapshot says so from its next sample on */
    int64_t deadline = tp_clock_monotonic_ns() + 10 * TP_NS_PER_S;
    while (get_ready("/api/streams", &body, &length) != 200 || strstr(body, "\"kind\":\"stats\"") == NULL ||
        strstr(body, "\"kind\":\"image\",\"seq\":") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
}

/* Read from fd until needle has appeared `times` times (or the deadline): the bytes read. */
static size_t read_until(int fd, char *buf, size_t capacity, const char *needle, int times, int64_t deadline)
{
    size_t got = 0;
    struct timeval tv = { .tv_sec = 0, .tv_usec = 50000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;)
    {
        buf[got] = '\0';
        int n = 0;
        for (const char *p = strstr(buf, needle); p != NULL; p = strstr(p + 1, needle))
        {
            n++;
        }
        if (n >= times || tp_clock_monotonic_ns() > deadline || got + 1 >= capacity)
        {
            return got;
        }
        ssize_t r = read(fd, buf + got, capacity - 1 - got);
        if (r == 0)
        {
            return got;
        }
        got += r > 0 ? (size_t)r : 0;
        publish();
    }
}

static int open_events(void)
{
    int fd = connect_web();
    assert_true(fd >= 0);
    const char *req = "GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return fd;
}

/* Server-sent events: a snapshot each second, newer each time, without asking again; a long poll waits for the next
 * one; at most 8 live streams, then a clear 503; a client that never reads costs the producer nothing and the
 * others keep being served, as do many clients at once. */
static void test_live_events_and_crowds(void **state)
{
    (void)state;
    const char *body;
    size_t length;
    assert_int_equal(get_ready("/api/streams", &body, &length), 200);
    int fd = open_events();
    static char buf[1 << 18];
    size_t got = read_until(fd, buf, sizeof(buf), "event: streams\ndata: {", 3,
        tp_clock_monotonic_ns() + 15 * TP_NS_PER_S);
    assert_true(got > 0);
    tp_test_assert_contains(buf, "Content-Type: text/event-stream");
    const char *first = strstr(buf, "\"version\":");
    assert_non_null(first);
    const char *third = strstr(strstr(strstr(first + 1, "\"version\":") + 1, "\"version\":"), "\"version\":");
    assert_non_null(third);
    unsigned long long v1 = strtoull(first + 10, NULL, 10);
    unsigned long long v3 = strtoull(third + 10, NULL, 10);
    assert_true(v3 >= v1 + 2);
    close(fd);
    /* the long poll answers with the next snapshot */
    char path[64];
    snprintf(path, sizeof(path), "/api/streams?after=%llu", v3 + 1);
    assert_int_equal(get("GET", path, &body, &length), 200);
    const char *v = strstr(body, "\"version\":");
    assert_non_null(v);
    assert_true(strtoull(v + 10, NULL, 10) >= v3 + 2);
    /* eight live streams, a ninth refused; none of them reads */
    int live[8];
    for (int i = 0; i < 8; i++)
    {
        live[i] = open_events();
    }
    usleep(300000);
    assert_int_equal(get("GET", "/api/events", &body, &length), 503);
    tp_test_assert_contains(body, "too many live dashboards");
    /* while they do not read, 200 frames go out, every one accepted, and the API still answers */
    uint8_t payload[64] = { 0 };
    tp_tensor_desc_t t = { .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 1, .dims = { 64 } };
    for (int i = 0; i < 200; i++)
    {
        assert_true(tp_producer_offer_frame(depth, payload, sizeof(payload), &t, 0, 0) >= 0);
    }
    assert_int_equal(get("GET", "/api/streams", &body, &length), 200);
    for (int i = 0; i < 8; i++)
    {
        close(live[i]);
    }
    /* sixteen clients at once, each answered in full: with the eight live streams just closed, which the server may
     * not have noticed yet (it does at its next write), that is its limit of 24 connections from one address */
    int crowd[16];
    for (int i = 0; i < 16; i++)
    {
        crowd[i] = connect_web();
        assert_true(crowd[i] >= 0);
        const char *req = "GET /api/streams HTTP/1.0\r\n\r\n";
        assert_int_equal(write(crowd[i], req, strlen(req)), (ssize_t)strlen(req));
    }
    for (int i = 0; i < 16; i++)
    {
        got = read_until(crowd[i], buf, sizeof(buf), "\"streams\":", 1, tp_clock_monotonic_ns() + 10 * TP_NS_PER_S);
        assert_true(got > 0);
        tp_test_assert_contains(buf, " 200 OK");
        close(crowd[i]);
    }
}

/* The driver restarts under the dashboard: the API keeps answering, and the preview comes back from the stream's
 * new epoch once the producer is attached again. */
static void test_survives_driver_restart(void **state)
{
    (void)state;
    const char *body;
    size_t length;
    assert_int_equal(get_ready("/api/streams/10/latest.png", &body, &length), 200);
    uint64_t old_epoch = tp_producer_epoch(producer);
    kill(driver_pid, SIGTERM);
    waitpid(driver_pid, NULL, 0);
    char config[700];
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    driver_pid = tp_test_start_driver_process(config, bus_dir);
    int64_t deadline = tp_clock_monotonic_ns() + 30 * TP_NS_PER_S;
    while (!tp_producer_is_attached(producer) || !tp_producer_is_attached(depth) ||
        tp_producer_epoch(producer) == old_epoch)
    {
        publish();
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(10000);
    }
    char want[64];
    snprintf(want, sizeof(want), "\"stream_id\":10,\"kind\":\"image\"");
    uint64_t epoch = tp_producer_epoch(producer);
    char epoch_text[128];
    snprintf(epoch_text, sizeof(epoch_text), "\"stream_id\":10,\"name\":\"cam\",\"in_status\":true,\"epoch\":%llu",
        (unsigned long long)epoch);
    while (get("GET", "/api/streams", &body, &length) != 200 || strstr(body, epoch_text) == NULL ||
        strstr(body, want) == NULL)
    {
        if (tp_clock_monotonic_ns() > deadline)
        {
            fail_msg("the dashboard did not follow the restart (epoch %llu): %.1500s", (unsigned long long)epoch, body);
        }
        usleep(100000);
    }
    assert_int_equal(get_ready("/api/streams/10/latest.png", &body, &length), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dashboard_api_and_preview, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_idle_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_of_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_events_and_crowds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_driver_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
