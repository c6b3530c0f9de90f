/* The driver's leaf sender; see tp_driver_send.h. */
#include "driver/tp_driver_send.h"

#include <inttypes.h>

#include "core/tp_err.h"

#define DRIVER_PUBLISH_ATTEMPTS 1000

int tp_driver_publish(tp_driver_t *d, tp_bus_publication_t *pub, const uint8_t *buffer, int64_t length)
{
    for (int attempt = 0; attempt < DRIVER_PUBLISH_ATTEMPTS; attempt++)
    {
        int64_t rc = tp_bus_offer(pub, buffer, (size_t)length);
        if (rc > 0 || rc == TP_BUS_NOT_CONNECTED)
        {
            return 0; /* nobody listening is not a failure: announces and notices are broadcasts */
        }
        if (rc == TP_BUS_CLOSED || rc == TP_BUS_MAX_MESSAGE_LENGTH_EXCEEDED)
        {
            break;
        }
    }
    d->counters.publish_failures++;
    TP_SET_ERR(TP_E_STATE, "could not publish a %" PRId64 "-byte control message", length);
    return -1;
}

