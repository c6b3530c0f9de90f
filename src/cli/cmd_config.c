/* `tp config`: TOML and service configuration tools. */
#include <stdio.h>
#include <string.h>

#include "bridge/tp_bridge_config.h"
#include "client/tp_client_internal.h"
#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_fs.h"
#include "core/tp_toml.h"
#include "discovery/tp_discovery_config.h"
#include "driver/tp_driver_config.h"
#include "ratelimit/tp_ratelimit_config.h"

#define CONFIG_MAX_BYTES (16u << 20)

static void config_usage(FILE *out)
{
    fprintf(out,
        "usage: tp config check FILE [--kind driver|bridge|rate_limiter|discovery]\n"
        "       tp config dump FILE [--kind ...] [--json]\n"
        "       tp config toml-json FILE|-\n"
        "       tp config docs\n\n"
        "  check       validate a service configuration: print a one-line summary (exit 0), or every error with\n"
        "              FILE:LINE, key and reason (exit 1). Unknown keys are warnings naming key and line.\n"
        "  dump        print the effective configuration: defaults, then FILE, then environment overrides\n"
        "              (each key's variable is TP_ and the key upper-cased with '.' -> '_', e.g.\n"
        "              TP_DRIVER_CONTROL_STREAM_ID; the older name without TP_ still works, with a warning)\n"
        "  docs        print the reference of every key (docs/CONFIG.md is this output)\n"
        "  toml-json   parse a TOML 1.0 document and print it as toml-test's tagged JSON\n"
        "              ({\"type\": ..., \"value\": ...} leaves); exit 1 with FILE:LINE:COLUMN and the reason\n"
        "              when the document is invalid.\n\n"
        "The kind is taken from the file ([bridge], [rate_limiter], [[drivers]] for a discovery registry,\n"
        "otherwise a driver) unless --kind says it.\n\n"
        "examples:\n"
        "  tp config check config/driver.toml\n"
        "  TP_DRIVER_CONTROL_STREAM_ID=1500 tp config dump config/driver.toml --json\n"
        "  tp config toml-json config/driver.toml\n"
        "  echo 'a = 1979-05-27T07:32:00Z' | tp config toml-json -\n\n"
        "exit status: 0 valid; 1 invalid document or configuration; 2 usage error or unreadable file.\n");
}

static int config_toml_json(int argc, char **argv)
{
    if (argc != 2)
    {
        config_usage(stderr);
        return TP_EXIT_USAGE;
    }
    const char *path = argv[1];
    uint8_t *text = NULL;
    size_t length = 0;
    if (tp_fs_read_file(path, CONFIG_MAX_BYTES, &text, &length) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "config", "%s", tp_errmsg());
    }
    tp_toml_value_t *doc = NULL;
    int status = TP_EXIT_OK;
    if (tp_toml_parse(&doc, (const char *)text, length, strcmp(path, "-") == 0 ? "<stdin>" : path) < 0)
    {
        fprintf(stderr, "%s\n", tp_errmsg());
        status = TP_EXIT_FAILED;
    }
    else
    {
        tp_strbuf_t out;
        tp_strbuf_init(&out);
        tp_toml_to_tagged_json(&out, doc);
        puts(tp_strbuf_cstr(&out));
        tp_strbuf_fini(&out);
    }
    tp_toml_free(doc);
    tp_free(text);
    return status;
}

typedef enum config_kind
{
    KIND_AUTO,
    KIND_DRIVER,
    KIND_BRIDGE,
    KIND_RATE_LIMITER,
    KIND_DISCOVERY,
} config_kind_t;

static const char *kind_names[] = { "auto", "driver", "bridge", "rate_limiter", "discovery" };

static config_kind_t config_detect(const tp_toml_value_t *doc)
{
    if (tp_toml_get(doc, "bridge") != NULL)
    {
        return KIND_BRIDGE;
    }
    if (tp_toml_get(doc, "rate_limiter") != NULL)
    {
        return KIND_RATE_LIMITER;
    }
    if (tp_toml_get(doc, "drivers") != NULL)
    {
        return KIND_DISCOVERY;
    }
    return KIND_DRIVER;
}

/* All four configurations, loaded by kind into one buffer. */
typedef union config_any
{
    tp_driver_config_t driver;
    tp_bridge_config_t bridge;
    tp_ratelimit_config_t ratelimit;
    tp_discovery_config_t discovery;
} config_any_t;

