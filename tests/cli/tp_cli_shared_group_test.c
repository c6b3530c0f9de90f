/*
 * One driver shared by several Unix users (issue 18's deployment): `tp driver config/shared-driver.toml` runs as
 * one user (its bus directory and group moved to this test's by environment), a producer and a consumer run as
 * two other users of that group, and a fourth user outside it is refused with a sentence naming the group and
 * leaves no file behind; the driver's clean stop leaves no region file. Real users and a real group are made with
 * useradd/groupadd (root only; skipped otherwise) and removed at the end; the processes switch to them with
 * setpriv. Also: config/tensorpool-driver.service agrees with config/shared-driver.toml.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tp_test_util.h"

static char group_name[32];
static char user_names[4][32]; /* driver, producer, consumer, outsider */
static bool made_accounts;
static pid_t accounts_owner;
static char out[1 << 16];

enum
{
    DRIVER,
    ALICE,
    BOB,
    EVE,
};

static void remove_accounts(void)
{
    if (!made_accounts || getpid() != accounts_owner)
    {
        return;
    }
    char cmd[512];
    for (int i = 0; i < 4; i++)
    {
        snprintf(cmd, sizeof(cmd), "pkill -KILL -u %s; sleep 0.1; userdel %s >/dev/null 2>&1; rm -rf "
            "/dev/shm/tensorpool-%s", user_names[i], user_names[i], user_names[i]);
        (void)system(cmd);
    }
    snprintf(cmd, sizeof(cmd), "groupdel %s >/dev/null 2>&1", group_name);
    (void)system(cmd);
    made_accounts = false;
}

static bool have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void make_accounts(void)
{
    int pid = (int)getpid();
    snprintf(group_name, sizeof(group_name), "tpg%ds", pid);
    const char suffix[4] = { 'd', 'a', 'b', 'e' };
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "groupadd %s", group_name);
    assert_int_equal(system(cmd), 0);
    made_accounts = true;
    accounts_owner = getpid();
    atexit(remove_accounts);
    for (int i = 0; i < 4; i++)
    {
        snprintf(user_names[i], sizeof(user_names[i]), "tpg%d%c", pid, suffix[i]);
        snprintf(cmd, sizeof(cmd), "useradd -M -N -s /usr/sbin/nologin %s%s %s", i == EVE ? "" : "-G ",
            i == EVE ? "" : group_name, user_names[i]);
        assert_int_equal(system(cmd), 0);
    }
}

/* The command prefix for a process of user i: their own uid, the primary group useradd -N gives ("users"), and
 * their supplementary groups (the shared group for all but eve). */
static void as_user(char *cmd, size_t capacity, int i, const char *bus_dir, const char *tool)
{
    snprintf(cmd, capacity, "setpriv --reuid=%s --regid=users --init-groups --pdeathsig KILL env TP_LOG_LEVEL=30 "
        "TP_BUS_DIR=%s %s", user_names[i], bus_dir, tool);
}

static gid_t group_id(void)
{
    struct group *g = getgrnam(group_name);
    assert_non_null(g);
    return g->gr_gid;
}

static void assert_shared(const char *path, mode_t mode)
{
    struct stat st;
    if (stat(path, &st) < 0)
    {
        print_error("%s: %s\n", path, strerror(errno));
        fail();
    }
    if (st.st_gid != group_id() || (st.st_mode & 07777) != mode)
    {
        print_error("%s: group %u mode %04o, expected group %u (%s) mode %04o\n", path, (unsigned)st.st_gid,
            (unsigned)(st.st_mode & 07777), (unsigned)group_id(), group_name, (unsigned)mode);
        fail();
    }
}

