/*
 * Status files of the long-running services (`tp ratelimiter`, `tp bridge`): each instance writes its state as one
 * JSON object to <bus_dir>/<kind>-<instance_id>.json once a second (atomically: written aside, then renamed) and
 * removes it when it stops; `tp <kind> status` prints every such file of the bus.
 */
#ifndef TP_CLI_STATUS_H
#define TP_CLI_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tp_json.h"
#include "core/tp_strbuf.h"

/* <bus_dir>/<kind>-<instance_id>.json for the bus at bus_dir (NULL: the default one); "" if there is no bus. */
void tp_cli_status_path(char *out, size_t capacity, const char *bus_dir, const char *kind, const char *instance_id);
/* Replace the file at path by json; errors are ignored (a report is best effort). */
void tp_cli_status_write(const char *path, const tp_strbuf_t *json);

/* Print one report (text of length bytes): 0, or -1 when it is not a report of this kind. */
typedef int (*tp_cli_status_printer_t)(const tp_json_t *report, const char *text, size_t length, bool json);
/* `tp <kind> status [--bus-dir DIR] [--json]`: argv[0] is the command, argv[1] "status". */
int tp_cli_status_main(const char *kind, int argc, char **argv, tp_cli_status_printer_t print);

/* A report's unsigned field (0 when absent), and how long ago (ms) it was written. */
uint64_t tp_cli_json_u64(const tp_json_t *object, const char *key);
int64_t tp_cli_status_age_ms(const tp_json_t *report);

#endif
