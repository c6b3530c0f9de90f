/* Shared helpers of the tp subcommands. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_atomic.h"
#include "core/tp_err.h"
#include "core/tp_config.h"
#include "core/tp_crc32c.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "core/tp_log.h"
#include "core/tp_strbuf.h"
#include "core/tp_toml.h"

int tp_cli_fail(int status, const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "tp %s: ", cmd);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    if (tp_errcode() != 0)
    {
        TP_LOG_D("cli", "the last error, with source locations: %s", tp_errmsg_trace()); /* TP_LOG_LEVEL=10 */
    }
    return status;
}

int tp_cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int tp_cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (text == NULL || *text == '\0' || *text == '-')
    {
        TP_SET_ERR(TP_E_INVALID, "'%s' is not a non-negative integer", text != NULL ? text : "");
        return -1;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0')
    {
        TP_SET_ERR(TP_E_INVALID, "'%s' is not an integer", text);
        return -1;
    }
    if (v < min || v > max)
    {
        TP_SET_ERR(TP_E_INVALID, "%s is outside %llu..%llu", text, (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

int tp_cli_parse_double(const char *text, double min, double max, double *out)
{
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= min && v <= max))
    {
        TP_SET_ERR(TP_E_INVALID, "'%s' is not a number in %g..%g", text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    tp_store_release_int(&stop_flag, 1); /* lock-free: async-signal-safe */
}

void tp_cli_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int tp_cli_stop_requested(void)
{
    return tp_load_acquire_int(&stop_flag) != 0;
}

const int *tp_cli_stop_flag(void)
{
    return &stop_flag;
}

int tp_cli_load_config(const char *path, void *config, tp_cli_config_loader_t load)
{
    uint8_t *text = NULL;
    size_t length = 0;
    tp_toml_value_t *doc = NULL;
    if (tp_fs_read_file(path, 1u << 20, &text, &length) < 0 ||
        tp_toml_parse(&doc, (const char *)text, length, path) < 0)
    {
        tp_free(text);
        return -1;
    }
    tp_free(text);
    tp_config_report_t r;
    tp_config_report_init(&r, path);
    int rc = load(config, doc, &r);
    if (rc < 0)
    {
        TP_SET_ERR(TP_E_CONFIG, "%s", tp_strbuf_cstr(&r.errors));
    }
    tp_config_report_fini(&r);
    tp_toml_free(doc);
    return rc;
}

void tp_cli_frame_fill(uint8_t *payload, uint32_t length, uint64_t seq)
{
    if (length < 12)
    {
        memset(payload, (int)(seq & 0xFF), length);
        return;
    }
    memset(payload + 8, (int)(seq * 131u + 7u) & 0xFF, length - 12);
    tp_cli_frame_stamp(payload, length, seq);
}

void tp_cli_frame_stamp(uint8_t *payload, uint32_t length, uint64_t seq)
{
    memcpy(payload, &seq, 8);
    uint32_t crc = tp_crc32c(0, payload, length - 4);
    memcpy(payload + length - 4, &crc, 4);
}

int tp_cli_frame_verify(const uint8_t *payload, uint32_t length, uint64_t seq)
{
    if (length < 12)
    {
        for (uint32_t i = 0; i < length; i++)
        {
            if (payload[i] != (uint8_t)(seq & 0xFF))
            {
                return 0;
            }
        }
        return 1;
    }
    uint64_t stored_seq;
    uint32_t stored_crc;
    memcpy(&stored_seq, payload, 8);
    memcpy(&stored_crc, payload + length - 4, 4);
    return stored_seq == seq && tp_crc32c(0, payload, length - 4) == stored_crc;
}

void tp_cli_format_bytes(char *out, size_t capacity, uint64_t bytes)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
    if (bytes < 1024)
    {
        snprintf(out, capacity, "%" PRIu64 " B", bytes);
        return;
    }
    double v = (double)bytes / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 3)
    {
        v /= 1024.0;
        u++;
    }
    snprintf(out, capacity, "%.1f %s", v, units[u]);
}

static uint64_t shm_field(const tp_json_t *shm, const char *key)
{
    uint64_t v = 0;
    const tp_json_t *n = tp_json_get(shm, key);
    if (n != NULL)
    {
        tp_json_to_u64(n, &v);
    }
    return v;
}

void tp_cli_format_shm_use(char *out, size_t capacity, const tp_json_t *status, const char *base_dir)
{
    const tp_json_t *shm = tp_json_get(status, "shm");
    if (shm == NULL || shm->type != TP_JSON_OBJECT)
    {
        snprintf(out, capacity, "%s", "");
        return;
    }
    char used[32], avail[32], size[32];
    tp_cli_format_bytes(used, sizeof(used), shm_field(shm, "namespace_bytes"));
    tp_cli_format_bytes(avail, sizeof(avail), shm_field(shm, "fs_available_bytes"));
    tp_cli_format_bytes(size, sizeof(size), shm_field(shm, "fs_size_bytes"));
    snprintf(out, capacity, "shm %s in %" PRIu64 " epoch dir(s) (%s: %s of %s free)", used,
        shm_field(shm, "epoch_dirs"), base_dir, avail, size);
}

const char *tp_cli_getenv(const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "TP_%s", name);
    const char *v = getenv(key);
    if (v != NULL && v[0] != '\0')
    {
        return v;
    }
    snprintf(key, sizeof(key), "TP_CLIENT_%s", name);
    v = getenv(key);
    return v != NULL && v[0] != '\0' ? v : NULL; /* empty: unset, as the client reads it */
}
