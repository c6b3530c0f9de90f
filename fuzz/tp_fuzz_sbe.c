/* Fuzz: every SBE decoder (all six schemas, header-less SHM structs too), enum checks and JSON printing. */
#include <string.h>

#include "tp_fuzz.h"
#include "wire/tp_sbe.h"

static void exercise(const tp_sbe_message_meta_t *meta, const uint8_t *data, size_t size)
{
    tp_sbe_msg_view_t view;
    if (tp_sbe_decode(&view, meta, data, size) < 0)
    {
        return;
    }
    if (view.encoded_length > size)
    {
        __builtin_trap();
    }
    tp_sbe_check_enums(&view);
    tp_strbuf_t out;
    tp_strbuf_init(&out);
    tp_sbe_to_json(&out, &view);
    tp_strbuf_fini(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_sbe_header_t h;
    if (tp_sbe_header_read(&h, data, size) == 0)
    {
        const tp_sbe_message_meta_t *meta = tp_sbe_message_find(h.schema_id, h.template_id);
        if (meta != NULL)
        {
            exercise(meta, data, size);
        }
    }
    /* Header-less structs and every message type regardless of the header's ids. */
    for (size_t s = 0; s < tp_sbe_schema_count; s++)
    {
        for (uint16_t i = 0; i < tp_sbe_schemas[s]->message_count; i++)
        {
            const tp_sbe_message_meta_t *meta = tp_sbe_schemas[s]->messages[i];
            if (meta->is_headerless)
            {
                exercise(meta, data, size);
            }
        }
    }
    return 0;
}
