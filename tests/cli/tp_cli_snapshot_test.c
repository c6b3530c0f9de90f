/*
 * `tp snapshot` as a process beside this test's producer (an embedded driver): known test patterns come back as
 * files with the expected pixels and elements. PNG is exact (RGB stripes and gradient, channels last and first, a
 * UINT16 ramp at 16 bits, a FLOAT32 plane scaled from its range), JPEG within a bound, .npy parsed by its header
 * (and by NumPy where python3 has it), .raw with its JSON sidecar; formats a tensor cannot take are refused.
 */
#include <signal.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tensorpool/tp_client.h"
#include "tp_test_util.h"

#define RGB 10
#define PLANAR 11
#define RAMP16 12
#define DEPTH 13
#define CUBE 14
#define W 64
#define H 48

static char dir[512];
static char bus_dir[600];
static char shm[600];
static pid_t driver_pid;
static tp_client_context_t *cctx;
static tp_client_t *client;
static char out[1 << 16];

/* A `tp driver` process with the five streams (64 KiB slots), up once its status file is there. */
static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-snapshot");
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    char config[700];
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "[profiles.p]\nheader_nslots = 8\npayload_pools = [ { pool_id = 1, stride_bytes = 65536 } ]\n",
        bus_dir, shm);
    for (uint32_t id = RGB; id <= CUBE; id++)
    {
        fprintf(f, "[streams.s%u]\nstream_id = %u\nprofile = \"p\"\n", id, id);
    }
    fclose(f);
    driver_pid = tp_test_start_driver_process(config, bus_dir);
    tp_assert_ok(tp_client_context_init(&cctx));
    tp_assert_ok(tp_client_context_set(cctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(cctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_connect(&client, cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_client_close(client);
    tp_client_context_close(cctx);
    kill(driver_pid, SIGTERM);
    waitpid(driver_pid, NULL, 0);
    tp_test_remove_dir(dir);
    return 0;
}

static uint8_t rgb_at(int y, int x, int c)
{
    return c == 0 ? (uint8_t)(x * 4) : c == 1 ? (uint8_t)(y * 5) : ((x / 8) % 2 ? 255 : 0);
}

static float depth_at(int y, int x)
{
    return 0.5f + (float)x * 0.25f + (float)y * 0.125f;
}

/* The frame of a stream's pattern, with its tensor. */
static uint32_t make_frame(uint32_t stream, uint8_t *buf, tp_tensor_desc_t *t)
{
    memset(t, 0, sizeof(*t));
    t->major_order = TP_MAJOR_ORDER_ROW;
    switch (stream)
    {
    case RGB:
        *t = (tp_tensor_desc_t){ .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
            .dims = { H, W, 3 } };
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++)
                    buf[(y * W + x) * 3 + c] = rgb_at(y, x, c);
        return H * W * 3;
    case PLANAR:
        *t = (tp_tensor_desc_t){ .dtype = TP_DTYPE_UINT8, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 3,
            .dims = { 3, H, W } };
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    buf[(c * H + y) * W + x] = rgb_at(y, x, c);
        return H * W * 3;
    case RAMP16: {
        *t = (tp_tensor_desc_t){ .dtype = TP_DTYPE_UINT16, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2,
            .dims = { H, W } };
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            {
                uint16_t v = (uint16_t)(y * 1000 + x * 7);
                memcpy(buf + (y * W + x) * 2, &v, 2);
            }
        return H * W * 2;
    }
    case DEPTH: {
        *t = (tp_tensor_desc_t){ .dtype = TP_DTYPE_FLOAT32, .major_order = TP_MAJOR_ORDER_ROW, .ndims = 2,
            .dims = { H, W } };
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            {
                float v = depth_at(y, x);
                memcpy(buf + (y * W + x) * 4, &v, 4);
            }
        return H * W * 4;
    }
    default: { /* CUBE: INT16, 2 x 3 x 4 x 5, column-major */
        *t = (tp_tensor_desc_t){ .dtype = TP_DTYPE_INT16, .major_order = TP_MAJOR_ORDER_COLUMN, .ndims = 4,
            .dims = { 2, 3, 4, 5 } };
        for (int i = 0; i < 120; i++)
        {
            int16_t v = (int16_t)(i * 3 - 100);
            memcpy(buf + i * 2, &v, 2);
        }
        return 240;
    }
    }
}

/* Run `tp snapshot STREAM args` while this process publishes the stream's pattern; its exit status. */
static int snapshot(uint32_t stream, const char *args)
{
    char log[700];
    snprintf(log, sizeof(log), "%s/snapshot.log", dir);
    tp_producer_t *p;
    tp_assert_ok(tp_producer_attach(&p, client, stream, 5 * TP_NS_PER_S));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "cd '%s' && exec %s snapshot %u %s --bus-dir '%s' --allowed-base-dirs '%s' > '%s' 2>&1",
            dir, TP_TOOL, stream, args, bus_dir, shm, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    static uint8_t buf[65536];
    tp_tensor_desc_t t;
    uint32_t length = make_frame(stream, buf, &t);
    int status = 0;
    int64_t deadline = tp_clock_monotonic_ns() + 30 * TP_NS_PER_S;
    while (waitpid(pid, &status, WNOHANG) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        tp_producer_offer_frame(p, buf, length, &t, 0, 0);
        tp_producer_do_work(p);
        usleep(2000);
    }
    tp_producer_close(p);
    size_t n = 0;
    uint8_t *text = tp_test_read_file(log, &n);
    snprintf(out, sizeof(out), "%.*s", (int)n, (const char *)text);
    free(text);
    print_message("tp snapshot %u %s: %s", stream, args, out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static uint8_t *read_png(const char *name, uint32_t *w, uint32_t *h, int *depth, int *color)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_info(png, info);
    *w = png_get_image_width(png, info);
    *h = png_get_image_height(png, info);
    *depth = png_get_bit_depth(png, info);
    *color = png_get_color_type(png, info);
    size_t row = png_get_rowbytes(png, info);
    uint8_t *pixels = malloc(row * *h);
    for (uint32_t y = 0; y < *h; y++)
    {
        png_read_row(png, pixels + y * row, NULL);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return pixels;
}

/* The RGB pattern, channels last and first, comes back exactly as an RGB PNG. */
static void test_rgb_png(void **state)
{
    (void)state;
    const uint32_t streams[] = { RGB, PLANAR };
    for (int s = 0; s < 2; s++)
    {
        assert_int_equal(snapshot(streams[s], "--out rgb.png"), 0);
        tp_test_assert_contains(out, "rgb.png: seq");
        uint32_t w, h;
        int depth, color;
        uint8_t *px = read_png("rgb.png", &w, &h, &depth, &color);
        assert_int_equal(w, W);
        assert_int_equal(h, H);
        assert_int_equal(depth, 8);
        assert_int_equal(color, PNG_COLOR_TYPE_RGB);
        int wrong = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++)
                    wrong += px[(y * W + x) * 3 + c] != rgb_at(y, x, c);
        assert_int_equal(wrong, 0);
        free(px);
    }
}

/* UINT16 stays 16-bit; FLOAT32 is scaled from its min..max, which the output names. */
static void test_ramp_and_depth_png(void **state)
{
    (void)state;
    assert_int_equal(snapshot(RAMP16, "--out ramp.png"), 0);
    uint32_t w, h;
    int depth, color;
    uint8_t *px = read_png("ramp.png", &w, &h, &depth, &color);
    assert_int_equal(depth, 16);
    assert_int_equal(color, PNG_COLOR_TYPE_GRAY);
    int wrong = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            wrong += ((px[(y * W + x) * 2] << 8) | px[(y * W + x) * 2 + 1]) != y * 1000 + x * 7;
    assert_int_equal(wrong, 0);
    free(px);
    assert_int_equal(snapshot(DEPTH, "--out depth.png"), 0);
    tp_test_assert_contains(out, "values 0.5..");
    tp_test_assert_contains(out, "scaled to 0..255");
    px = read_png("depth.png", &w, &h, &depth, &color);
    assert_int_equal(depth, 8);
    double lo = depth_at(0, 0);
    double hi = depth_at(H - 1, W - 1);
    wrong = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            wrong += px[y * W + x] != (uint8_t)((depth_at(y, x) - lo) * 255.0 / (hi - lo) + 0.5);
    assert_int_equal(wrong, 0);
    free(px);
}

/* JPEG: lossy, within a few levels on average. */
static void test_rgb_jpeg(void **state)
{
    (void)state;
    assert_int_equal(snapshot(RGB, "--out rgb.jpg --quality 95"), 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/rgb.jpg", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr err;
    d.err = jpeg_std_error(&err);
    jpeg_create_decompress(&d);
    jpeg_stdio_src(&d, f);
    jpeg_read_header(&d, TRUE);
    jpeg_start_decompress(&d);
    assert_int_equal(d.output_width, W);
    assert_int_equal(d.output_height, H);
    assert_int_equal(d.output_components, 3);
    uint8_t row[W * 3];
    double total = 0;
    for (int y = 0; y < H; y++)
    {
        JSAMPROW rows[1] = { row };
        jpeg_read_scanlines(&d, rows, 1);
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                total += abs((int)row[x * 3 + c] - (int)rgb_at(y, x, c));
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    fclose(f);
    double mean = total / (W * H * 3);
    print_message("JPEG mean absolute error %.2f levels\n", mean);
    assert_true(mean < 8.0);
}

/* .npy: NumPy's header (descr, fortran_order, shape) and the elements in C order, whatever the tensor's layout;
 * .raw: the payload as it is, and its header as JSON. */
static void test_npy_and_raw(void **state)
{
    (void)state;
    assert_int_equal(snapshot(CUBE, "--out cube.npy"), 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/cube.npy", dir);
    size_t n = 0;
    uint8_t *file = tp_test_read_file(path, &n);
    assert_memory_equal(file, "\x93NUMPY\x01\x00", 8);
    size_t header = (size_t)file[8] | ((size_t)file[9] << 8);
    assert_int_equal((10 + header) % 64, 0);
    char text[512];
    snprintf(text, sizeof(text), "%.*s", (int)header, (const char *)file + 10);
    tp_test_assert_contains(text, "'descr': '<i2'");
    tp_test_assert_contains(text, "'fortran_order': False");
    tp_test_assert_contains(text, "'shape': (2, 3, 4, 5)");
    assert_int_equal(n, 10 + header + 240);
    /* element [a][b][c][d] of a column-major tensor sits at a + 2b + 6c + 24d */
    int wrong = 0;
    int k = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 5; d++, k++)
                {
                    int16_t v;
                    memcpy(&v, file + 10 + header + k * 2, 2);
                    wrong += v != (int16_t)((a + 2 * b + 6 * c + 24 * d) * 3 - 100);
                }
    assert_int_equal(wrong, 0);
    free(file);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
        "python3 -c 'import numpy; a = numpy.load(\"%s\"); print(a.dtype, a.shape, int(a[1, 2, 3, 4]))' 2>&1", path);
    if (tp_test_run(cmd, out, sizeof(out)) == 0)
    {
        tp_test_assert_contains(out, "int16 (2, 3, 4, 5)");
        tp_test_assert_contains(out, "257"); /* index 1 + 4 + 18 + 96 = 119: 119 * 3 - 100 */
    }
    else
    {
        print_message("NumPy is not installed: the header was checked in C only\n");
    }
    assert_int_equal(snapshot(RAMP16, "--out ramp.raw"), 0);
    snprintf(path, sizeof(path), "%s/ramp.raw", dir);
    uint8_t *raw = tp_test_read_file(path, &n);
    assert_int_equal(n, H * W * 2);
    uint16_t v;
    memcpy(&v, raw + (5 * W + 9) * 2, 2);
    assert_int_equal(v, 5 * 1000 + 9 * 7);
    free(raw);
    snprintf(path, sizeof(path), "%s/ramp.raw.json", dir);
    char *json = (char *)tp_test_read_file(path, &n);
    tp_test_assert_contains(json, "\"dtype\":\"UINT16\"");
    tp_test_assert_contains(json, "\"dims\":[48,64]");
    free(json);
}

/* A 4-dim tensor is not an image; unknown extensions and missing stream ids are usage errors. */
static void test_refusals(void **state)
{
    (void)state;
    assert_int_equal(snapshot(CUBE, "--out cube.png"), 2);
    tp_test_assert_contains(out, "is not an image");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s snapshot 10 --out x.bmp 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "must end in .png, .jpg, .npy or .raw");
    snprintf(cmd, sizeof(cmd), "%s snapshot --out x.png 2>&1", TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 2);
    tp_test_assert_contains(out, "needs a STREAM_ID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rgb_png, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ramp_and_depth_png, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rgb_jpeg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_npy_and_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