/* covers: W-15.21a.6-1s */
static void test_driver_shared_by_three_users(void **state)
{
    (void)state;
    if (geteuid() != 0)
    {
        print_message("skipped: adding the test's users and group needs root\n");
        skip();
    }
    if (!have_tool("useradd") || !have_tool("groupadd") || !have_tool("setpriv"))
    {
        print_message("skipped: useradd, groupadd or setpriv is missing\n");
        skip();
    }
    make_accounts();

    /* A directory every user can read: the tp binary (copied, so a build tree under a private home works too)
     * and the configuration; run/ belongs to the driver's user, as an administrator would prepare it. */
    char dir[512], tool[700], run[700], bus[800], config[700], cmd[8192];
    tp_test_make_dir(dir, sizeof(dir), "group");
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(tool, sizeof(tool), "%s/tp", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'", TP_TOOL, tool, tool);
    assert_int_equal(system(cmd), 0);
    snprintf(run, sizeof(run), "%s/run", dir);
    assert_int_equal(mkdir(run, 0755), 0);
    struct passwd *drv = getpwnam(user_names[DRIVER]);
    assert_non_null(drv);
    assert_int_equal(chown(run, drv->pw_uid, (gid_t)-1), 0);
    snprintf(bus, sizeof(bus), "%s/bus", run);
    snprintf(config, sizeof(config), "%s/driver.toml", dir); /* a copy every user can read */
    snprintf(cmd, sizeof(cmd), "cp '%s/config/shared-driver.toml' '%s' && chmod 0644 '%s'", TP_SOURCE_DIR, config,
        config);
    assert_int_equal(system(cmd), 0);

    char prefix[2048];
    as_user(prefix, sizeof(prefix), DRIVER, bus, tool);
    snprintf(cmd, sizeof(cmd), "TP_DRIVER_BUS_DIR='%s' TP_SHM_GROUP='%s' exec %s driver '%s' 2>'%s/driver.err'", bus,
        group_name, prefix, config, dir);
    pid_t driver = tp_test_spawn(cmd);
    char status[1024];
    snprintf(status, sizeof(status), "%s/driver-1000.json", bus);
    for (int i = 0; i < 5000 && access(status, R_OK) != 0; i++)
    {
        usleep(2000);
    }
    if (access(status, R_OK) != 0)
    {
        snprintf(cmd, sizeof(cmd), "cat '%s/driver.err'", dir);
        tp_test_run(cmd, out, sizeof(out));
        print_error("the driver (as %s) did not start:\n%s\n", user_names[DRIVER], out);
        fail();
    }
    assert_shared(bus, 02770);

    as_user(prefix, sizeof(prefix), ALICE, bus, tool);
    snprintf(cmd, sizeof(cmd), "exec %s produce 10000 --size 2000 --rate 400 --seconds 60 >'%s/produce.out' 2>&1",
        prefix, dir);
    pid_t producer = tp_test_spawn(cmd);

    as_user(prefix, sizeof(prefix), BOB, bus, tool);
    snprintf(cmd, sizeof(cmd), "timeout 30 %s consume 10000 --count 200 --verify 2>&1", prefix);
    int rc = tp_test_run(cmd, out, sizeof(out));
    if (rc != 0)
    {
        print_error("consumer (as %s) exit %d:\n%s\n", user_names[BOB], rc, out);
        fail();
    }
    tp_test_assert_contains(out, "consumed 200 frames (0 failed --verify)");

    /* What the three made is the group's: bus logs 0660, region directories 2770 and files 0660. */
    snprintf(cmd, sizeof(cmd), "find '%s/1000' -name '*.log' -user %s | head -1", bus, user_names[ALICE]);
    tp_test_run(cmd, out, sizeof(out));
    out[strcspn(out, "\n")] = '\0';
    assert_true(out[0] != '\0');
    assert_shared(out, 0660);
    char regions[512];
    snprintf(regions, sizeof(regions), "/dev/shm/tensorpool-%s/default/10000", user_names[DRIVER]);
    assert_shared(regions, 02770);
    snprintf(cmd, sizeof(cmd), "find '%s' -name header.ring | head -1", regions);
    tp_test_run(cmd, out, sizeof(out));
    out[strcspn(out, "\n")] = '\0';
    assert_true(out[0] != '\0');
    assert_shared(out, 0660);

    /* root watches the shared bus, whose stream directories the members made */
    snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' %s top --once --interval 0.3 2>&1", bus, TP_TOOL);
    rc = tp_test_run(cmd, out, sizeof(out));
    if (rc != 0)
    {
        print_error("tp top as root: exit %d:\n%s\n", rc, out);
        fail();
    }
    tp_test_assert_contains(out, " epoch dir(s) (");

    /* The outsider: one clear sentence, exit 1, and nothing of hers anywhere. */
    as_user(prefix, sizeof(prefix), EVE, bus, tool);
    snprintf(cmd, sizeof(cmd), "timeout 30 %s consume 10000 --count 1 2>&1", prefix);
    rc = tp_test_run(cmd, out, sizeof(out));
    assert_int_equal(rc, 1);
    char expected[256];
    snprintf(expected, sizeof(expected), "not permitted: you (%s) are not in group '%s'", user_names[EVE],
        group_name);
    tp_test_assert_contains(out, expected);
    snprintf(cmd, sizeof(cmd), "find /dev/shm '%s' -user %s 2>/dev/null", dir, user_names[EVE]);
    tp_test_run(cmd, out, sizeof(out));
    assert_string_equal(out, "");

    kill(producer, SIGTERM);
    waitpid(producer, NULL, 0);
    kill(driver, SIGTERM);
    assert_int_equal(waitpid(driver, &rc, 0), driver);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    /* cleanup_shm_on_exit: nothing of the stream's regions stays once nobody maps them */
    snprintf(cmd, sizeof(cmd), "find '%s' -type f \\( -name '*.ring' -o -name '*.pool' \\)", regions);
    tp_test_run(cmd, out, sizeof(out));
    assert_string_equal(out, "");
    remove_accounts();
}

static char *line_of(char *text, const char *prefix)
{
    for (char *line = text; line != NULL && *line != '\0';)
    {
        char *end = strchr(line, '\n');
        if (strncmp(line, prefix, strlen(prefix)) == 0)
        {
            return line + strlen(prefix);
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

/* The unit runs `tp driver` on the file its install steps put config/shared-driver.toml at, and that file's bus
 * lies in the runtime directory systemd makes for the service, whose group is the file's shm.group. */
static void test_unit_matches_shared_config(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/tensorpool-driver.service", TP_SOURCE_DIR);
    size_t length;
    char *unit = (char *)tp_test_read_file(path, &length);
    snprintf(path, sizeof(path), "%s/config/shared-driver.toml", TP_SOURCE_DIR);
    char *toml = (char *)tp_test_read_file(path, &length);
    tp_test_assert_contains(unit, "install -D -m 0644 config/shared-driver.toml /etc/tensorpool/driver.toml");
    char *exec = line_of(unit, "ExecStart=");
    assert_non_null(exec);
    assert_true(strncmp(exec, "/usr/local/bin/tp driver /etc/tensorpool/driver.toml\n", 52) == 0);
    char *runtime = line_of(unit, "RuntimeDirectory=");
    assert_non_null(runtime);
    char expected[256];
    snprintf(expected, sizeof(expected), "bus_dir = \"/run/%.*s/bus\"", (int)strcspn(runtime, "\n"), runtime);
    tp_test_assert_contains(toml, expected);
    char *group = line_of(unit, "Group=");
    assert_non_null(group);
    snprintf(expected, sizeof(expected), "group = \"%.*s\"", (int)strcspn(group, "\n"), group);
    tp_test_assert_contains(toml, expected);
    snprintf(expected, sizeof(expected), "export TP_BUS_DIR=/run/%.*s/bus", (int)strcspn(runtime, "\n"), runtime);
    tp_test_assert_contains(unit, expected);
    free(unit);
    free(toml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_driver_shared_by_three_users),
        cmocka_unit_test(test_unit_matches_shared_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
