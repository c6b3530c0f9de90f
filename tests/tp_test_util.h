/* Helpers shared by the cmocka tests. */
#ifndef TP_TEST_UTIL_H
#define TP_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/tp_config.h"
#include "tensorpool/tp_common.h"

/* Assert a 0/-1 call succeeded; on failure print tp_errmsg(). */
#define tp_assert_ok(expr)                                                                                            \
    do                                                                                                                \
    {                                                                                                                 \
        if ((expr) < 0)                                                                                               \
        {                                                                                                             \
            print_error("%s failed: %s\n", #expr, tp_errmsg());                                                      \
            fail();                                                                                                   \
        }                                                                                                             \
    } while (0)

/* Assert a call failed and its message contains `needle`. */
#define tp_assert_fails_with(expr, needle)                                                                            \
    do                                                                                                                \
    {                                                                                                                 \
        if ((expr) >= 0)                                                                                              \
        {                                                                                                             \
            print_error("%s unexpectedly succeeded\n", #expr);                                                       \
            fail();                                                                                                   \
        }                                                                                                             \
        tp_test_assert_contains(tp_errmsg(), (needle));                                                               \
    } while (0)

void tp_test_assert_contains(const char *haystack, const char *needle);

/* true if TP_SHARED_DIR/vectors is there (CI has ../shared beside the checkout; a clone elsewhere may not). */
bool tp_test_has_shared(void);
/* In a test function that reads ../shared: without it, skip the function with a message saying why. */
#define TP_TEST_REQUIRE_SHARED()                                                                                      \
    do                                                                                                                \
    {                                                                                                                 \
        if (!tp_test_has_shared())                                                                                    \
        {                                                                                                             \
            print_message("skipped: %s/vectors is missing (tests that read ../shared need it beside the checkout)\n", \
                TP_SHARED_DIR);                                                                                       \
            skip();                                                                                                   \
        }                                                                                                             \
    } while (0)
/* main's result for a program some of whose tests read ../shared: 77, ctest's skip status, when it was missing
 * and nothing failed. */
int tp_test_shared_result(int rc);

/* Read a file into malloc'd memory (NUL-terminated); fails the test if it cannot. */
uint8_t *tp_test_read_file(const char *path, size_t *length);

/* A fresh private directory for this test (removed by tp_test_remove_dir). */
void tp_test_make_dir(char *out, size_t capacity, const char *name);
void tp_test_remove_dir(const char *path);

/* Run a command through /bin/sh, capturing stdout (and stderr if want_stderr) into out. Returns exit status. */
int tp_test_run(const char *command, char *out, size_t capacity);

/* `tp driver CONFIG` as a child process (killed with the test), returned once its status file
 * <bus_dir>/driver-1000.json exists (10 s at most). Stop it with kill(pid, SIGTERM) and waitpid. */
int tp_test_start_driver_process(const char *config, const char *bus_dir);
/* A UDP port of 127.0.0.1 that the kernel says is free now (bound to port 0, then closed). */
int tp_test_free_udp_port(void);
/* Run `sh -c command` as a child process that dies with the test; returns its pid. */
int tp_test_spawn(const char *command);

/* Configuration tests: parse text as the TOML file `name` and load it with load into config; the report is left
 * in r (the caller finis it). expect_error fails the test unless loading fails with needle among the errors. */
typedef int (*tp_test_config_loader_t)(void *config, const tp_toml_value_t *doc, tp_config_report_t *report);
int tp_test_config_load(tp_test_config_loader_t load, void *config, const char *name, const char *text,
    tp_config_report_t *r);
void tp_test_config_expect_error(tp_test_config_loader_t load, void *config, const char *name, const char *text,
    const char *needle);

/* Move this process into a new network namespace whose loopback carries multicast (239.0.0.0/8 and the rest of
 * 224.0.0.0/4), so multicast tests run the same on any host. Needs root; -1 with the reason otherwise. Children
 * forked afterwards share the namespace. */
int tp_test_enter_multicast_netns(char *why, size_t capacity);

#endif
