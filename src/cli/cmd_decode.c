/* `tp decode` and `tp encode`: SBE messages and SHM structs to and from JSON. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_json.h"
#include "wire/tp_sbe.h"

#define DECODE_MAX_INPUT (64u << 20)

static void decode_usage(FILE *out)
{
    fprintf(out,
        "usage: tp decode [--schema auto|ID|NAME] [--offset N] [--pretty] [--lenient] FILE|-\n"
        "       tp decode --shm superblock|slot|tensor [--offset N] [--pretty] FILE|-\n\n"
        "Print one SBE message (schemas wire 900, driver 901, bridge 902, merge 903, tracelink 904,\n"
        "discovery 910) or one shared-memory struct as JSON: schema_id, template_id, message, version,\n"
        "block_length, framing, length, fields (and `embedded` for a slot's TensorHeader).\n\n"
        "options:\n"
        "  --schema S     accept only messages of schema S (900, wire, driver, ...); default auto\n"
        "  --shm KIND     decode a header-less SHM struct: superblock (64 bytes), slot (256 bytes),\n"
        "                 tensor (a 192-byte TensorHeader message)\n"
        "  --offset N     start N bytes into the input (e.g. --shm slot --offset 320 for slot 1 of a ring)\n"
        "  --pretty       indent the JSON\n"
        "  --lenient      print enum fields that hold unknown values instead of failing\n\n"
        "examples:\n"
        "  tp decode shm_pool_announce.bin\n"
        "  tp decode --shm superblock /dev/shm/tensorpool-$USER/default/10000/1/header.ring\n"
        "  tp decode --shm slot --offset 64 --pretty header.ring\n\n"
        "exit status: 0 decoded; 2 unknown schema or template, truncated or malformed input, trailing bytes.\n");
}

static const tp_sbe_message_meta_t *decode_pick(const char *cmd, const char *schema_opt, const char *shm_kind,
    const uint8_t *data, size_t length, int *status)
{
    *status = TP_EXIT_USAGE;
    if (shm_kind != NULL)
    {
        const char *name = strcmp(shm_kind, "superblock") == 0 ? "ShmRegionSuperblock"
                           : strcmp(shm_kind, "slot") == 0     ? "SlotHeader"
                           : strcmp(shm_kind, "tensor") == 0   ? "TensorHeader"
                                                               : NULL;
        if (name == NULL)
        {
            tp_cli_fail(TP_EXIT_USAGE, cmd, "--shm takes superblock, slot or tensor, not '%s'", shm_kind);
            return NULL;
        }
        return tp_sbe_message_find_name(name);
    }
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, data, length) < 0)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
        return NULL;
    }
    if (schema_opt != NULL && strcmp(schema_opt, "auto") != 0)
    {
        const tp_sbe_schema_meta_t *want = NULL;
        uint64_t id;
        for (size_t i = 0; i < tp_sbe_schema_count && want == NULL; i++)
        {
            if (strcmp(tp_sbe_schemas[i]->name, schema_opt) == 0 ||
                (tp_cli_parse_u64(schema_opt, 0, 65535, &id) == 0 && tp_sbe_schemas[i]->id == id))
            {
                want = tp_sbe_schemas[i];
            }
        }
        if (want == NULL)
        {
            tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown schema '%s' (use auto, 900-904, 910 or a name)", schema_opt);
            return NULL;
        }
        if (want->id != h.schema_id)
        {
            tp_cli_fail(TP_EXIT_USAGE, cmd, "the message is of schema %u, not %u (%s)", h.schema_id, want->id,
                want->name);
            return NULL;
        }
    }
    if (tp_sbe_schema_find(h.schema_id) == NULL)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown schema id %u (template %u, %zu bytes)", h.schema_id, h.template_id,
            length);
        return NULL;
    }
    const tp_sbe_message_meta_t *meta = tp_sbe_message_find(h.schema_id, h.template_id);
    if (meta == NULL || meta->is_headerless)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "schema %u has no message with template id %u", h.schema_id,
            h.template_id);
        return NULL;
    }
    *status = TP_EXIT_OK;
    return meta;
}

int tp_cmd_decode(int argc, char **argv)
{
    const char *cmd = "decode";
    const char *schema_opt = NULL;
    const char *shm_kind = NULL;
    const char *path = NULL;
    uint64_t offset = 0;
    int pretty = 0;
    int lenient = 0;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            decode_usage(stdout);
            return TP_EXIT_OK;
        }
        if ((strcmp(argv[i], "--schema") == 0 || strcmp(argv[i], "--shm") == 0 || strcmp(argv[i], "--offset") == 0) &&
            i + 1 >= argc)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s needs a value (see tp decode --help)", argv[i]);
        }
        if (strcmp(argv[i], "--schema") == 0)
        {
            schema_opt = argv[++i];
        }
        else if (strcmp(argv[i], "--shm") == 0)
        {
            shm_kind = argv[++i];
        }
        else if (strcmp(argv[i], "--offset") == 0)
        {
            if (tp_cli_parse_u64(argv[++i], 0, DECODE_MAX_INPUT, &offset) < 0)
            {
                return tp_cli_fail(TP_EXIT_USAGE, cmd, "--offset: %s", tp_errmsg());
            }
        }
        else if (strcmp(argv[i], "--pretty") == 0)
        {
            pretty = 1;
        }
        else if (strcmp(argv[i], "--lenient") == 0)
        {
            lenient = 1;
        }
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp decode --help)", argv[i]);
        }
        else if (path == NULL)
        {
            path = argv[i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "one input only ('%s' and '%s' given)", path, argv[i]);
        }
    }
    if (path == NULL)
    {
        decode_usage(stderr);
        return TP_EXIT_USAGE;
    }
    uint8_t *data = NULL;
    size_t length = 0;
    /* An SHM struct is a small prefix of a possibly huge region file: read only the part that is needed. */
    if (shm_kind != NULL && strcmp(path, "-") != 0)
    {
        FILE *f = fopen(path, "rb");
        if (f == NULL || fseek(f, (long)offset, SEEK_SET) != 0 || tp_alloc((void **)&data, 4096) < 0)
        {
            if (f != NULL)
            {
                fclose(f);
            }
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "cannot read '%s' at offset %" PRIu64, path, offset);
        }
        length = fread(data, 1, 4096, f);
        fclose(f);
        offset = 0;
    }
    else if (tp_fs_read_file(path, DECODE_MAX_INPUT, &data, &length) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    int status = TP_EXIT_USAGE;
    if (offset > length)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "--offset %" PRIu64 " is past the end of the input (%zu bytes)", offset,
            length);
        goto done;
    }
    const uint8_t *msg = data + offset;
    size_t msg_length = length - (size_t)offset;
    const tp_sbe_message_meta_t *meta = decode_pick(cmd, schema_opt, shm_kind, msg, msg_length, &status);
    if (meta == NULL)
    {
        goto done;
    }
    status = TP_EXIT_USAGE;
    tp_sbe_msg_view_t view;
    if (tp_sbe_decode(&view, meta, msg, msg_length) < 0)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
        goto done;
    }
    if (shm_kind == NULL && view.encoded_length != msg_length)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%zu trailing bytes after the %zu-byte %s", msg_length - view.encoded_length,
            view.encoded_length, meta->name);
        goto done;
    }
    if (!lenient && tp_sbe_check_enums(&view) < 0)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%s (use --lenient to print it anyway)", tp_errmsg());
        goto done;
    }
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_sbe_to_json(&out, &view);
    if (pretty)
    {
        tp_strbuf_t p;
        tp_strbuf_init(&p);
        tp_json_pretty(&p, tp_strbuf_cstr(&out));
        puts(tp_strbuf_cstr(&p));
        tp_strbuf_fini(&p);
    }
    else
    {
        puts(tp_strbuf_cstr(&out));
    }
    tp_strbuf_fini(&out);
    status = TP_EXIT_OK;
