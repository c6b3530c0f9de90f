/*
 * The `tp` command: one binary, one subcommand per file. Every subcommand takes (argc, argv) with argv[0] the
 * subcommand name, prints `--help`, and returns the process exit status:
 *   0 success, 1 the operation failed, 2 usage error or unusable input.
 */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/tp_json.h"

#define TP_EXIT_OK 0
#define TP_EXIT_FAILED 1
#define TP_EXIT_USAGE 2

typedef struct tp_cli_command
{
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} tp_cli_command_t;

int tp_cmd_decode(int argc, char **argv);
int tp_cmd_ratelimiter(int argc, char **argv);
int tp_cmd_bridge(int argc, char **argv);
int tp_cmd_produce(int argc, char **argv);
int tp_cmd_consume(int argc, char **argv);
int tp_cmd_snapshot(int argc, char **argv);
int tp_cmd_web(int argc, char **argv);
int tp_cmd_trace(int argc, char **argv);
int tp_cmd_encode(int argc, char **argv);
int tp_cmd_demo(int argc, char **argv);
int tp_cmd_bench(int argc, char **argv);
int tp_cmd_config(int argc, char **argv);
int tp_cmd_driver(int argc, char **argv);
int tp_cmd_listen(int argc, char **argv);
int tp_cmd_inspect(int argc, char **argv);
int tp_cmd_validate_uri(int argc, char **argv);
int tp_cmd_attach(int argc, char **argv);
int tp_cmd_detach(int argc, char **argv);
int tp_cmd_keepalive(int argc, char **argv);
int tp_cmd_send(int argc, char **argv);
int tp_cmd_top(int argc, char **argv);
int tp_cmd_discover(int argc, char **argv);
int tp_cmd_discovery(int argc, char **argv);
int tp_cmd_clean(int argc, char **argv);

/* Print "tp <cmd>: <message>" to stderr (add tp_errmsg() to the message when it explains more); returns status. */
int tp_cli_fail(int status, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* true if arg is "-h" or "--help". */
int tp_cli_is_help(const char *arg);

/* Parse an unsigned integer (decimal or 0x hex) in [min, max]; -1 with a message on failure. */
int tp_cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);
int tp_cli_parse_double(const char *text, double min, double max, double *out);

/* Read the TOML file at path and load it with load (a component's tp_*_config_load) into config; -1 with every
 * error found (file, line, key) in the message. */
struct tp_toml_value;
struct tp_config_report;
typedef int (*tp_cli_config_loader_t)(void *config, const struct tp_toml_value *doc, struct tp_config_report *report);
int tp_cli_load_config(const char *path, void *config, tp_cli_config_loader_t load);

/* Test frames of `tp demo`, `tp produce` and `tp consume`: bytes 0..7 the sequence, a fill byte, and the CRC32C of
 * everything before it in the last 4 (frames under 12 bytes: the sequence's low byte throughout). verify: 1 if the
 * payload is frame seq's. */
void tp_cli_frame_fill(uint8_t *payload, uint32_t length, uint64_t seq);
int tp_cli_frame_verify(const uint8_t *payload, uint32_t length, uint64_t seq);
/* Stamp a payload of at least 12 bytes filled otherwise (a picture): its seq in the first 8 bytes and the CRC32C
 * in the last 4, as tp_cli_frame_fill does, so that tp_cli_frame_verify checks it. */
void tp_cli_frame_stamp(uint8_t *payload, uint32_t length, uint64_t seq);
/* Install SIGINT/SIGTERM handlers that set the flag returned by tp_cli_stop_requested(). */
/* The tools' view of a control-plane setting: TP_<name> (e.g. TP_CONTROL_STREAM_ID), else the client's
 * TP_CLIENT_<name>, so that one environment configures the applications and the tools that watch them. NULL when
 * neither is set (an empty value counts as unset). */
const char *tp_cli_getenv(const char *name);

/* "512 B", "64.0 KiB", "17.0 MiB", "3.2 GiB". */
void tp_cli_format_bytes(char *out, size_t capacity, uint64_t bytes);

/* "shm 17.0 MiB in 2 epoch dirs (/dev/shm: 3.2 GiB of 3.9 GiB free)" from a driver status file's "shm" object
 * (empty when it has none: an older driver). */
void tp_cli_format_shm_use(char *out, size_t capacity, const tp_json_t *status, const char *base_dir);

void tp_cli_install_stop_handlers(void);
int tp_cli_stop_requested(void);
/* The flag itself, for tp_agent_run. */
const int *tp_cli_stop_flag(void);

#endif
