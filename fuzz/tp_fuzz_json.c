/* Fuzz: the JSON reader and the SBE JSON encoder behind `tp encode`. */
#include "core/tp_json.h"
#include "tp_fuzz.h"
#include "wire/tp_sbe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_json_t *root = NULL;
    if (tp_json_parse(&root, (const char *)data, size) == 0)
    {
        uint8_t buf[4096];
        for (size_t s = 0; s < tp_sbe_schema_count; s++)
        {
            for (uint16_t i = 0; i < tp_sbe_schemas[s]->message_count; i++)
            {
                tp_sbe_from_json(tp_sbe_schemas[s]->messages[i], root, buf, sizeof(buf));
            }
        }
    }
    tp_json_free(root);
    return 0;
}
