/*
 * The TOML 1.0.0 conformance vectors (shared/vectors/toml, from toml-test): every valid document decodes to exactly
 * its expected tagged JSON, every invalid one is rejected with an error naming its line.
 */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/tp_json.h"
#include "core/tp_toml.h"
#include "tp_test_util.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* Date/time comparison as times: separators and zone letters in any case, trailing fraction zeros ignored,
 * offset date-times compared as instants. */
static void dt_canonical(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    char s[128];
    if (n >= sizeof(s))
    {
        snprintf(out, cap, "%s", in);
        return;
    }
    for (size_t i = 0; i <= n; i++)
    {
        char c = in[i];
        s[i] = (i == 10 && (c == 't' || c == ' ')) ? 'T' : (char)toupper((unsigned char)c);
    }
    /* split fraction */
    char *dot = strchr(s, '.');
    char frac[32] = "";
    char zone[16] = "";
    char head[64];
    if (dot != NULL)
    {
        size_t k = 1;
        while (isdigit((unsigned char)dot[k]))
        {
            k++;
        }
        snprintf(frac, sizeof(frac), "%.*s", (int)(k - 1), dot + 1);
        snprintf(zone, sizeof(zone), "%s", dot + k);
        snprintf(head, sizeof(head), "%.*s", (int)(dot - s), s);
    }
    else
    {
        size_t h = n;
        if (n > 19 && (s[19] == 'Z' || s[19] == '+' || s[19] == '-'))
        {
            h = 19;
        }
        snprintf(head, sizeof(head), "%.*s", (int)h, s);
        snprintf(zone, sizeof(zone), "%s", s + h);
    }
    size_t fl = strlen(frac);
    while (fl > 0 && frac[fl - 1] == '0')
    {
        frac[--fl] = '\0';
    }
    if (zone[0] != '\0' && strlen(head) == 19)
    {
        /* offset date-time: to UTC */
        int y, mo, d, h, mi, sec, oh = 0, om = 0;
        sscanf(head, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec);
        if (zone[0] != 'Z')
        {
            sscanf(zone + 1, "%d:%d", &oh, &om);
            int sign = zone[0] == '-' ? -1 : 1;
            mi -= sign * (oh * 60 + om);
        }
        /* days from civil */
        int yy = y - (mo <= 2);
        int era = (yy >= 0 ? yy : yy - 399) / 400;
        int yoe = yy - era * 400;
        int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        long long days = (long long)era * 146097 + doe - 719468;
        long long secs = days * 86400 + (long long)h * 3600 + (long long)mi * 60 + sec;
        snprintf(out, cap, "@%lld.%s", secs, frac);
        return;
    }
    snprintf(out, cap, "%s.%s", head, frac);
}

static bool leaf_equal(const tp_json_t *a, const tp_json_t *b)
{
    const tp_json_t *ta = tp_json_get(a, "type");
    const tp_json_t *tb = tp_json_get(b, "type");
    const tp_json_t *va = tp_json_get(a, "value");
    const tp_json_t *vb = tp_json_get(b, "value");
    if (ta == NULL || tb == NULL || va == NULL || vb == NULL || strcmp(ta->text, tb->text) != 0)
    {
        return false;
    }
    const char *t = ta->text;
    if (strcmp(t, "string") == 0 || strcmp(t, "integer") == 0)
    {
        return va->length == vb->length && memcmp(va->text, vb->text, va->length) == 0;
    }
    if (strcmp(t, "bool") == 0)
    {
        return strcasecmp(va->text, vb->text) == 0;
    }
    if (strcmp(t, "float") == 0)
    {
        double x = strtod(va->text, NULL);
        double y = strtod(vb->text, NULL);
        if (isnan(x) || isnan(y))
        {
            return isnan(x) && isnan(y);
        }
        return x == y;
    }
    char ca[128];
    char cb[128];
    dt_canonical(va->text, ca, sizeof(ca));
    dt_canonical(vb->text, cb, sizeof(cb));
    return strcmp(ca, cb) == 0;
}