static int config_load(config_kind_t kind, config_any_t *c, const tp_toml_value_t *doc, tp_config_report_t *r)
{
    switch (kind)
    {
    case KIND_BRIDGE: return tp_bridge_config_load(&c->bridge, doc, r);
    case KIND_RATE_LIMITER: return tp_ratelimit_config_load(&c->ratelimit, doc, r);
    case KIND_DISCOVERY: return tp_discovery_config_load(&c->discovery, doc, r);
    default: return tp_driver_config_load(&c->driver, doc, r);
    }
}

static void config_summary(config_kind_t kind, const config_any_t *c, char *out, size_t cap)
{
    switch (kind)
    {
    case KIND_BRIDGE:
        snprintf(out, cap, "bridge '%s', %u mapping(s), %u payload bytes per chunk", c->bridge.instance_id,
            c->bridge.mapping_count, tp_bridge_config_chunk_bytes(&c->bridge));
        break;
    case KIND_RATE_LIMITER:
        snprintf(out, cap, "rate limiter '%s', %u mapping(s)", c->ratelimit.instance_id, c->ratelimit.mapping_count);
        break;
    case KIND_DISCOVERY:
        snprintf(out, cap, "discovery registry '%s' on %s stream %u, %u driver(s)", c->discovery.instance_id,
            c->discovery.channel, c->discovery.stream_id, c->discovery.driver_count);
        break;
    default:
        snprintf(out, cap, "driver '%s', %u profile(s), %u stream(s), control %s stream %u", c->driver.instance_id,
            c->driver.profile_count, c->driver.stream_count, c->driver.control_channel, c->driver.control_stream_id);
        break;
    }
}

/* check and dump */
static int config_service(int argc, char **argv, bool is_dump)
{
    const char *path = NULL;
    config_kind_t kind = KIND_AUTO;
    bool json = false;
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "--json") == 0 && is_dump)
        {
            json = true;
        }
        else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc)
        {
            const char *k = argv[++i];
            kind = KIND_AUTO;
            for (int n = 1; n < 5; n++)
            {
                if (strcmp(k, kind_names[n]) == 0)
                {
                    kind = (config_kind_t)n;
                }
            }
            if (kind == KIND_AUTO)
            {
                return tp_cli_fail(TP_EXIT_USAGE, "config", "--kind takes driver, bridge, rate_limiter or discovery");
            }
        }
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
        {
            return tp_cli_fail(TP_EXIT_USAGE, "config", "unknown option '%s' (see tp config --help)", argv[i]);
        }
        else if (path == NULL)
        {
            path = argv[i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, "config", "one file only");
        }
    }
    if (path == NULL)
    {
        config_usage(stderr);
        return TP_EXIT_USAGE;
    }
    uint8_t *text = NULL;
    size_t length = 0;
    if (tp_fs_read_file(path, CONFIG_MAX_BYTES, &text, &length) < 0)
    {
        return tp_cli_fail(TP_EXIT_USAGE, "config", "%s", tp_errmsg());
    }
    tp_toml_value_t *doc = NULL;
    config_any_t *c = NULL;
    int status = TP_EXIT_FAILED;
    if (tp_toml_parse(&doc, (const char *)text, length, path) < 0)
    {
        fprintf(stderr, "%s\n", tp_errmsg());
        goto done;
    }
    if (tp_alloc((void **)&c, sizeof(*c)) < 0)
    {
        goto done;
    }
    if (kind == KIND_AUTO)
    {
        kind = config_detect(doc);
    }
    tp_config_report_t report;
    tp_config_report_init(&report, path);
    int rc = config_load(kind, c, doc, &report);
    fputs(tp_strbuf_cstr(&report.warnings), stderr);
    if (rc < 0)
    {
        fputs(tp_strbuf_cstr(&report.errors), stderr);
        fprintf(stderr, "%s: %zu error(s) in this %s configuration\n", path, report.error_count, kind_names[kind]);
    }
    else if (is_dump)
    {
        tp_strbuf_t out;
        tp_strbuf_init(&out);
        switch (kind)
        {
        case KIND_BRIDGE: tp_bridge_config_dump(&c->bridge, &out, json); break;
        case KIND_RATE_LIMITER: tp_ratelimit_config_dump(&c->ratelimit, &out, json); break;
        case KIND_DISCOVERY: tp_discovery_config_dump(&c->discovery, &out, json); break;
        default: tp_driver_config_dump(&c->driver, &out, json); break;
        }
        fputs(tp_strbuf_cstr(&out), stdout);
        if (json)
        {
            fputc('\n', stdout);
        }
        tp_strbuf_fini(&out);
        status = TP_EXIT_OK;
    }
    else
    {
        char summary[1024];
        config_summary(kind, c, summary, sizeof(summary));
        printf("%s: OK: %s%s\n", path, summary,
            report.warning_count > 0 ? " (with warnings, see above)" : "");
        status = TP_EXIT_OK;
    }
    tp_config_report_fini(&report);
