/*
 * `tp inspect`: a region file's superblock, checked against the layout rules (and what the operator expects),
 * and its header slots. `tp validate-uri`: a region URI against the wire rules and the containment rules.
 * Both only read: files are opened read-only without following symlinks and read with pread, so a hostile or
 * truncated file gives a clear error, never a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_json.h"
#include "core/tp_strbuf.h"
#include "shm/tp_header_ring.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_path.h"
#include "shm/tp_shm_region.h"
#include "wire/tp_sbe.h"
#include "wire/tp_tensor.h"

#define INSPECT_MAX_SLOTS 65536u

typedef struct inspect_opts
{
    const char *target;
    bool all_slots;
    int64_t slot; /* -1: none */
    bool json;
    bool has_epoch, has_stream;
    uint64_t epoch;
    uint64_t stream;
    const char *allowed; /* comma-separated; NULL: no containment check */
} inspect_opts_t;

static void inspect_usage(FILE *out)
{
    fprintf(out,
        "usage: tp inspect URI|FILE [--slots | --slot I] [--expect-epoch E] [--expect-stream S]\n"
        "                  [--allowed-dirs DIR[,DIR...]] [--json]\n\n"
        "Show a region file's superblock (magic, layout version, epoch, stream, region type, pool, slots and\n"
        "their size, the writer's pid and whether it runs, start and activity times), check it against the\n"
        "layout rules (known magic and layout version, power-of-two slot count, 256-byte header slots, valid\n"
        "pool stride, file size) and against what you expect, and list header slots: sequence, committed or\n"
        "being written, pool, length, dtype and dims. URI is a region URI (shm:file?path=...); with\n"
        "--allowed-dirs the file must also pass the containment rules a client applies.\n\n"
        "options:\n"
        "  --slots             list every header slot (header rings only)\n"
        "  --slot I            one header slot in full, as JSON (fields and the embedded TensorHeader)\n"
        "  --expect-epoch E    fail unless the superblock's epoch is E\n"
        "  --expect-stream S   fail unless its stream id is S\n"
        "  --allowed-dirs D    open it as a client would: inside one of these directories, no symlinks\n"
        "  --json              one JSON object\n\n"
        "examples:\n"
        "  tp inspect /dev/shm/tensorpool-$USER/default/10000/2/header.ring --slots\n"
        "  tp inspect 'shm:file?path=/dev/shm/tensorpool-me/default/10000/2/1.pool' --expect-epoch 2\n\n"
        "exit status: 0 the region passed every check; 1 a check failed; 2 bad arguments or an unreadable file.\n");
}

static void validate_usage(FILE *out)
{
    fprintf(out,
        "usage: tp validate-uri URI [--allowed-dirs DIR[,DIR...]]\n\n"
        "Check a region URI as a client does before mapping it: the wire spec's URI rules (shm:file scheme,\n"
        "an absolute path, known parameters once each) and the containment rules (the canonical path lies in\n"
        "an allowed base directory, is a regular file, no symlink). The allowed directories default to\n"
        "$TP_ALLOWED_BASE_DIRS, else /dev/shm. Prints the canonical path.\n\n"
        "example:\n"
        "  tp validate-uri 'shm:file?path=/dev/shm/tensorpool-me/default/10000/2/header.ring'\n\n"
        "exit status: 0 valid; 1 refused (the reason is printed); 2 bad arguments.\n");
}

/* Split a comma-separated list into allowed directories. */
static int allowed_init(tp_shm_allowed_dirs_t *allowed, const char *list)
{
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", list);
    const char *dirs[TP_SHM_MAX_ALLOWED_DIRS];
    size_t n = 0;
    char *save = NULL;
    for (char *d = strtok_r(copy, ",", &save); d != NULL && n < TP_SHM_MAX_ALLOWED_DIRS;
         d = strtok_r(NULL, ",", &save))
    {
        dirs[n++] = d;
    }
    return tp_shm_allowed_dirs_init(allowed, dirs, n);
}

/* The path of a URI or plain path argument; -1 with the URI's fault. */
static int target_path(const char *target, char *path, size_t capacity)
{
    if (strncmp(target, "shm:", 4) == 0)
    {
        tp_region_uri_t uri;
        if (tp_region_uri_parse(&uri, target, strlen(target)) < 0)
        {
            return -1;
        }
        snprintf(path, capacity, "%s", uri.path);
        return 0;
    }
    snprintf(path, capacity, "%s", target);
    return 0;
}

static const char *region_type_name(int16_t t)
{
    return t == TP_REGION_HEADER_RING ? "header ring" : t == TP_REGION_PAYLOAD_POOL ? "payload pool" : "unknown";
}

