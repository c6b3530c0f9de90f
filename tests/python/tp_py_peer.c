/*
 * The C side of the Python binding's tests: a producer of frames of any wire dtype whose every element is a known
 * function of (seq, index), and a consumer that prints each frame's dtype, shape and an FNV-1a hash of its bytes.
 *
 *   tp_py_peer produce BUS_DIR SHM_DIR STREAM DTYPE ROWS COLS COUNT   (a frame every 2 ms, then exit)
 *   tp_py_peer consume BUS_DIR SHM_DIR STREAM COUNT                   ("seq dtype rows cols hash" per frame)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensorpool/tp_client.h"

#define TIMEOUT_NS (10LL * 1000 * 1000 * 1000)

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
    {
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

/* Element i of frame seq, as the tests compute it too: (seq * 7 + i) mod 251, in the element's type (1/0 for
 * booleans). */
static void fill(uint8_t *out, tp_dtype_t dtype, size_t count, uint64_t seq)
{
    for (size_t i = 0; i < count; i++)
    {
        uint32_t v = (uint32_t)((seq * 7 + i) % 251);
        switch (dtype)
        {
        case TP_DTYPE_UINT8: out[i] = (uint8_t)v; break;
        case TP_DTYPE_INT8: ((int8_t *)out)[i] = (int8_t)(v - 125); break;
        case TP_DTYPE_UINT16: ((uint16_t *)out)[i] = (uint16_t)(v * 200); break;
        case TP_DTYPE_INT16: ((int16_t *)out)[i] = (int16_t)(v * 100 - 12500); break;
        case TP_DTYPE_UINT32: ((uint32_t *)out)[i] = v * 100000u; break;
        case TP_DTYPE_INT32: ((int32_t *)out)[i] = (int32_t)v * -100000; break;
        case TP_DTYPE_UINT64: ((uint64_t *)out)[i] = (uint64_t)v << 40; break;
        case TP_DTYPE_INT64: ((int64_t *)out)[i] = -((int64_t)v << 40); break;
        case TP_DTYPE_FLOAT32: ((float *)out)[i] = (float)v * 0.5f; break;
        case TP_DTYPE_FLOAT64: ((double *)out)[i] = (double)v * 0.25; break;
        case TP_DTYPE_BOOLEAN: out[i] = (uint8_t)(v % 2); break;
        default: out[i] = (uint8_t)v; break;
        }
    }
}

static tp_client_t *connect_to(const char *bus, const char *shm)
{
    tp_client_context_t *ctx = NULL;
    tp_client_t *client = NULL;
    if (tp_client_context_init(&ctx) < 0 || tp_client_context_set(ctx, "client.bus_dir", bus) < 0 ||
        tp_client_context_set(ctx, "client.allowed_base_dirs", shm) < 0 || tp_client_connect(&client, ctx) < 0)
    {
        fprintf(stderr, "tp_py_peer: %s\n", tp_errmsg());
        exit(1);
    }
    tp_client_context_close(ctx);
    return client;
}

static int produce(char **argv)
{
    tp_client_t *client = connect_to(argv[2], argv[3]);
    uint32_t stream = (uint32_t)atoi(argv[4]);
    tp_dtype_t dtype = (tp_dtype_t)atoi(argv[5]);
    int rows = atoi(argv[6]), cols = atoi(argv[7]), count = atoi(argv[8]);
    tp_producer_t *p = NULL;
    if (tp_producer_attach(&p, client, stream, TIMEOUT_NS) < 0)
    {
        fprintf(stderr, "tp_py_peer: %s\n", tp_errmsg());
        return 1;
    }
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = dtype;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 2;
    t.dims[0] = rows;
    t.dims[1] = cols;
    size_t n = (size_t)rows * (size_t)cols;
    uint32_t bytes = (uint32_t)(n * tp_dtype_size_bytes(dtype));
    uint8_t *buf = malloc(bytes);
    for (int i = 0; i < count; i++)
    {
        uint64_t seq = tp_producer_next_seq(p);
        fill(buf, dtype, n, seq);
        if (tp_producer_offer_frame(p, buf, bytes, &t, 0, 0) < 0)
        {
            fprintf(stderr, "tp_py_peer: %s\n", tp_errmsg());
            return 1;
        }
        tp_producer_do_work(p);
        usleep(2000);
    }
    free(buf);
    tp_producer_close(p);
    tp_client_close(client);
    return 0;
}

static int consume(char **argv)
{
    tp_client_t *client = connect_to(argv[2], argv[3]);
    uint32_t stream = (uint32_t)atoi(argv[4]);
    int count = atoi(argv[5]);
    tp_consumer_t *c = NULL;
    if (tp_consumer_attach(&c, client, stream, TIMEOUT_NS) < 0)
    {
        fprintf(stderr, "tp_py_peer: %s\n", tp_errmsg());
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    int seen = 0;
    while (seen < count)
    {
        tp_frame_t f;
        int rc = tp_consumer_next(c, &f);
        if (rc < 0)
        {
            fprintf(stderr, "tp_py_peer: %s\n", tp_errmsg());
            return 1;
        }
        if (rc == 0)
        {
            tp_consumer_wait(c, 100 * 1000 * 1000);
            continue;
        }
        uint64_t h = fnv1a(f.payload, f.payload_length);
        if (!tp_frame_is_intact(&f))
        {
            continue;
        }
        printf("%" PRIu64 " %d", f.seq, (int)f.tensor.dtype);
        for (int i = 0; i < f.tensor.ndims; i++)
        {
            printf(" %d", f.tensor.dims[i]);
        }
        printf(" %016" PRIx64 "\n", h);
        fflush(stdout);
        seen++;
    }
    tp_consumer_close(c);
    tp_client_close(client);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 9 && strcmp(argv[1], "produce") == 0)
    {
        return produce(argv);
    }
    if (argc == 6 && strcmp(argv[1], "consume") == 0)
    {
        return consume(argv);
    }
    fprintf(stderr, "usage: tp_py_peer produce BUS SHM STREAM DTYPE ROWS COLS COUNT | consume BUS SHM STREAM COUNT\n");
    return 2;
}
