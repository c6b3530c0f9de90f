/*
 * Fuzz: both ends of discovery. The first input byte picks what the rest is:
 *   0  a message on a driver's announce or metadata stream, indexed by the provider;
 *   1  a DiscoveryRequest (or anything) on the provider's request stream, answered by the provider;
 *   2  a message on the client's response stream, read as the answer to request id 5.
 * One provider lives for the whole run, in a private bus directory; answers go where the requests say (IPC
 * streams of that directory, unless a request names another channel).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/tp_client_internal.h"
#include "core/tp_clock.h"
#include "core/tp_fs.h"
#include "discovery/tp_discovery_provider.h"
#include "tp_fuzz.h"

#define REQUEST_STREAM 7000

static tp_bus_t *bus;
static tp_bus_publication_t *requests;
static tp_discovery_provider_t *provider;
static char dir[256];

static void fuzz_cleanup(void)
{
    tp_discovery_provider_close(provider);
    tp_bus_publication_close(requests);
    tp_bus_close(bus);
    provider = NULL;
    tp_fs_remove_tree(dir);
}

static void fuzz_init(void)
{
    snprintf(dir, sizeof(dir), "%s/tp-fuzz-discovery-%d", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
        (int)getpid());
    tp_discovery_driver_t d = { .instance_id = "fuzz", .control_channel = "aeron:ipc", .control_stream_id = 1000 };
    if (mkdir(dir, 0700) < 0 || tp_bus_init(&bus, dir) < 0 ||
        tp_bus_publication_open(&requests, bus, "aeron:ipc", REQUEST_STREAM, false) < 0 ||
        tp_discovery_provider_open(&provider, bus, "aeron:ipc", REQUEST_STREAM, 100 * TP_NS_PER_MS, 8) < 0 ||
        tp_discovery_provider_add_driver(provider, &d) != 0 ||
        tp_discovery_provider_set_defaults(provider, 0, 10, "cam", "front,rgb") < 0)
    {
        fprintf(stderr, "tp_fuzz_discovery: cannot start: %s\n", tp_errmsg());
        tp_fs_remove_tree(dir);
        exit(1);
    }
    atexit(fuzz_cleanup);
}

static void check_text(const char *text, size_t capacity)
{
    if (strnlen(text, capacity) == capacity)
    {
        __builtin_trap(); /* not terminated */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (provider == NULL)
    {
        fuzz_init();
    }
    if (size == 0)
    {
        return 0;
    }
    const uint8_t *message = data + 1;
    size_t length = size - 1;
    int64_t now = tp_clock_monotonic_ns();
    switch (data[0] % 3)
    {
    case 0:
        tp_discovery_provider_on_message(provider, 0, message, length, now);
        break;
    case 1:
        if (length > 0)
        {
            tp_bus_offer(requests, message, length);
        }
        tp_discovery_provider_poll(provider, now);
        break;
    default:
    {
        static tp_discovery_result_t results[4];
        tp_discovery_answer_t a;
        memset(&a, 0, sizeof(a));
        a.request_id = 5;
        a.results = results;
        a.capacity = 4;
        tp_discovery_take_response(&a, message, length);
        if (a.count > a.capacity || (a.count > 0 && !a.has_answer))
        {
            __builtin_trap();
        }
        check_text(a.error, sizeof(a.error));
        for (size_t i = 0; i < a.count; i++)
        {
            check_text(results[i].data_source_name, sizeof(results[i].data_source_name));
            check_text(results[i].driver_control_channel, sizeof(results[i].driver_control_channel));
            if (results[i].driver_control_channel[0] == '\0' || results[i].driver_control_stream_id == 0)
            {
                __builtin_trap(); /* a result without authority was kept */
            }
        }
        break;
    }
    }
    if (tp_discovery_provider_entry_count(provider) > TP_DISCOVERY_MAX_ENTRIES)
    {
        __builtin_trap();
    }
    return 0;
}
