/* Fuzz: the TOML reader and the tagged JSON writer. */
#include "core/tp_toml.h"
#include "tp_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tp_toml_value_t *doc = NULL;
    if (tp_toml_parse(&doc, (const char *)data, size, "fuzz") == 0)
    {
        tp_strbuf_t out;
        tp_strbuf_init(&out);
        tp_toml_to_tagged_json(&out, doc);
        tp_strbuf_fini(&out);
        tp_toml_free(doc);
    }
    return 0;
}
