/* Every `$ ` example line in the docs (docs/CLI.md) runs from the repository root and exits 0 (with `tp` on the
 * PATH). */
#include <dirent.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tp_test_util.h"

static char out[1 << 16];

static int run_examples_of(const char *doc)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/docs/%s", TP_SOURCE_DIR, doc);
    size_t n;
    char *text = (char *)tp_test_read_file(path, &n);
    char tool[1024];
    snprintf(tool, sizeof(tool), "%s", TP_TOOL);
    const char *bindir = dirname(tool);
    int count = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
    {
        if (strncmp(line, "$ ", 2) != 0)
        {
            continue;
        }
        if (strstr(line, "../shared") != NULL && !tp_test_has_shared())
        {
            print_message("skipped (no ../shared): %s\n", line + 2);
            continue;
        }
        char script[512];
        snprintf(script, sizeof(script), "/tmp/tp-docs-example-%d.sh", (int)getpid());
        FILE *f = fopen(script, "w");
        assert_non_null(f);
        fprintf(f, "%s\n", line + 2);
        fclose(f);
        char cmd[8192];
        snprintf(cmd, sizeof(cmd), "cd '%s' && PATH='%s':\"$PATH\" sh %s >/dev/null 2>&1", TP_SOURCE_DIR, bindir,
            script);
        int status = tp_test_run(cmd, out, sizeof(out));
        if (status != 0)
        {
            print_error("%s: example failed (exit %d): %s\n", doc, status, line + 2);
            fail();
        }
        unlink(script);
        count++;
    }
    free(text);
    return count;
}

static void test_cli_examples_run(void **state)
{
    (void)state;
    assert_true(run_examples_of("CLI.md") >= (tp_test_has_shared() ? 6 : 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_examples_run),
    };
    return tp_test_shared_result(cmocka_run_group_tests(tests, NULL, NULL));
}
