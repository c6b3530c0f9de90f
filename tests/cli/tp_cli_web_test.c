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
        "[streams.cam]\nstream_id = %d\nprofile = \"p\"\n",
        bus_dir, shm, STREAM);
    fclose(f);
    driver_pid = tp_test_start_driver_process(config, bus_dir);
    tp_assert_ok(tp_client_context_init(&cctx));
    tp_assert_ok(tp_client_context_set(cctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(cctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_connect(&client, cctx));
    tp_assert_ok(tp_producer_attach(&producer, client, STREAM, 5 * TP_NS_PER_S));
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
    assert_int_equal(get("GET", "/api/streams", &body, &length), 200);
    tp_test_assert_contains(body, "\"stream_id\":10");
    assert_int_equal(get("GET", "/api/status", &body, &length), 200);
    tp_test_assert_contains(body, "\"leases\":[");
    /* the preview: the pattern's pixels exactly */
    assert_int_equal(get("GET", "/api/streams/10/latest.png", &body, &length), 200);
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
    assert_int_equal(get("GET", "/api/streams/99/latest.png", &body, &length), 404);
    tp_test_assert_contains(body, "no such stream");
    assert_int_equal(get("GET", "/etc/passwd", &body, &length), 404);
    assert_int_equal(get("GET", "/api/streams/10/latest.png/../../x", &body, &length), 404);
    char long_path[2048];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    assert_int_equal(get("GET", long_path, &body, &length), 414);
    assert_int_equal(get("POST", "/api/streams", &body, &length), 405);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dashboard_api_and_preview, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_idle_clients, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
