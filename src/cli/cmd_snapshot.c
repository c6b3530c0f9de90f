/*
 * `tp snapshot STREAM_ID`: attach as an ordinary consumer, copy the next intact frame out (validated against the
 * seqlock after the copy) and write it as a PNG or JPEG when the tensor is an image, else as .npy, or as raw bytes
 * with a JSON sidecar describing the frame. Read-only: the producer never waits for it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_image.h"
#include "core/tp_clock.h"
#include "core/tp_strbuf.h"
#include "tensorpool/tp_client.h"

#define ATTACH_TIMEOUT_NS (10 * TP_NS_PER_S)
#define FRAME_TIMEOUT_NS (10 * TP_NS_PER_S)
#define MAX_COPY_BYTES (1u << 30)

typedef enum snap_format
{
    SNAP_AUTO = 0, /* PNG if it is an image, else .npy */
    SNAP_PNG,
    SNAP_JPEG,
    SNAP_NPY,
    SNAP_RAW,
} snap_format_t;

typedef struct snap_options
{
    uint32_t stream_id;
    const char *out;
    uint64_t count;
    uint64_t every_ms;
    uint64_t quality;
    const char *bus_dir;
    const char *base_dirs;
} snap_options_t;

static void snapshot_usage(FILE *out)
{
    fprintf(out,
        "usage: tp snapshot STREAM_ID [--out FILE.png|.jpg|.npy|.raw] [--count N] [--every MS] [--quality Q]\n"
        "                   [--bus-dir DIR] [--allowed-base-dirs DIRS]\n\n"
        "Attach to STREAM_ID as an ordinary consumer (read-only: the producer never waits), take the next whole\n"
        "frame (copied out, then checked against the seqlock) and write it:\n"
        "  .png / .jpg  when the tensor is an image: UINT8 or UINT16 with 2 dims (H x W) or 3 dims with 1, 3 or 4\n"
        "               channels last (H x W x C) or first (C x H x W), any major order or strides; FLOAT32 with one\n"
        "               channel (a depth or heat map) scaled from its min..max to 0..255, the range printed.\n"
        "               UINT16 stays 16-bit in PNG; JPEG keeps the high byte (--quality, 1..100 [90]).\n"
        "  .npy         any tensor, as NumPy reads it (np.load: dtype and shape, elements in C order).\n"
        "  .raw         the payload bytes as they are, and FILE.json beside them: seq, epoch, timestamps,\n"
        "               meta_version, trace id, pool, dtype, major order, dims, strides.\n"
        "Without --out: snapshot-STREAM-SEQ.png for an image, else .npy. --count N takes N frames, --every MS apart\n"
        "[0: the next ones]; with N > 1 each file name gets -SEQ before its extension.\n\n"
        "examples:\n"
        "  tp snapshot 10000                       # the camera's next frame as snapshot-10000-<seq>.png\n"
        "  tp snapshot 10000 --out depth.png       # a FLOAT32 depth map, normalised\n"
        "  tp snapshot 10000 --out t.npy           # python3 -c 'import numpy; print(numpy.load(\"t.npy\").shape)'\n"
        "  tp snapshot 10000 --count 5 --every 1000 --out cam.jpg\n\n"
        "exit status: 0 written; 1 no frame came (or the attach failed, or the file could not be written); 2 bad\n"
        "arguments, or a format the tensor cannot take (e.g. .png of a 5-dim tensor).\n");
}

static snap_format_t format_of(const char *path)
{
    const char *dot = path != NULL ? strrchr(path, '.') : NULL;
    if (dot == NULL)
    {
        return SNAP_AUTO;
    }
    if (strcmp(dot, ".png") == 0)
    {
        return SNAP_PNG;
    }
    if (strcmp(dot, ".jpg") == 0 || strcmp(dot, ".jpeg") == 0)
    {
        return SNAP_JPEG;
    }
    if (strcmp(dot, ".npy") == 0)
    {
        return SNAP_NPY;
    }
    return strcmp(dot, ".raw") == 0 ? SNAP_RAW : (snap_format_t)-1;
}

