/* The examples' optional directory arguments, shared by the example programs. */
#ifndef EXAMPLE_DIRS_H
#define EXAMPLE_DIRS_H

#include <string.h>

#include "tensorpool/tp_client.h"

/* argv[first] is BUS_DIR and argv[first + 1] SHM_BASE_DIR; either may be left out or given as "-": then the
 * defaults `tp` uses ($TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus; regions under /dev/shm), which
 * TP_CLIENT_BUS_DIR and TP_CLIENT_ALLOWED_BASE_DIRS override. */
static inline int example_set_dirs(tp_client_context_t *ctx, int argc, char **argv, int first)
{
    if (argc > first && strcmp(argv[first], "-") != 0 &&
        tp_client_context_set(ctx, "client.bus_dir", argv[first]) < 0)
    {
        return -1;
    }
    if (argc > first + 1 && strcmp(argv[first + 1], "-") != 0 &&
        tp_client_context_set(ctx, "client.allowed_base_dirs", argv[first + 1]) < 0)
    {
        return -1;
    }
    return 0;
}

#endif