typedef struct check_list
{
    tp_strbuf_t text;
    int failures;
} check_list_t;

static void check(check_list_t *c, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(check_list_t *c, bool ok, const char *fmt, ...)
{
    if (ok)
    {
        return;
    }
    char buf[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    if (c->failures++ > 0)
    {
        tp_strbuf_puts(&c->text, "; ");
    }
    tp_strbuf_puts(&c->text, buf);
}

/* Every layout rule a mapper applies, and the operator's expectations. */
static void check_superblock(check_list_t *c, const tp_superblock_t *sb, uint64_t file_bytes, const inspect_opts_t *o)
{
    check(c, sb->magic == TP_SUPERBLOCK_MAGIC, "magic 0x%016" PRIx64 " is not TPOLSHM1", sb->magic);
    check(c, sb->layout_version == TP_LAYOUT_VERSION, "layout version %" PRIu32 " (this build speaks %d)",
        sb->layout_version, TP_LAYOUT_VERSION);
    check(c, sb->region_type == TP_REGION_HEADER_RING || sb->region_type == TP_REGION_PAYLOAD_POOL,
        "unknown region type %d", sb->region_type);
    check(c, tp_shm_nslots_is_valid(sb->nslots), "%" PRIu32 " slots is not a power of two", sb->nslots);
    if (sb->region_type == TP_REGION_HEADER_RING)
    {
        check(c, sb->slot_bytes == TP_HEADER_SLOT_BYTES && sb->stride_bytes == 0 && sb->pool_id == 0,
            "a header ring needs 256-byte slots, stride 0 and pool 0 (has %" PRIu32 ", %" PRIu32 ", %u)",
            sb->slot_bytes, sb->stride_bytes, sb->pool_id);
    }
    else if (sb->region_type == TP_REGION_PAYLOAD_POOL)
    {
        check(c, tp_shm_stride_is_valid(sb->stride_bytes) && sb->slot_bytes == sb->stride_bytes,
            "a pool stride must be 64 x 2^k bytes and equal slot_bytes (stride %" PRIu32 ", slot_bytes %" PRIu32 ")",
            sb->stride_bytes, sb->slot_bytes);
    }
    uint64_t want = TP_SUPERBLOCK_BYTES + (uint64_t)sb->nslots * sb->slot_bytes;
    check(c, file_bytes >= want, "the file has %" PRIu64 " bytes, the layout needs %" PRIu64, file_bytes, want);
    check(c, !o->has_epoch || sb->epoch == o->epoch, "epoch %" PRIu64 ", expected %" PRIu64, sb->epoch, o->epoch);
    check(c, !o->has_stream || sb->stream_id == o->stream, "stream %" PRIu32 ", expected %" PRIu64, sb->stream_id,
        o->stream);
}

static bool pid_is_running(uint64_t pid)
{
    return pid > 0 && pid < INT32_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* One header slot's summary (human or JSON). */
static void slot_summary(tp_strbuf_t *b, const uint8_t *slot, uint32_t index, bool json)
{
    uint64_t word = tp_sbe_get_u64(slot);
    tp_slot_fields_t f;
    tp_slot_read_fields(slot, &f);
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    bool tensor_ok = tp_tensor_header_decode(slot + TP_SLOT_TENSOR_HEADER_OFFSET, TP_TENSOR_HEADER_BYTES, &t) == 0;
    const char *state = word == 0 ? "empty" : (word & 1) ? "committed" : "writing";
    const char *dtype = tensor_ok && tp_dtype_name(t.dtype) != NULL ? tp_dtype_name(t.dtype) : "-";
    if (json)
    {
        tp_strbuf_printf(b,
            "{\"slot\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"state\":\"%s\",\"pool_id\":%u,\"values_len_bytes\":%" PRIu32
            ",\"payload_slot\":%" PRIu32 ",\"timestamp_ns\":%" PRIu64 ",\"meta_version\":%" PRIu32
            ",\"dtype\":\"%s\",\"dims\":[",
            index, word >> 1, state, f.pool_id, f.values_len_bytes, f.payload_slot, f.timestamp_ns, f.meta_version,
            dtype);
        for (int d = 0; tensor_ok && d < t.ndims; d++)
        {
            tp_strbuf_printf(b, "%s%" PRId32, d > 0 ? "," : "", t.dims[d]);
        }
        tp_strbuf_puts(b, "]}");
        return;
    }
    tp_strbuf_printf(b, "%-6" PRIu32 " %-12" PRIu64 " %-10s %-5u %-12" PRIu32 " %-8s ", index, word >> 1, state,
        f.pool_id, f.values_len_bytes, dtype);
    for (int d = 0; tensor_ok && d < t.ndims; d++)
    {
        tp_strbuf_printf(b, "%s%" PRId32, d > 0 ? "x" : "", t.dims[d]);
    }
    if (!tensor_ok && word != 0)
    {
        tp_strbuf_puts(b, "(no valid TensorHeader)");
    }
    tp_strbuf_putc(b, '\n');
}

/* One struct decoded by its schema as JSON (tp decode's form), or null with the reason. */
static void struct_json(tp_strbuf_t *b, const char *message, const uint8_t *data, size_t length)
{
    tp_sbe_msg_view_t view;
    const tp_sbe_message_meta_t *meta = tp_sbe_message_find_name(message);
    if (meta == NULL || tp_sbe_decode(&view, meta, data, length) < 0)
    {
        tp_strbuf_puts(b, "null,\"error\":");
        const char *why = meta == NULL ? "no such message" : tp_errmsg();
        tp_strbuf_json_string(b, why, strlen(why));
        return;
    }
    tp_sbe_to_json(b, &view);
}

/* One header slot in full: the summary's fields, the SlotHeader as its schema decodes it, and the embedded
 * TensorHeader (null with the reason when it does not decode). */
static void slot_full_json(tp_strbuf_t *b, const uint8_t *slot, uint32_t index)
{
    tp_strbuf_puts(b, "{\"summary\":");
    slot_summary(b, slot, index, true);
    tp_strbuf_puts(b, ",\"slot_header\":");
    struct_json(b, "SlotHeader", slot, TP_HEADER_SLOT_BYTES);
    tp_strbuf_puts(b, ",\"tensor_header\":");
    struct_json(b, "TensorHeader", slot + TP_SLOT_TENSOR_HEADER_OFFSET, TP_TENSOR_HEADER_BYTES);
    tp_strbuf_putc(b, '}');
}

static int inspect_parse(int argc, char **argv, inspect_opts_t *o)
{
    const char *cmd = "inspect";
    memset(o, 0, sizeof(*o));
    o->slot = -1;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            inspect_usage(stdout);
            return 1;
        }
        bool takes_value = strcmp(a, "--slot") == 0 || strcmp(a, "--expect-epoch") == 0 ||
                           strcmp(a, "--expect-stream") == 0 || strcmp(a, "--allowed-dirs") == 0;
        if (takes_value && i + 1 >= argc)
        {
            return tp_cli_fail(-1, cmd, "%s needs a value (see tp inspect --help)", a);
        }
        uint64_t v;
        if (strcmp(a, "--slots") == 0)
        {
            o->all_slots = true;
        }
        else if (strcmp(a, "--json") == 0)
        {
            o->json = true;
        }
        else if (strcmp(a, "--allowed-dirs") == 0)
        {
            o->allowed = argv[++i];
        }
        else if (strcmp(a, "--slot") == 0 || strcmp(a, "--expect-epoch") == 0 || strcmp(a, "--expect-stream") == 0)
        {
            if (tp_cli_parse_u64(argv[++i], 0, UINT64_MAX, &v) < 0)
            {
                return tp_cli_fail(-1, cmd, "%s: %s", a, tp_errmsg());
            }
            if (strcmp(a, "--slot") == 0)
            {
                o->slot = v < INSPECT_MAX_SLOTS ? (int64_t)v : INSPECT_MAX_SLOTS;
            }
            else if (strcmp(a, "--expect-epoch") == 0)
            {
                o->has_epoch = true;
                o->epoch = v;
            }
            else
            {
                o->has_stream = true;
                o->stream = v;
            }
        }
        else if (a[0] == '-')
        {
            return tp_cli_fail(-1, cmd, "unknown option '%s' (see tp inspect --help)", a);
        }
        else if (o->target == NULL)
        {
            o->target = a;
        }
        else
        {
            return tp_cli_fail(-1, cmd, "one region only ('%s' and '%s' given)", o->target, a);
        }
    }
    if (o->target == NULL)
    {
        inspect_usage(stderr);
        return -1;
    }
    if (o->all_slots && o->slot >= 0)
    {
        return tp_cli_fail(-1, cmd, "--slots and --slot are exclusive");
    }
    return 0;
}

/* Open the target read-only: through the containment rules when allowed dirs are given, else just without
 * following a final symlink. The file must be a regular file. */
static int inspect_open(const inspect_opts_t *o, char *path, size_t capacity, struct stat *st)
{
    if (target_path(o->target, path, capacity) < 0)
    {
        return -1;
    }
    int fd;
    if (o->allowed != NULL)
    {
        tp_shm_allowed_dirs_t allowed;
        if (allowed_init(&allowed, o->allowed) < 0)
        {
            return -1;
        }
        fd = tp_shm_open_contained(&allowed, path, O_RDONLY);
        tp_shm_allowed_dirs_fini(&allowed);
    }
    else
    {
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
        {
            TP_SET_ERR(TP_E_GENERIC, "cannot open %s: %s", path, strerror(errno));
        }
    }
    if (fd >= 0 && (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)))
    {
        TP_SET_ERR(TP_E_VALIDATION, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

int tp_cmd_inspect(int argc, char **argv)
{
    const char *cmd = "inspect";
    inspect_opts_t o;
    int rc = inspect_parse(argc, argv, &o);
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    char path[TP_PATH_MAX];
    struct stat st;
    int fd = inspect_open(&o, path, sizeof(path), &st);
    if (fd < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    uint8_t raw[TP_SUPERBLOCK_BYTES];
    if (st.st_size < TP_SUPERBLOCK_BYTES || pread(fd, raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
    {
        close(fd);
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: %lld bytes, too short for a 64-byte superblock", path,
            (long long)st.st_size);
    }
    tp_superblock_t sb;
    tp_superblock_read(raw, &sb);
    check_list_t checks;
    memset(&checks, 0, sizeof(checks));
    tp_strbuf_init(&checks.text);
    check_superblock(&checks, &sb, (uint64_t)st.st_size, &o);
    bool is_ring = sb.region_type == TP_REGION_HEADER_RING && checks.failures == 0;
    int status = checks.failures == 0 ? TP_EXIT_OK : TP_EXIT_FAILED;
    int64_t now = tp_clock_monotonic_ns();
    double activity_age = ((double)now - (double)sb.activity_timestamp_ns) / 1e9;
    double start_age = ((double)now - (double)sb.start_timestamp_ns) / 1e9;
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    if (o.json)
    {
        tp_strbuf_puts(&b, "{\"path\":");
        tp_strbuf_json_string(&b, path, strlen(path));
        tp_strbuf_printf(&b,
            ",\"file_bytes\":%lld,\"magic_ok\":%s,\"layout_version\":%" PRIu32 ",\"epoch\":%" PRIu64
            ",\"stream_id\":%" PRIu32 ",\"region_type\":\"%s\",\"pool_id\":%u,\"nslots\":%" PRIu32
            ",\"slot_bytes\":%" PRIu32 ",\"stride_bytes\":%" PRIu32 ",\"pid\":%" PRIu64 ",\"pid_running\":%s"
            ",\"start_age_s\":%.3f,\"activity_age_s\":%.3f,\"ok\":%s,\"problems\":",
            (long long)st.st_size, sb.magic == TP_SUPERBLOCK_MAGIC ? "true" : "false", sb.layout_version, sb.epoch,
            sb.stream_id, region_type_name(sb.region_type), sb.pool_id, sb.nslots, sb.slot_bytes, sb.stride_bytes,
            sb.pid, pid_is_running(sb.pid) ? "true" : "false", start_age, activity_age,
            checks.failures == 0 ? "true" : "false");
        tp_strbuf_json_string(&b, tp_strbuf_cstr(&checks.text), strlen(tp_strbuf_cstr(&checks.text)));
    }
    else
    {
        tp_strbuf_printf(&b, "region    %s (%s, %lld bytes)\n", path, region_type_name(sb.region_type),
            (long long)st.st_size);
        tp_strbuf_printf(&b, "layout    magic %s, version %" PRIu32 "\n",
            sb.magic == TP_SUPERBLOCK_MAGIC ? "TPOLSHM1" : "WRONG", sb.layout_version);
        tp_strbuf_printf(&b, "stream    %" PRIu32 ", epoch %" PRIu64 ", pool %u\n", sb.stream_id, sb.epoch, sb.pool_id);
        tp_strbuf_printf(&b, "slots     %" PRIu32 " x %" PRIu32 " bytes (stride %" PRIu32 ")\n", sb.nslots,
            sb.slot_bytes, sb.stride_bytes);
        tp_strbuf_printf(&b, "writer    pid %" PRIu64 " (%s), started %.1f s ago, last activity %.1f s ago\n",
            sb.pid, pid_is_running(sb.pid) ? "running" : "not running", start_age, activity_age);
        tp_strbuf_printf(&b, "checks    %s%s\n", checks.failures == 0 ? "ok" : "FAILED: ",
            tp_strbuf_cstr(&checks.text));
    }
    if ((o.all_slots || o.slot >= 0) && !is_ring)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s: slots are listed for a valid header ring only", path);
    }
    else if (o.slot >= 0 && (uint64_t)o.slot >= sb.nslots)
    {
        status = tp_cli_fail(TP_EXIT_USAGE, cmd, "slot %" PRId64 " is outside the ring's %" PRIu32 " slots", o.slot,
            sb.nslots);
    }
    else if (o.all_slots || o.slot >= 0)
    {
        uint32_t first = o.slot >= 0 ? (uint32_t)o.slot : 0;
        uint32_t count = o.slot >= 0 ? 1 : (sb.nslots < INSPECT_MAX_SLOTS ? sb.nslots : INSPECT_MAX_SLOTS);
        if (!o.json && o.slot < 0)
        {
            tp_strbuf_printf(&b, "\n%-6s %-12s %-10s %-5s %-12s %-8s %s\n", "SLOT", "SEQ", "STATE", "POOL", "LENGTH",
                "DTYPE", "DIMS");
        }
        else
        {
            tp_strbuf_puts(&b, ",\"slots\":[");
        }
        for (uint32_t i = first; i < first + count; i++)
        {
            uint8_t slot[TP_HEADER_SLOT_BYTES];
            if (pread(fd, slot, sizeof(slot), TP_SUPERBLOCK_BYTES + (off_t)i * TP_HEADER_SLOT_BYTES) !=
                (ssize_t)sizeof(slot))
            {
                status = tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: cannot read slot %" PRIu32, path, i);
                break;
            }
            if (o.json && i > first)
            {
                tp_strbuf_putc(&b, ',');
            }
            if (o.slot >= 0)
            {
                tp_strbuf_t one;
                tp_strbuf_init(&one);
                slot_full_json(&one, slot, i);
                if (o.json)
                {
                    tp_strbuf_puts(&b, tp_strbuf_cstr(&one));
                }
                else
                {
                    tp_strbuf_putc(&b, '\n');
                    tp_json_pretty(&b, tp_strbuf_cstr(&one));
                    tp_strbuf_putc(&b, '\n');
                }
                tp_strbuf_fini(&one);
                continue;
            }
            slot_summary(&b, slot, i, o.json);
        }
        if (o.json)
        {
            tp_strbuf_putc(&b, ']');
        }
    }
    if (o.json)
    {
        tp_strbuf_puts(&b, "}\n");
    }
    fputs(tp_strbuf_cstr(&b), stdout);
    tp_strbuf_fini(&b);
    tp_strbuf_fini(&checks.text);
    close(fd);
    return status;
}

int tp_cmd_validate_uri(int argc, char **argv)
{
    const char *cmd = "validate-uri";
    const char *uri_text = NULL;
    const char *allowed_list = NULL;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            validate_usage(stdout);
            return TP_EXIT_OK;
        }
        if (strcmp(argv[i], "--allowed-dirs") == 0)
        {
            if (i + 1 >= argc)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "--allowed-dirs needs a value");
            }
            allowed_list = argv[++i];
        }
        else if (argv[i][0] == '-')
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp validate-uri --help)", argv[i]);
        }
        else if (uri_text == NULL)
        {
            uri_text = argv[i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "one URI only");
        }
    }
    if (uri_text == NULL)
    {
        validate_usage(stderr);
        return TP_EXIT_USAGE;
    }
    if (allowed_list == NULL)
    {
        allowed_list = getenv("TP_ALLOWED_BASE_DIRS") != NULL ? getenv("TP_ALLOWED_BASE_DIRS") : "/dev/shm";
    }
    tp_shm_allowed_dirs_t allowed;
    if (allowed_init(&allowed, allowed_list) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "allowed directories: %s", tp_errmsg());
    }
    tp_region_uri_t uri;
    char canonical[TP_PATH_MAX];
    struct stat st;
    int status = TP_EXIT_OK;
    if (tp_region_uri_parse(&uri, uri_text, strlen(uri_text)) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "refused: %s", tp_errmsg());
    }
    else if (tp_shm_path_check(&allowed, uri.path, canonical, &st) < 0)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "refused: %s", tp_errmsg());
    }
    else
    {
        printf("valid: %s (%lld bytes%s) inside %s\n", canonical, (long long)st.st_size,
            uri.require_hugepages ? ", hugepages required" : "", allowed_list);
    }
    tp_shm_allowed_dirs_fini(&allowed);
    return status;
}