static bool is_leaf(const tp_json_t *j)
{
    return j->type == TP_JSON_OBJECT && j->count == 2 && tp_json_get(j, "type") != NULL &&
           tp_json_get(j, "value") != NULL && tp_json_get(j, "type")->type == TP_JSON_STRING &&
           tp_json_get(j, "value")->type == TP_JSON_STRING;
}

static bool tagged_equal(const tp_json_t *a, const tp_json_t *b)
{
    if (a == NULL || b == NULL || a->type != b->type)
    {
        return false;
    }
    if (a->type == TP_JSON_ARRAY)
    {
        if (a->count != b->count)
        {
            return false;
        }
        for (const tp_json_t *x = a->child, *y = b->child; x != NULL; x = x->next, y = y->next)
        {
            if (!tagged_equal(x, y))
            {
                return false;
            }
        }
        return true;
    }
    if (a->type != TP_JSON_OBJECT)
    {
        return false;
    }
    if (is_leaf(a) || is_leaf(b))
    {
        return is_leaf(a) && is_leaf(b) && leaf_equal(a, b);
    }
    if (a->count != b->count)
    {
        return false;
    }
    for (const tp_json_t *x = a->child; x != NULL; x = x->next)
    {
        if (!tagged_equal(x, tp_json_get(b, x->key)))
        {
            return false;
        }
    }
    return true;
}

static int run_dir(const char *kind, int *passed, int *failed)
{
    char dir[1024];
    TP_TEST_REQUIRE_SHARED();
    snprintf(dir, sizeof(dir), "%s/vectors/toml/%s", TP_SHARED_DIR, kind);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    regex_t line_re;
    regcomp(&line_re, ":[0-9]+:[0-9]+:", REG_EXTENDED);
    bool is_valid = strcmp(kind, "valid") == 0;
    while ((e = readdir(d)) != NULL)
    {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".toml") != 0)
        {
            continue;
        }
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t length;
        uint8_t *text = tp_test_read_file(path, &length);
        tp_toml_value_t *doc = NULL;
        int rc = tp_toml_parse(&doc, (const char *)text, length, e->d_name);
        bool ok;
        if (is_valid)
        {
            ok = rc == 0;
            if (!ok)
            {
                print_message("FAIL valid/%s: %s\n", e->d_name, tp_errmsg());
            }
            else
            {
                char jpath[2048];
                snprintf(jpath, sizeof(jpath), "%s/%.*s.json", dir, (int)(n - 5), e->d_name);
                size_t jn;
                uint8_t *jtext = tp_test_read_file(jpath, &jn);
                tp_json_t *want = NULL;
                tp_json_t *got = NULL;
                tp_strbuf_t out;
                tp_strbuf_init(&out);
                tp_toml_to_tagged_json(&out, doc);
                ok = tp_json_parse(&want, (const char *)jtext, jn) == 0 &&
                     tp_json_parse(&got, tp_strbuf_cstr(&out), out.length) == 0 && tagged_equal(got, want);
                if (!ok)
                {
                    print_message("FAIL valid/%s: decoded %s\n", e->d_name, tp_strbuf_cstr(&out));
                }
                tp_json_free(want);
                tp_json_free(got);
                tp_strbuf_fini(&out);
                free(jtext);
            }
        }
        else
        {
            ok = rc < 0 && regexec(&line_re, tp_errmsg(), 0, NULL, 0) == 0;
            if (!ok)
            {
                print_message("FAIL invalid/%s: %s\n", e->d_name, rc == 0 ? "accepted" : tp_errmsg());
            }
        }
        tp_toml_free(doc);
        free(text);
        if (ok)
        {
            (*passed)++;
        }
        else
        {
            (*failed)++;
        }
    }
    regfree(&line_re);
    closedir(d);
    return 0;
}

static void test_toml_suite(void **state)
{
    (void)state;
    int passed = 0;
    int failed = 0;
    run_dir("valid", &passed, &failed);
    run_dir("invalid", &passed, &failed);
    print_message("toml suite: %d passed, %d failed\n", passed, failed);
    assert_int_equal(passed, 168 + 399);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toml_suite),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