done:
    tp_free(c);
    tp_toml_free(doc);
    tp_free(text);
    return status;
}

static void docs_table(tp_strbuf_t *out, const tp_config_field_t *fields, size_t count)
{
    static const char *const kinds[] = { "string", "bool", "u16", "u32", "u64", "octal string", "range",
        "string array" };
    tp_strbuf_puts(out, "| key | type | default | environment | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < count; i++)
    {
        const tp_config_field_t *f = &fields[i];
        char env[128];
        tp_config_env_name(f->key, env, sizeof(env));
        const char *def = f->default_text;
        tp_strbuf_printf(out, "| `%s` | %s | %s%s%s | `%s` | %s%s |\n", f->key, kinds[f->kind],
            def == NULL ? "derived" : def[0] == '\0' ? "empty" : "`",
            def == NULL || def[0] == '\0' ? "" : def, def == NULL || def[0] == '\0' ? "" : "`", env,
            f->is_required ? "**required**; " : "", f->help);
    }
}

/* docs/CONFIG.md is this output: one set of rows drives loading, dumping and the reference. */
static int config_docs(void)
{
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_strbuf_puts(&out,
        "# Configuration reference\n\n"
        "Generated by `tp config docs` from the same tables that load, check and dump configurations; a test keeps\n"
        "this file equal to that output.\n\n"
        "Every service reads its settings in this order, later ones winning: the defaults below, the TOML file,\n"
        "then environment variables (`TP_` and the key upper-cased with `.` replaced by `_`, as in the table; the\n"
        "older names without `TP_` still work and print a warning). Check a file with\n"
        "`tp config check FILE` (a summary, or every error with FILE:LINE, key and reason; unknown keys are\n"
        "warnings) and see the effective values with `tp config dump FILE [--json]`. Examples are in `config/`.\n\n"
        "Types: a range is `\"start-end\"` or `[start, end]` (inclusive); an octal string is a POSIX mode such as\n"
        "`\"660\"` or `\"2770\"`; a string array may be given in the environment comma-separated.\n\n"
        "## Driver\n\n");
    docs_table(&out, tp_driver_config_fields, tp_driver_config_field_count);
    tp_strbuf_puts(&out,
        "\n`[profiles.<name>]` (at least one): `header_nslots` (u32, power of two, default `1024`) and\n"
        "`payload_pools`, an array of `{ pool_id = u16, stride_bytes = u32 }` (at least one; pool ids unique in the\n"
        "profile; strides are power-of-two multiples of 64).\n\n"
        "`[streams.<name>]`: `stream_id` (u32), `profile` (a defined profile) and optionally `tags` (up to 16 strings\n"
        "of 1-63 printable characters without commas, for discovery; a producer's own `tags` metadata replaces them).\n"
        "Required for every stream unless\n"
        "`policies.allow_dynamic_streams` is true. Stream ids must be unique and must not be a control-plane id.\n\n"
        "`[[supervisor_rules]]` (read when `supervisor.enabled`): "
        "`mode` (`\"STREAM\"` or `\"RATE_LIMITED\"`, required),\n"
        "`stream_id` (u32, `0` or absent: any stream), `data_source` (the stream's DataSourceAnnounce name, absent:\n"
        "any), `payload_fallback_uri` (a channel such as `aeron:udp?endpoint=HOST:PORT`, or `bridge://ID`; anything\n"
        "else loads with a warning). The first rule a consumer's stream matches is sent to it in a\n"
        "ConsumerConfig whenever it says hello.\n\n"
        "The three id ranges must not overlap each other, the control, announce, QoS or metadata stream ids, or any\n"
        "static stream id. `shm.base_dir` here is the directory that holds `tensorpool-$USER/` (the spec's example\n"
        "default `/dev/shm/tensorpool` would nest it one level deeper).\n\n"
        "## Bridge\n\n");
    docs_table(&out, tp_bridge_config_fields, tp_bridge_config_field_count);
    tp_strbuf_puts(&out,
        "\n`[[mappings]]` (at least one): `source_stream_id` (u32), `dest_stream_id` (u32; `0`: the receiving end takes\n"
        "the first id of `bridge.dest_stream_id_range` its driver grants), `direction` (`\"send\"`: this host reads\n"
        "the source; `\"receive\"`: this host produces the destination; default `bridge.direction`, which `tp bridge\n"
        "--direction` sets, so one file serves both hosts), `profile` (string, informational: the destination's pools\n"
        "are those its driver gives `dest_stream_id`), `metadata_stream_id` (default: `dest_stream_id`),\n"
        "`source_control_stream_id` and `dest_control_stream_id` (FrameProgress and QoS, read on the sending host's\n"
        "control channel and republished on the receiving host's; default `0`: not forwarded),\n"
        "`source_qos_stream_id` and `dest_qos_stream_id` (QoS alone; default: the control ids, as the spec has it;\n"
        "our clients publish QoS on 1200). The effective chunk size is `min(chunk_bytes, mtu_bytes - 128)` (or\n"
        "`mtu_bytes - 128` when unset), at most `max_chunk_bytes`.\n\n"
        "Fail-fast rules: `dest_stream_id_range` must not contain the bridge's control or metadata ids nor any id a\n"
        "mapping names; no source stream in two mappings; no destination received twice; no stream both received and\n"
        "sent by one instance (a feedback loop); `forward_progress` needs both control ids on every mapping.\n"
        "`forward_metadata` defaults to true and `metadata_channel` to empty: left at the default, metadata is not\n"
        "forwarded (a warning says so); set to true explicitly without a channel, it is an error, as is\n"
        "`forward_tracelink = true` without one.\n\n"
        "## Rate limiter\n\n");
    docs_table(&out, tp_ratelimit_config_fields, tp_ratelimit_config_field_count);
    tp_strbuf_puts(&out,
        "\n`[[mappings]]` (at least one): `source_stream_id`, `dest_stream_id` (different), `max_rate_hz` (default:\n"
        "`rate_limiter.max_rate_hz`), `metadata_stream_id` (default: `dest_stream_id`). Forwarding progress or QoS\n"
        "with a zero source or destination stream id is an error: forwarding never starts half-configured.\n\n"
        "## Discovery registry\n\n");
    docs_table(&out, tp_discovery_config_fields, tp_discovery_config_field_count);
    tp_strbuf_puts(&out,
        "\n`[[drivers]]` (at least one): `instance_id` (required, unique), `control_channel` (default\n"
        "`aeron:ipc?term-length=4m`), `control_stream_id` (`1000`), `announce_channel` / `announce_stream_id`\n"
        "(default: the control channel and id), `metadata_channel` (default: the control channel) and\n"
        "`metadata_stream_id` (`1300`). A driver configuration may also hold a `[discovery]` table: it configures\n"
        "the provider embedded in that driver (see the driver table above).\n\n"
        "## Clients (producers and consumers)\n\n"
        "A client context (`tp_client_context_init`, the Python binding, and every `tp` command that produces or\n"
        "consumes) reads no file: these are its defaults, which the environment overrides and\n"
        "`tp_client_context_set(ctx, key, value)` (or the binding's keyword arguments) override in turn.\n\n");
    docs_table(&out, tp_client_config_fields, tp_client_config_field_count);
    fputs(tp_strbuf_cstr(&out), stdout);
    tp_strbuf_fini(&out);
    return TP_EXIT_OK;
}

int tp_cmd_config(int argc, char **argv)
{
    if (argc < 2 || tp_cli_is_help(argv[1]))
    {
        config_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TP_EXIT_USAGE : TP_EXIT_OK;
    }
    if ((strcmp(argv[1], "check") == 0 || strcmp(argv[1], "dump") == 0) && argc >= 3 && tp_cli_is_help(argv[2]))
    {
        config_usage(stdout);
        return TP_EXIT_OK;
    }
    if (strcmp(argv[1], "docs") == 0)
    {
        return config_docs();
    }
    if (strcmp(argv[1], "check") == 0)
    {
        return config_service(argc - 1, argv + 1, false);
    }
    if (strcmp(argv[1], "dump") == 0)
    {
        return config_service(argc - 1, argv + 1, true);
    }
    if (strcmp(argv[1], "toml-json") == 0)
    {
        if (argc >= 3 && tp_cli_is_help(argv[2]))
        {
            config_usage(stdout);
            return TP_EXIT_OK;
        }
        return config_toml_json(argc - 1, argv + 1);
    }
    tp_cli_fail(TP_EXIT_USAGE, "config", "unknown subcommand '%s'", argv[1]);
    config_usage(stderr);
    return TP_EXIT_USAGE;
}