done:
    tp_free(data);
    return status;
}

static void encode_usage(FILE *out)
{
    fprintf(out,
        "usage: tp encode [--message NAME] [-o FILE] JSON|-\n\n"
        "Encode one message from JSON and write its bytes (to stdout unless -o is given). The JSON is either\n"
        "what `tp decode` prints (the message is taken from its \"message\" member and the values from\n"
        "\"fields\") or a bare fields object with --message NAME (ShmPoolAnnounce or shm_pool_announce).\n\n"
        "examples:\n"
        "  tp decode frame.bin > frame.json && tp encode -o again.bin frame.json && cmp frame.bin again.bin\n"
        "  echo '{\"correlationId\":7,\"code\":\"OK\",\"errorMessage\":\"\"}' "
        "| tp encode --message ControlResponse - | tp decode -\n\n"
        "exit status: 0 encoded; 2 bad JSON, unknown message or field, value out of range.\n");
}

int tp_cmd_encode(int argc, char **argv)
{
    const char *cmd = "encode";
    const char *message = NULL;
    const char *out_path = NULL;
    const char *path = NULL;
    for (int i = 1; i < argc; i++)
    {
        if (tp_cli_is_help(argv[i]))
        {
            encode_usage(stdout);
            return TP_EXIT_OK;
        }
        if ((strcmp(argv[i], "--message") == 0 || strcmp(argv[i], "-o") == 0) && i + 1 >= argc)
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s needs a value", argv[i]);
        }
        if (strcmp(argv[i], "--message") == 0)
        {
            message = argv[++i];
        }
        else if (strcmp(argv[i], "-o") == 0)
        {
            out_path = argv[++i];
        }
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp encode --help)", argv[i]);
        }
        else if (path == NULL)
        {
            path = argv[i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "one input only");
        }
    }
    if (path == NULL)
    {
        encode_usage(stderr);
        return TP_EXIT_USAGE;
    }
    uint8_t *text = NULL;
    size_t length = 0;
    if (tp_fs_read_file(path, DECODE_MAX_INPUT, &text, &length) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
    }
    tp_json_t *root = NULL;
    uint8_t *buffer = NULL;
    int status = TP_EXIT_USAGE;
    if (tp_json_parse(&root, (const char *)text, length) < 0)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%s: %s", path, tp_errmsg());
        goto done;
    }
    const tp_json_t *fields = root;
    if (message == NULL)
    {
        const tp_json_t *m = tp_json_get(root, "message");
        fields = tp_json_get(root, "fields");
        if (m == NULL || m->type != TP_JSON_STRING || fields == NULL)
        {
            tp_cli_fail(TP_EXIT_USAGE, cmd, "the JSON has no \"message\" and \"fields\"; pass --message NAME");
            goto done;
        }
        message = m->text;
    }
    const tp_sbe_message_meta_t *meta = tp_sbe_message_find_name(message);
    if (meta == NULL)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown message '%s'", message);
        goto done;
    }
    size_t cap = length + 4096;
    if (tp_alloc((void **)&buffer, cap) < 0)
    {
        goto done;
    }
    int64_t n = tp_sbe_from_json(meta, fields, buffer, cap);
    if (n < 0)
    {
        tp_cli_fail(TP_EXIT_USAGE, cmd, "%s", tp_errmsg());
        goto done;
    }
    FILE *out = out_path != NULL ? fopen(out_path, "wb") : stdout;
    if (out == NULL || fwrite(buffer, 1, (size_t)n, out) != (size_t)n)
    {
        tp_cli_fail(TP_EXIT_FAILED, cmd, "cannot write %s", out_path != NULL ? out_path : "stdout");
        status = TP_EXIT_FAILED;
    }
    else
    {
        status = TP_EXIT_OK;
    }
    if (out != NULL && out != stdout)
    {
        fclose(out);
    }
done:
    tp_json_free(root);
    tp_free(buffer);
    tp_free(text);
    return status;
}
