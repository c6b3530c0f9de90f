/* `tp`: dispatch to subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/tp_cli.h"
#include "tensorpool/tp_common.h"

static const tp_cli_command_t commands[] = {
    { "bench", "measure this machine: the bus's throughput, latency and idle cost", tp_cmd_bench },
    { "driver", "run the SHM driver, show its streams and leases, or shut it down", tp_cmd_driver },
    { "demo", "run a producer and two consumers over shared memory with live statistics", tp_cmd_demo },
    { "config", "check, dump and convert configuration files (TOML)", tp_cmd_config },
    { "listen", "print every message on a control-plane stream (announces, control, descriptors, QoS, metadata)",
        tp_cmd_listen },
    { "inspect", "show a region file's superblock, its checks and its header slots", tp_cmd_inspect },
    { "validate-uri", "check a region URI against the wire and containment rules", tp_cmd_validate_uri },
    { "attach", "attach to a stream through the driver, print the response, optionally hold the lease",
        tp_cmd_attach },
    { "detach", "detach a lease", tp_cmd_detach },
    { "keepalive", "send lease keepalives", tp_cmd_keepalive },
    { "send", "publish a control message by hand (consumer-config)", tp_cmd_send },
    { "clean", "remove what dead drivers and tp processes left in /dev/shm (never what a live process uses)",
        tp_cmd_clean },
    { "top", "a live table of every stream: producer, epoch, frames/s, MiB/s, consumers, drops", tp_cmd_top },
    { "discover", "ask a discovery provider which streams exist (by name, tags, ids)", tp_cmd_discover },
    { "discovery", "run a standalone discovery registry for several drivers", tp_cmd_discovery },
    { "produce", "publish test frames on a stream (seq and CRC32C inside, for tp consume --verify)", tp_cmd_produce },
    { "consume", "read a stream's frames, print frames/s and drops, optionally verify test frames", tp_cmd_consume },
    { "snapshot", "write a stream's next frame as PNG / JPEG (images), .npy or raw bytes with a JSON header",
        tp_cmd_snapshot },
    { "trace", "record frame lineage (trace ids, TraceLinkSet) into SQLite and ask where a frame came from",
        tp_cmd_trace },
    { "web", "a read-only dashboard of the driver's streams with frame previews, in the browser", tp_cmd_web },
    { "bridge", "carry streams to another host over UDP and rebuild them there (send or receive)", tp_cmd_bridge },
    { "ratelimiter", "republish streams at a capped frame rate (for GUIs, recorders, slow consumers)",
        tp_cmd_ratelimiter },
    { "decode", "print an SBE message or SHM struct (any of the six schemas) as JSON", tp_cmd_decode },
    { "encode", "encode an SBE message from JSON (the inverse of decode)", tp_cmd_encode },
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: tp <command> [options]\n"
        "       tp <command> --help\n"
        "       tp --version\n\n"
        "tensorpool %s: zero-copy shared-memory tensor exchange (SHM Tensor Pool wire spec v1.2).\n\n"
        "commands:\n",
        tp_version());
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out,
        "\nexit status: 0 success, 1 operation failed, 2 usage error or unusable input.\n"
        "environment: TP_LOG=0|1, TP_LOG_LEVEL=10|20|30|40, TP_LOG_MODULES=a,b, TP_LOG_FORMAT=json|logfmt\n");
}

int main(int argc, char **argv)
{
    if (argc < 2)
    {
        usage(stderr);
        return TP_EXIT_USAGE;
    }
    if (tp_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0)
    {
        if (argc > 2 && strcmp(argv[1], "help") == 0)
        {
            for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
            {
                if (strcmp(commands[i].name, argv[2]) == 0)
                {
                    char help[] = "--help";
                    char *args[] = { argv[2], help, NULL };
                    return commands[i].run(2, args);
                }
            }
        }
        usage(stdout);
        return TP_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
    {
        printf("tp (tensorpool) %s\n", tp_version());
        return TP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    {
        if (strcmp(commands[i].name, argv[1]) == 0)
        {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "tp: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return TP_EXIT_USAGE;
}
