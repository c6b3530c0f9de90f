/* Status files of the long-running services; see tp_cli_status.h. */
#include "cli/tp_cli_status.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "cli/tp_cli.h"
#include "core/tp_alloc.h"
#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "tensorpool/tp_bus.h"

#define MAX_REPORT_BYTES (1u << 20)

void tp_cli_status_path(char *out, size_t capacity, const char *bus_dir, const char *kind, const char *instance_id)
{
    out[0] = '\0';
    tp_bus_t *bus = NULL;
    if (tp_bus_init_existing(&bus, bus_dir != NULL && bus_dir[0] != '\0' ? bus_dir : NULL) == 0)
    {
        snprintf(out, capacity, "%s/%s-%s.json", tp_bus_dir(bus), kind, instance_id);
        tp_bus_close(bus);
    }
}

void tp_cli_status_write(const char *path, const tp_strbuf_t *json)
{
    char tmp[4096 + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
    {
        return;
    }
    fputs(tp_strbuf_cstr(json), f);
    if (fclose(f) == 0)
    {
        rename(tmp, path);
    }
}

uint64_t tp_cli_json_u64(const tp_json_t *o, const char *key)
{
    uint64_t v = 0;
    const tp_json_t *n = tp_json_get(o, key);
    if (n != NULL)
    {
        tp_json_to_u64(n, &v);
    }
    return v;
}

int64_t tp_cli_status_age_ms(const tp_json_t *report)
{
    return ((int64_t)tp_clock_realtime_ns() - (int64_t)tp_cli_json_u64(report, "time_ns")) / TP_NS_PER_MS;
}

static int print_file(const char *path, bool json, tp_cli_status_printer_t print)
{
    uint8_t *text = NULL;
    size_t length = 0;
    tp_json_t *root = NULL;
    int rc = -1;
    if (tp_fs_read_file(path, MAX_REPORT_BYTES, &text, &length) == 0 &&
        tp_json_parse(&root, (const char *)text, length) == 0 && tp_json_get(root, "mappings") != NULL)
    {
        rc = print(root, (const char *)text, length, json);
    }
    tp_json_free(root);
    tp_free(text);
    return rc;
}

int tp_cli_status_main(const char *kind, int argc, char **argv, tp_cli_status_printer_t print)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "%s status", kind);
    const char *bus_dir = NULL;
    bool json = false;
    for (int i = 2; i < argc; i++)
    {
        if (strcmp(argv[i], "--json") == 0)
        {
            json = true;
        }
        else if (strcmp(argv[i], "--bus-dir") == 0 && i + 1 < argc)
        {
            bus_dir = argv[++i];
        }
        else
        {
            return tp_cli_fail(TP_EXIT_USAGE, cmd, "unknown option '%s' (see tp %s --help)", argv[i], kind);
        }
    }
    tp_bus_t *bus = NULL;
    if (tp_bus_init_existing(&bus, bus_dir) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", tp_bus_dir(bus));
    tp_bus_close(bus);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%s-", kind);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e = d != NULL ? readdir(d) : NULL; e != NULL; e = readdir(d))
    {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
        {
            continue;
        }
        char path[4096 + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        found += print_file(path, json, print) == 0;
    }
    if (d != NULL)
    {
        closedir(d);
    }
    if (found == 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "no %s reports in %s (is one running on this bus?)", kind, dir);
    }
    return TP_EXIT_OK;
}