static int parse(int argc, char **argv, snap_options_t *o)
{
    uint64_t id = 0;
    if (argc < 2 || tp_cli_parse_u64(argv[1], 1, UINT32_MAX, &id) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "needs a STREAM_ID (1..4294967295) first (see tp snapshot --help)");
    }
    o->stream_id = (uint32_t)id;
    for (int i = 2; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        int rc = 0;
        if (v == NULL)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "'%s' is unknown, or lacks its value (see --help)", a);
        }
        if (strcmp(a, "--out") == 0)
        {
            o->out = v;
            if ((int)format_of(v) < 0 || format_of(v) == SNAP_AUTO)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "--out '%s': the name must end in .png, .jpg, .npy or .raw",
                    v);
            }
        }
        else if (strcmp(a, "--count") == 0)
        {
            rc = tp_cli_parse_u64(v, 1, 1000000, &o->count);
        }
        else if (strcmp(a, "--every") == 0)
        {
            rc = tp_cli_parse_u64(v, 0, 86400000, &o->every_ms);
        }
        else if (strcmp(a, "--quality") == 0)
        {
            rc = tp_cli_parse_u64(v, 1, 100, &o->quality);
        }
        else if (strcmp(a, "--bus-dir") == 0)
        {
            o->bus_dir = v;
        }
        else if (strcmp(a, "--allowed-base-dirs") == 0)
        {
            o->base_dirs = v;
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "unknown option '%s' (see --help)", a);
        }
        if (rc < 0)
        {
            return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "%s: %s", a, tp_errmsg());
        }
    }
    return TP_EXIT_OK;
}

/* The file name: --out (with -SEQ before its extension when several are taken), or snapshot-STREAM-SEQ.EXT. */
static void file_name(char *out, size_t capacity, const snap_options_t *o, uint64_t seq, bool is_image)
{
    if (o->out == NULL)
    {
        snprintf(out, capacity, "snapshot-%" PRIu32 "-%" PRIu64 ".%s", o->stream_id, seq, is_image ? "png" : "npy");
        return;
    }
    if (o->count <= 1)
    {
        snprintf(out, capacity, "%s", o->out);
        return;
    }
    const char *dot = strrchr(o->out, '.');
    snprintf(out, capacity, "%.*s-%" PRIu64 "%s", (int)(dot - o->out), o->out, seq, dot);
}

static int write_sidecar(const char *raw_path, const tp_frame_t *f)
{
    char path[4096 + 8];
    snprintf(path, sizeof(path), "%s.json", raw_path);
    tp_strbuf_t j;
    tp_strbuf_init(&j);
    const tp_tensor_desc_t *t = &f->tensor;
    tp_strbuf_printf(&j,
        "{\"stream_id\":%" PRIu32 ",\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"timestamp_ns\":%" PRIu64
        ",\"publish_timestamp_ns\":%" PRIu64 ",\"meta_version\":%" PRIu32 ",\"trace_id\":%" PRIu64
        ",\"pool_id\":%u,\"payload_bytes\":%" PRIu32 ",\"dtype\":\"%s\",\"major_order\":\"%s\",\"dims\":[",
        f->stream_id, f->epoch, f->seq, f->timestamp_ns, f->publish_timestamp_ns, f->meta_version, f->trace_id,
        f->pool_id, f->payload_length, tp_dtype_name(t->dtype) != NULL ? tp_dtype_name(t->dtype) : "UNKNOWN",
        t->major_order == TP_MAJOR_ORDER_COLUMN ? "COLUMN" : "ROW");
    for (int d = 0; d < t->ndims; d++)
    {
        tp_strbuf_printf(&j, "%s%d", d > 0 ? "," : "", t->dims[d]);
    }
    tp_strbuf_puts(&j, "],\"strides\":[");
    for (int d = 0; d < t->ndims; d++)
    {
        tp_strbuf_printf(&j, "%s%d", d > 0 ? "," : "", t->strides[d]);
    }
    tp_strbuf_puts(&j, "]}\n");
    FILE *out = fopen(path, "w");
    int rc = out != NULL && fputs(tp_strbuf_cstr(&j), out) >= 0 ? 0 : -1;
    rc = (out != NULL && fclose(out) == 0) ? rc : -1;
    tp_strbuf_fini(&j);
    return rc;
}

