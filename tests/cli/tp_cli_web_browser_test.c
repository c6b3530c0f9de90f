/*
 * `tp web` in a real browser: headless Chromium (Debian's `chromium`, `make deps-browser`) loads the dashboard that
 * `tp demo --web` serves while its producer publishes the colour-bar test pattern. A screenshot of the page's
 * focus view shows the pattern's eight bars in the preview (pixels checked); the full page, held until three more
 * snapshots were published, shows the stream and counts the live updates that reached it without a reload.
 * Skipped, with a message, where Chromium is not installed.
 */
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "tp_test_util.h"

static const char *chromium;
static char dir[512];
static int port;
static int demo;

static const char *find_chromium(void)
{
    static const char *const candidates[] = { "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome" };
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
    {
        if (access(candidates[i], X_OK) == 0)
        {
            return candidates[i];
        }
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    chromium = find_chromium();
    if (chromium == NULL)
    {
        return 0;
    }
    tp_test_make_dir(dir, sizeof(dir), "web-browser");
    port = 20000 + (int)((getpid() * 7) % 20000);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "exec %s demo --seconds 120 --width 640 --height 360 --rate 30 --base-dir /dev/shm "
        "--web 127.0.0.1:%d > '%s/demo.log' 2>&1", TP_TOOL, port, dir);
    demo = tp_test_spawn(cmd);
    char out[8192];
    snprintf(cmd, sizeof(cmd), "cat '%s/demo.log'", dir);
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    for (;;)
    {
        tp_test_run(cmd, out, sizeof(out));
        if (strstr(out, "dashboard: open http://") != NULL)
        {
            break;
        }
        if (tp_clock_monotonic_ns() > deadline)
        {
            fail_msg("tp demo --web did not start:\n%s", out);
        }
        usleep(50000);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (chromium != NULL)
    {
        kill(demo, SIGTERM);
        waitpid(demo, NULL, 0);
        tp_test_remove_dir(dir);
    }
    return 0;
}

#define REQUIRE_CHROMIUM()                                                                                            \
    do                                                                                                                \
    {                                                                                                                 \
        if (chromium == NULL)                                                                                         \
        {                                                                                                             \
            print_message("skipped: Chromium is not installed (make deps-browser installs Debian's chromium)\n");   \
            skip();                                                                                                   \
        }                                                                                                             \
    } while (0)

/* Run headless Chromium on a URL of the dashboard with the given flags; its stdout into out. */
static void browse(const char *flags, const char *path, char *out, size_t capacity)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "timeout 60 %s --headless=new --no-sandbox --disable-gpu --hide-scrollbars "
        "--no-first-run --user-data-dir='%s/profile' %s 'http://127.0.0.1:%d%s' 2>/dev/null", chromium, dir, flags, port,
        path);
    assert_int_equal(tp_test_run(cmd, out, capacity), 0);
}

/* Decode an RGB(A) PNG into 8-bit RGB rows. */
static uint8_t *read_png(const char *path, uint32_t *width, uint32_t *height)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_read_info(png, info);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_expand(png);
    png_read_update_info(png, info);
    *width = png_get_image_width(png, info);
    *height = png_get_image_height(png, info);
    assert_int_equal(png_get_rowbytes(png, info), *width * 3);
    uint8_t *pixels = malloc((size_t)*width * *height * 3);
    for (uint32_t y = 0; y < *height; y++)
    {
        png_read_row(png, pixels + (size_t)y * *width * 3, NULL);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return pixels;
}

static bool near(const uint8_t *px, int r, int g, int b)
{
    return abs(px[0] - r) <= 24 && abs(px[1] - g) <= 24 && abs(px[2] - b) <= 24;
}

static void test_preview_shows_the_pattern(void **state)
{
    (void)state;
    REQUIRE_CHROMIUM();
    char shot[700];
    snprintf(shot, sizeof(shot), "%s/focus.png", dir);
    char flags[1024];
    snprintf(flags, sizeof(flags), "--force-device-scale-factor=1 --window-size=400,300 --virtual-time-budget=3000 "
        "--screenshot='%s'", shot);
    char out[4096];
    browse(flags, "/?focus=10000", out, sizeof(out));
    uint32_t w = 0;
    uint32_t h = 0;
    uint8_t *px = read_png(shot, &w, &h);
    assert_true(w >= 360 && h >= 200);
    /* The preview is the 640x360 frame at 320x180 in the top left corner: bar k spans x in [40k, 40k + 40). The
     * white band moving down covers at most one of the four rows sampled. */
    static const int bars[8][3] = { { 235, 235, 235 }, { 235, 235, 16 }, { 16, 235, 235 }, { 16, 235, 16 },
        { 235, 16, 235 }, { 235, 16, 16 }, { 16, 16, 235 }, { 16, 16, 16 } };
    const uint32_t rows[4] = { 20, 70, 120, 165 };
    for (int k = 0; k < 8; k++)
    {
        int matches = 0;
        for (int r = 0; r < 4; r++)
        {
            matches += near(px + ((size_t)rows[r] * w + (uint32_t)(40 * k + 20)) * 3, bars[k][0], bars[k][1], bars[k][2]);
        }
        if (matches < 3)
        {
            const uint8_t *p = px + ((size_t)rows[0] * w + (uint32_t)(40 * k + 20)) * 3;
            fail_msg("bar %d: %d of 4 samples match (first is %u,%u,%u)", k, matches, p[0], p[1], p[2]);
        }
    }
    assert_true(near(px + ((size_t)100 * w + 360) * 3, 0, 0, 0)); /* right of the preview: the page's black */
    free(px);
}

/* The page, its load event held until three more snapshots exist: the live updates (server-sent events) reached
 * it, with the stream and its preview. */
static void test_dashboard_updates_live(void **state)
{
    (void)state;
    REQUIRE_CHROMIUM();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* Live updates are counted within Chromium's time budget, which an instrumented server (several times slower,
     * on a machine busy with the rest of the suite) does not always meet; tp_cli_web_test covers the server's event
     * stream under the sanitizers. */
    print_message("skipped: the live-update count is timed; not under the sanitizers\n");
    skip();
#endif
    char cmd[1024];
    char out[1 << 16];
    snprintf(cmd, sizeof(cmd), "curl -s 'http://127.0.0.1:%d/api/streams' 2>/dev/null || "
        "python3 -c \"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:%d/api/streams').read()"
        ".decode())\"", port, port);
    int64_t deadline = tp_clock_monotonic_ns() + 20 * TP_NS_PER_S;
    while (tp_test_run(cmd, out, sizeof(out)) != 0 || strstr(out, "\"version\":") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(100000);
    }
    unsigned long long version = strtoull(strstr(out, "\"version\":") + 10, NULL, 10);
    char path[128];
    snprintf(path, sizeof(path), "/?settle=%llu", version + 3);
    browse("--timeout=20000 --dump-dom", path, out, sizeof(out));
    const char *updates = strstr(out, "id=\"updates\">");
    assert_non_null(updates);
    int count = atoi(updates + strlen("id=\"updates\">"));
    if (count < 2)
    {
        fail_msg("%d live updates reached the page", count);
    }
    tp_test_assert_contains(out, "id=\"stream-10000\"");
    tp_test_assert_contains(out, "embedded-10000");
    tp_test_assert_contains(out, "class=\"preview\"");
    tp_test_assert_contains(out, "id=\"link\">connected<");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preview_shows_the_pattern),
        cmocka_unit_test(test_dashboard_updates_live),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    return rc == 0 && find_chromium() == NULL ? 77 : rc;
}
