/* `tp config`: TOML and service configuration tools. */
#include <stdio.h>
#include <string.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_err.h"
#include "core/tp_toml.h"

#define CONFIG_MAX_BYTES (16u << 20)

static void config_usage(FILE *out)
{
    fprintf(out,
        "usage: tp config toml-json FILE|-\n\n"
        "  toml-json   parse a TOML 1.0 document and print it as toml-test's tagged JSON\n"
        "              ({\"type\": ..., \"value\": ...} leaves); exit 1 with FILE:LINE:COLUMN and the reason\n"
        "              when the document is invalid.\n\n"
        "examples:\n"
        "  tp config toml-json config/driver.toml\n"
        "  echo 'a = 1979-05-27T07:32:00Z' | tp config toml-json -\n\n"
        "exit status: 0 valid; 1 invalid document; 2 usage error or unreadable file.\n");
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
    if (tp_cli_read_file(path, CONFIG_MAX_BYTES, &text, &length) < 0)
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

int tp_cmd_config(int argc, char **argv)
{
    if (argc < 2 || tp_cli_is_help(argv[1]))
    {
        config_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? TP_EXIT_USAGE : TP_EXIT_OK;
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