/* Write one frame (payload already copied out to `copy`). Returns an exit status. */
static int write_frame(const snap_options_t *o, const tp_frame_t *f, const uint8_t *copy)
{
    snap_format_t format = format_of(o->out);
    tp_image_t image;
    bool is_image = tp_image_from_tensor(&image, &f->tensor, copy, f->payload_length) == 0;
    char path[4096];
    file_name(path, sizeof(path), o, f->seq, is_image);
    if (format == SNAP_AUTO)
    {
        format = is_image ? SNAP_PNG : SNAP_NPY;
    }
    int rc = 0;
    if ((format == SNAP_PNG || format == SNAP_JPEG) && !is_image)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "snapshot", "%s: %s", path, tp_errmsg());
    }
    if (format == SNAP_PNG)
    {
        rc = tp_image_write_png(&image, path);
    }
    else if (format == SNAP_JPEG)
    {
        rc = tp_image_write_jpeg(&image, path, o->quality > 0 ? (int)o->quality : 90);
    }
    else if (format == SNAP_NPY)
    {
        rc = tp_npy_write(path, &f->tensor, copy, f->payload_length);
    }
    else
    {
        FILE *out = fopen(path, "wb");
        rc = out != NULL && fwrite(copy, 1, f->payload_length, out) == f->payload_length ? 0 : -1;
        rc = (out != NULL && fclose(out) == 0) ? rc : -1;
        rc = rc == 0 ? write_sidecar(path, f) : rc;
    }
    if (rc < 0)
    {
        tp_image_free(&image);
        return tp_cli_fail(TP_EXIT_FAILED, "snapshot", "%s: %s", path, tp_errmsg());
    }
    printf("%s: seq %" PRIu64 " epoch %" PRIu64 ", %s", path, f->seq, f->epoch,
        tp_dtype_name(f->tensor.dtype) != NULL ? tp_dtype_name(f->tensor.dtype) : "UNKNOWN");
    for (int d = 0; d < f->tensor.ndims; d++)
    {
        printf("%s%d", d == 0 ? " " : "x", f->tensor.dims[d]);
    }
    if (is_image && image.is_scaled)
    {
        printf(", values %g..%g scaled to 0..255", image.min, image.max);
    }
    printf("\n");
    tp_image_free(&image);
    return TP_EXIT_OK;
}

typedef struct taker
{
    uint8_t *copy;
    size_t capacity;
    tp_frame_t frame;
    bool has_frame;
    bool is_due; /* --every: frames before the next snapshot is due are read and passed over */
    uint64_t lapped;
} taker_t;

static void on_frame(void *clientd, const tp_frame_t *f)
{
    taker_t *t = clientd;
    if (t->has_frame || !t->is_due)
    {
        return;
    }
    if (f->payload_length > t->capacity)
    {
        uint8_t *bigger = realloc(t->copy, f->payload_length);
        if (bigger == NULL)
        {
            return;
        }
        t->copy = bigger;
        t->capacity = f->payload_length;
    }
    if (tp_frame_copy_out(f, t->copy, t->capacity) < 0)
    {
        t->lapped++; /* overwritten while copied: the next one */
        return;
    }
    t->frame = *f;
    t->has_frame = true;
}

int tp_cmd_snapshot(int argc, char **argv)
{
    if (argc == 2 && tp_cli_is_help(argv[1]))
    {
        snapshot_usage(stdout);
        return TP_EXIT_OK;
    }
    snap_options_t o = { .count = 1 };
    int status = parse(argc, argv, &o);
    if (status != TP_EXIT_OK)
    {
        return status;
    }
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    tp_consumer_t *consumer = NULL;
    taker_t taker = { 0 };
    tp_cli_install_stop_handlers();
    if (tp_client_context_init(&ctx) < 0 ||
        (o.bus_dir != NULL && tp_client_context_set(ctx, "client.bus_dir", o.bus_dir) < 0) ||
        (o.base_dirs != NULL && tp_client_context_set(ctx, "client.allowed_base_dirs", o.base_dirs) < 0) ||
        tp_client_connect(&client, ctx) < 0 || tp_consumer_attach(&consumer, client, o.stream_id, ATTACH_TIMEOUT_NS) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, "snapshot", "stream %" PRIu32 ": %s", o.stream_id, tp_errmsg());
        goto done;
    }
    for (uint64_t n = 0; n < o.count && status == TP_EXIT_OK && !tp_cli_stop_requested(); n++)
    {
        int64_t not_before = tp_clock_monotonic_ns() + (n > 0 ? (int64_t)o.every_ms * TP_NS_PER_MS : 0);
        int64_t deadline = not_before + FRAME_TIMEOUT_NS;
        taker.has_frame = false;
        while (!taker.has_frame && !tp_cli_stop_requested())
        {
            int64_t now = tp_clock_monotonic_ns();
            if (now > deadline)
            {
                status = tp_cli_fail(TP_EXIT_FAILED, "snapshot",
                    "no frame of stream %" PRIu32 " within %d s (is its producer running?)", o.stream_id,
                    (int)(FRAME_TIMEOUT_NS / TP_NS_PER_S));
                break;
            }
            taker.is_due = now >= not_before;
            if (tp_consumer_poll(consumer, on_frame, &taker, 16) <= 0)
            {
                usleep(1000);
            }
        }
        if (taker.has_frame)
        {
            status = write_frame(&o, &taker.frame, taker.copy);
        }
    }
done:
    free(taker.copy);
    tp_consumer_close(consumer);
    tp_client_close(client);
    tp_client_context_close(ctx);
    return status;
}
