/*
 * The operator tools against a live system: a `tp driver` process, and messages (good and hostile) published on
 * its bus by this test.
 *  - tp listen: decodes what the driver announces; on a stream carrying garbage it keeps going, shows each
 *    unknown or malformed message as such and counts it;
 *  - tp inspect and tp validate-uri: the driver's regions, a frame a producer committed, and hostile files
 *    (garbage, too short, a symlink, outside the allowed directories);
 *  - tp attach (with and without --hold), tp detach, tp keepalive, tp send consumer-config: what the driver
 *    answers, refusals, a driver that does not answer;
 *  - tp top --once: the stream with its producer and a non-zero frame and byte rate while frames flow;
 *  - usage errors exit 2 with one clear line.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tp_clock.h"
#include "core/tp_json.h"
#include "shm/tp_shm_layout.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"

#define STREAM 10000
#define TIMEOUT_NS (10 * TP_NS_PER_S)

static char dir[512];
static char bus_dir[600];
static char shm[600];
static pid_t driver_pid;
static char out[1 << 17];

static int setup(void **state)
{
    (void)state;
    tp_test_make_dir(dir, sizeof(dir), "cli-ops");
    snprintf(bus_dir, sizeof(bus_dir), "%s/bus", dir);
    snprintf(shm, sizeof(shm), "%s/shm", dir);
    assert_int_equal(mkdir(shm, 0700), 0);
    char config[700], status[700];
    snprintf(config, sizeof(config), "%s/driver.toml", dir);
    snprintf(status, sizeof(status), "%s/driver-1000.json", bus_dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fprintf(f,
        "[driver]\nbus_dir = \"%s\"\n[shm]\nbase_dir = \"%s\"\n[policies]\nprefault_shm = false\n"
        "announce_period_ms = 100\n"
        "[profiles.small]\nheader_nslots = 16\npayload_pools = [ { pool_id = 1, stride_bytes = 4096 } ]\n"
        "[streams.cam]\nstream_id = %d\nprofile = \"small\"\n",
        bus_dir, shm, STREAM);
    fclose(f);
    driver_pid = fork();
    assert_true(driver_pid >= 0);
    if (driver_pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TP_LOG_LEVEL", "30", 1);
        execl(TP_TOOL, TP_TOOL, "driver", config, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (access(status, R_OK) != 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(2000);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(driver_pid, SIGTERM);
    waitpid(driver_pid, NULL, 0);
    tp_test_remove_dir(dir);
    return 0;
}

/* Run `tp ARGS` with the bus directory in the environment; output (stdout and stderr) in out. */
static int tp(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' %s %s 2>&1", bus_dir, TP_TOOL, args);
    return tp_test_run(cmd, out, sizeof(out));
}

/* The whole of a file into out; false if there is no such file (yet). */
static bool try_read_output(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
    {
        return false;
    }
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    return true;
}

/* Poll a growing output file until it contains `needle` (bounded). */
static void await_output(const char *path, const char *needle)
{
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (!try_read_output(path) || strstr(out, needle) == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(2000);
    }
}

/* Start `tp ARGS` in the background, its output into a file; wait until that output contains `ready`. */
static pid_t tp_background(const char *args, const char *output, const char *ready)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[4096];
        snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' exec %s %s > '%s' 2>&1", bus_dir, TP_TOOL, args, output);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    await_output(output, ready);
    return pid;
}

static int wait_exit(pid_t pid, const char *output)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(try_read_output(output));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_listen_decodes_announces(void **state)
{
    (void)state;
    assert_int_equal(tp("listen announce --count 2"), 0);
    assert_non_null(strstr(out, "ShmPoolAnnounce {\"streamId\":10000"));
    assert_non_null(strstr(out, "\"headerSlotBytes\":256"));
    assert_non_null(strstr(out, "2 messages (0 unknown, 0 malformed)"));
    assert_int_equal(tp("listen control --json --count 1"), 0);
    assert_non_null(strstr(out, "{\"received_ns\":"));
    assert_non_null(strstr(out, "\"stream_id\":1000,\"message\":{\"schema_id\":900,\"template_id\":1,"));
}

static void test_listen_survives_garbage(void **state)
{
    (void)state;
    char output[700];
    snprintf(output, sizeof(output), "%s/listen.out", dir);
    pid_t listener = tp_background("listen metadata --duration 3", output, "tp listen: metadata on");
    tp_bus_t *bus = NULL;
    tp_bus_publication_t *pub = NULL;
    tp_assert_ok(tp_bus_init(&bus, bus_dir));
    tp_assert_ok(tp_bus_publication_open(&pub, bus, "aeron:ipc?term-length=4m", 1300, false));
    /* Too short for a header; an unknown schema; a known message cut short; then a good one. */
    const uint8_t tiny[3] = { 1, 2, 3 };
    assert_true(tp_bus_offer(pub, tiny, sizeof(tiny)) > 0);
    uint8_t unknown[32] = { 0 };
    uint16_t hdr[4] = { 8, 3, 999, 1 };
    memcpy(unknown, hdr, sizeof(hdr));
    assert_true(tp_bus_offer(pub, unknown, sizeof(unknown)) > 0);
    uint8_t announce[512];
    tp_wire_shm_pool_announce_enc_t e;
    tp_wire_shm_pool_announce_enc_begin(&e, announce, sizeof(announce));
    tp_wire_shm_pool_announce_set_stream_id(&e, 77);
    tp_wire_shm_pool_announce_set_announce_clock_domain(&e, TP_WIRE_CLOCK_DOMAIN_MONOTONIC);
    tp_wire_shm_pool_announce_payload_pools_enc_t pools;
    tp_wire_shm_pool_announce_payload_pools_begin(&e, &pools, 0);
    tp_wire_shm_pool_announce_put_header_region_uri(&e, "shm:file?path=/dev/shm/x", 24);
    int64_t n = tp_wire_shm_pool_announce_enc_finish(&e);
    assert_true(n > 20);
    assert_true(tp_bus_offer(pub, announce, 20) > 0);
    assert_true(tp_bus_offer(pub, announce, (size_t)n) > 0);
    assert_int_equal(wait_exit(listener, output), 0);
    assert_non_null(strstr(out, "unknown message: 3 bytes, too short for an SBE header"));
    assert_non_null(strstr(out, "unknown message: schema 999 template 3 version 1, 32 bytes"));
    assert_non_null(strstr(out, "malformed ShmPoolAnnounce (20 bytes)"));
    assert_non_null(strstr(out, "ShmPoolAnnounce {\"streamId\":77"));
    assert_non_null(strstr(out, "4 messages (2 unknown, 1 malformed)"));
    tp_bus_publication_close(pub);
    tp_bus_close(bus);
}

/* A region of the stream's epoch, where the driver's canonical layout puts it. */
static void region_path(char *buf, size_t capacity, uint64_t epoch, const char *file)
{
    char epoch_dir[1024];
    tp_assert_ok(tp_shm_layout_epoch_dir(epoch_dir, sizeof(epoch_dir), shm, "default", STREAM, epoch));
    snprintf(buf, capacity, "%s/%s", epoch_dir, file);
}

/* A producer of STREAM in this process (client id 0: random). */
typedef struct test_producer
{
    tp_client_context_t *ctx;
    tp_client_t *client;
    tp_producer_t *p;
} test_producer_t;

static void producer_open(test_producer_t *tp_, const char *client_id)
{
    memset(tp_, 0, sizeof(*tp_));
    tp_assert_ok(tp_client_context_init(&tp_->ctx));
    tp_assert_ok(tp_client_context_set(tp_->ctx, "client.bus_dir", bus_dir));
    tp_assert_ok(tp_client_context_set(tp_->ctx, "client.allowed_base_dirs", shm));
    tp_assert_ok(tp_client_context_set(tp_->ctx, "client.client_id", client_id));
    tp_assert_ok(tp_client_connect(&tp_->client, tp_->ctx));
    tp_assert_ok(tp_producer_attach(&tp_->p, tp_->client, STREAM, TIMEOUT_NS));
}

static void producer_close(test_producer_t *tp_)
{
    tp_producer_close(tp_->p);
    tp_client_close(tp_->client);
    tp_client_context_close(tp_->ctx);
}

static void test_inspect_and_validate(void **state)
{
    (void)state;
    /* A producer commits one frame (a 2x3 float32 tensor), so the ring has something to show. */
    test_producer_t prod;
    producer_open(&prod, "0");
    tp_producer_t *p = prod.p;
    float values[6] = { 1, 2, 3, 4, 5, 6 };
    tp_tensor_desc_t t;
    memset(&t, 0, sizeof(t));
    t.dtype = TP_DTYPE_FLOAT32;
    t.major_order = TP_MAJOR_ORDER_ROW;
    t.ndims = 2;
    t.dims[0] = 2;
    t.dims[1] = 3;
    assert_int_equal(tp_producer_offer_frame(p, values, sizeof(values), &t, 0, 0), 0);
    uint64_t epoch = tp_producer_epoch(p);
    char header[1200], pool[1200], args[2600];
    region_path(header, sizeof(header), epoch, "header.ring");
    region_path(pool, sizeof(pool), epoch, "1.pool");

    snprintf(args, sizeof(args), "inspect '%s' --slots --expect-epoch %llu --expect-stream %d", header,
        (unsigned long long)epoch, STREAM);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "header ring, 4160 bytes"));
    assert_non_null(strstr(out, "checks    ok"));
    assert_non_null(strstr(out, "(running)"));
    assert_non_null(strstr(out, "0      0            committed  1     24           FLOAT32  2x3"));
    assert_non_null(strstr(out, "1      0            empty"));
    snprintf(args, sizeof(args), "inspect 'shm:file?path=%s' --slot 0 --json --allowed-dirs '%s'", header, shm);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "\"ok\":true"));
    assert_non_null(strstr(out, "\"slots\":[{\"summary\":{\"slot\":0,\"seq\":0,\"state\":\"committed\",\"pool_id\":1,"));
    assert_non_null(strstr(out, "\"dims\":[2,3]"));
    /* --slot is the slot in full: its SlotHeader and embedded TensorHeader as the schema decodes them, JSON
     * that parses, with or without --json */
    tp_json_t *doc = NULL;
    tp_assert_ok(tp_json_parse(&doc, out, strlen(out)));
    tp_json_free(doc);
    assert_non_null(strstr(out, "\"message\":\"SlotHeader\""));
    assert_non_null(strstr(out, "\"message\":\"TensorHeader\""));
    assert_non_null(strstr(out, "\"dtype\":\"FLOAT32\""));
    snprintf(args, sizeof(args), "inspect '%s' --slot 0", header);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "checks    ok"));
    const char *json = strchr(out, '{');
    assert_non_null(json);
    tp_assert_ok(tp_json_parse(&doc, json, strlen(json)));
    tp_json_free(doc);
    assert_non_null(strstr(out, "\"valuesLenBytes\": 24"));
    /* Expectations that do not hold: exit 1 naming them. */
    snprintf(args, sizeof(args), "inspect '%s' --expect-epoch %llu", pool, (unsigned long long)epoch + 7);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "payload pool"));
    assert_non_null(strstr(out, "checks    FAILED: epoch"));
    snprintf(args, sizeof(args), "validate-uri 'shm:file?path=%s' --allowed-dirs '%s'", pool, shm);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "valid: "));

    /* Hostile files. */
    char garbage[700], short_file[700], link[700];
    snprintf(garbage, sizeof(garbage), "%s/garbage.ring", shm);
    snprintf(short_file, sizeof(short_file), "%s/short.ring", shm);
    snprintf(link, sizeof(link), "%s/link.ring", shm);
    FILE *f = fopen(garbage, "w");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
    {
        fputc((i * 37) & 0xff, f);
    }
    fclose(f);
    f = fopen(short_file, "w");
    assert_non_null(f);
    fputs("TPOLSHM", f);
    fclose(f);
    assert_int_equal(symlink(header, link), 0);
    snprintf(args, sizeof(args), "inspect '%s' --slots", garbage);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "is not TPOLSHM1"));
    assert_non_null(strstr(out, "slots are listed for a valid header ring only"));
    snprintf(args, sizeof(args), "inspect '%s'", short_file);
    assert_int_equal(tp(args), 2);
    assert_non_null(strstr(out, "7 bytes, too short for a 64-byte superblock"));
    snprintf(args, sizeof(args), "inspect '%s'", link);
    assert_int_equal(tp(args), 2);
    assert_non_null(strstr(out, "cannot open"));
    snprintf(args, sizeof(args), "validate-uri 'shm:file?path=%s' --allowed-dirs '%s'", link, shm);
    assert_int_equal(tp(args), 0); /* the canonical target is inside; mapping opens the target itself */
    snprintf(args, sizeof(args), "validate-uri 'shm:file?path=/etc/passwd' --allowed-dirs '%s'", shm);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "outside every allowed base directory"));
    assert_int_equal(tp("validate-uri 'file:///dev/shm/x'"), 1);
    assert_non_null(strstr(out, "refused:"));
    assert_int_equal(tp("inspect /nonexistent/file"), 2);
    assert_int_equal(tp("inspect"), 2);
    assert_int_equal(tp("inspect a b"), 2);
    assert_int_equal(tp("validate-uri"), 2);
    producer_close(&prod);
}

static uint64_t json_u64(const char *text, const char *key)
{
    const char *at = strstr(text, key);
    assert_non_null(at);
    return strtoull(at + strlen(key), NULL, 10);
}

static void test_attach_detach_keepalive_send(void **state)
{
    (void)state;
    char args[1024];
    /* The lease is its holder process's: held by one process, kept alive and detached by others. */
    char output[700];
    snprintf(output, sizeof(output), "%s/consumer.out", dir);
    pid_t consumer = tp_background("attach --role consumer --stream-id 10000 --client-id 5 --json --hold 60", output,
        "\"code\":\"OK\"");
    assert_true(try_read_output(output));
    assert_non_null(strstr(out, "\"header_slot_bytes\":256"));
    uint64_t lease = json_u64(out, "\"lease_id\":");
    /* The driver's status file follows within a moment. */
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (tp("driver leases") != 0 || strstr(out, "CONSUMER") == NULL)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        usleep(20000);
    }
    snprintf(args, sizeof(args),
        "keepalive --lease-id %llu --stream-id 10000 --client-id 5 --role consumer --count 2 --interval 0.05",
        (unsigned long long)lease);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "sent 2 keepalive(s)"));
    snprintf(args, sizeof(args), "detach --lease-id %llu --stream-id 10000 --client-id 5 --role consumer",
        (unsigned long long)lease);
    assert_int_equal(tp(args), 0);
    assert_non_null(strstr(out, "OK"));
    assert_int_equal(tp(args), 0); /* detach is idempotent (driver spec 4.9) */
    assert_int_equal(wait_exit(consumer, output), 1); /* the holder heard its lease end */
    assert_non_null(strstr(out, "ended by the driver (revoked)"));
    snprintf(args, sizeof(args), "detach --lease-id %llu --stream-id 10000 --client-id 5 --role consumer",
        (unsigned long long)lease + 1000);
    assert_int_equal(tp(args), 1); /* no such lease */
    assert_non_null(strstr(out, "REJECTED"));
    assert_int_equal(tp("attach --role producer --stream-id 999"), 1);
    assert_non_null(strstr(out, "REJECTED: stream 999 is not provisioned"));
    assert_int_equal(tp("attach --role producer --stream-id 10000 --hold 0.3"), 0);
    assert_non_null(strstr(out, "OK: PRODUCER lease"));
    assert_non_null(strstr(out, "detach: OK"));
    /* A held producer lease keeps the stream: a second producer is refused; Ctrl-C ends the hold cleanly. */
    snprintf(output, sizeof(output), "%s/hold.out", dir);
    pid_t holder = tp_background("attach --role producer --stream-id 10000 --hold 60", output, "OK: PRODUCER");
    assert_int_equal(tp("attach --role producer --stream-id 10000"), 1);
    assert_non_null(strstr(out, "already has a producer"));
    assert_int_equal(kill(holder, SIGINT), 0);
    assert_int_equal(wait_exit(holder, output), 0);
    assert_non_null(strstr(out, "detach: OK"));
    /* Nobody answers on another control stream. */
    assert_int_equal(tp("attach --role consumer --stream-id 10000 --control-stream-id 4242 --timeout 0.3"), 1);
    assert_non_null(strstr(out, "no attach response from the driver within 300 ms"));
    /* A ConsumerConfig by hand, seen on the control stream. */
    snprintf(output, sizeof(output), "%s/listen.out", dir);
    pid_t listener = tp_background("listen control --json --duration 5", output, "tp listen: control on");
    assert_int_equal(tp("send consumer-config --stream-id 10000 --client-id 5 --mode rate-limited "
                        "--descriptor-channel aeron:ipc --descriptor-stream-id 31000"),
        0);
    await_output(output, "ConsumerConfig");
    kill(listener, SIGINT);
    wait_exit(listener, output);
    assert_non_null(strstr(out, "\"mode\":\"RATE_LIMITED\""));
    assert_non_null(strstr(out, "\"descriptorStreamId\":31000"));
    /* Usage errors. */
    assert_int_equal(tp("attach --stream-id 10000"), 2);
    assert_non_null(strstr(out, "--role is required"));
    assert_int_equal(tp("attach --role boss --stream-id 1"), 2);
    assert_non_null(strstr(out, "--role is producer or consumer"));
    assert_int_equal(tp("detach --lease-id 1 --stream-id 1"), 2);
    assert_non_null(strstr(out, "--client-id is required"));
    assert_int_equal(tp("send consumer-config --stream-id 1 --client-id 2 --descriptor-stream-id 5"), 2);
    assert_non_null(strstr(out, "needs both its channel and a non-zero stream id"));
    assert_int_equal(tp("send nothing"), 2);
    assert_int_equal(tp("attach --role consumer --stream-id 1 --hold"), 2);
    assert_non_null(strstr(out, "--hold needs a value"));
}

static void on_top_frame(void *clientd, const tp_frame_t *f)
{
    (void)clientd;
    (void)f;
}

static void test_top_once(void **state)
{
    (void)state;
    test_producer_t prod;
    producer_open(&prod, "4321");
    tp_producer_t *p = prod.p;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, prod.client, STREAM, TIMEOUT_NS));
    char output[700];
    snprintf(output, sizeof(output), "%s/top.out", dir);
    pid_t top = fork();
    assert_true(top >= 0);
    if (top == 0)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd), "TP_BUS_DIR='%s' exec %s top --once --interval 1.5 > '%s' 2>&1", bus_dir,
            TP_TOOL, output);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* 1000-byte frames at about 1 kHz while tp top samples. */
    uint8_t frame[1000];
    memset(frame, 7, sizeof(frame));
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    int status = 0;
    while (waitpid(top, &status, WNOHANG) == 0)
    {
        tp_producer_offer_frame(p, frame, sizeof(frame), &t, 0, 0);
        tp_producer_do_work(p);
        while (tp_consumer_poll(c, on_top_frame, NULL, 16) > 0) /* also sends its QosConsumer every second */
        {
        }
        usleep(1000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(try_read_output(output));
    print_message("%s", out);
    assert_non_null(strstr(out, "(running)"));
    const char *row = strstr(out, "\n10000 ");
    assert_non_null(row);
    char name[64], producer_word[32], producer_id[32], drops[32];
    unsigned long long epoch = 0, consumers = 0;
    double fps = 0, mibs = 0;
    assert_int_equal(sscanf(row, " 10000 %63s %llu %31s %31s %llu %lf %lf %31s", name, &epoch, producer_word,
                         producer_id, &consumers, &fps, &mibs, drops),
        8);
    assert_int_equal(consumers, 1);
    assert_string_equal(drops, "0/0"); /* the consumer's QoS report, nothing dropped */
    assert_string_equal(name, "cam");
    assert_int_equal(epoch, tp_producer_epoch(p));
    assert_string_equal(producer_id, "4321");
    assert_true(fps > 50);
    assert_true(mibs > 0.04);
    assert_non_null(strstr(row, "s ago"));
    tp_consumer_close(c);
    producer_close(&prod);
    /* Interactive, in a terminal (a pty from script(1)): full-screen refreshes, `q` quits with status 0. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
        "(printf q; sleep 2) | TP_BUS_DIR='%s' timeout 20 script -qec '%s top --interval 0.2' /dev/null 2>&1",
        bus_dir, TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\033[H\033[2J"));
    assert_non_null(strstr(out, "q quits"));
    /* A narrow terminal: no line wraps (the terminal's width, here from COLUMNS as script's pty has none). */
    snprintf(cmd, sizeof(cmd),
        "(printf q; sleep 2) | COLUMNS=48 TP_BUS_DIR='%s' timeout 20 script -qec '%s top --interval 0.2' /dev/null "
        "2>&1",
        bus_dir, TP_TOOL);
    assert_int_equal(tp_test_run(cmd, out, sizeof(out)), 0);
    int cut_lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
    {
        char *clear = strstr(line, "\033[H\033[2J");
        const char *text = clear != NULL ? clear + 7 : line;
        size_t n = strcspn(text, "\r");
        if (n > 48)
        {
            fail_msg("a %zu-column line in a 48-column terminal: %.*s", n, (int)n, text);
        }
        cut_lines += n == 48 && text[47] == '~';
    }
    assert_true(cut_lines > 0);
    /* A bus directory that does not exist: said so, and not created. Then no driver: a clear error, exit 1. */
    char args[800];
    snprintf(args, sizeof(args), "top --once --bus-dir '%s/nowhere'", dir);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "nowhere' does not exist"));
    snprintf(args, sizeof(args), "%s/nowhere", dir);
    assert_int_not_equal(access(args, F_OK), 0);
    snprintf(args, sizeof(args), "listen control --duration 0.1 --bus-dir '%s/nowhere'", dir);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "does not exist"));
    snprintf(args, sizeof(args), "%s/empty-bus", dir);
    assert_int_equal(mkdir(args, 0700), 0);
    snprintf(args, sizeof(args), "top --once --bus-dir '%s/empty-bus'", dir);
    assert_int_equal(tp(args), 1);
    assert_non_null(strstr(out, "no driver status"));
    assert_int_equal(tp("top --interval"), 2);
    /* One environment for applications and tools: the tools read the client's TP_CLIENT_<X> too, and their own
     * TP_<X> wins over it. */
    setenv("TP_CLIENT_CONTROL_STREAM_ID", "0", 1);
    snprintf(args, sizeof(args), "top --once --bus-dir '%s/nowhere'", dir);
    assert_int_equal(tp(args), 2);
    tp_test_assert_contains(out, "TP_CLIENT_CONTROL_STREAM_ID");
    setenv("TP_CONTROL_STREAM_ID", "1000", 1);
    assert_int_equal(tp(args), 1); /* past the environment: the bus directory does not exist */
    unsetenv("TP_CONTROL_STREAM_ID");
    unsetenv("TP_CLIENT_CONTROL_STREAM_ID");
    assert_int_equal(tp("top --bogus"), 2);
}

/* `tp consume --count N` stops at exactly N frames even when one poll could deliver a burst of more. */
static void test_consume_stops_at_count(void **state)
{
    (void)state;
    char output[700];
    snprintf(output, sizeof(output), "%s/consume.out", dir);
    pid_t consumer = tp_background("consume 10000 --count 3 --seconds 20", output, "tp consume: stream 10000");
    test_producer_t prod;
    producer_open(&prod, "0");
    uint8_t frame[64] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(frame));
    /* Bursts of 12 frames, each well inside the consumer's 100 us pause, until it has remapped and is done. */
    int status = 0;
    while (waitpid(consumer, &status, WNOHANG) == 0)
    {
        for (int i = 0; i < 12; i++)
        {
            tp_assert_ok(tp_producer_offer_frame(prod.p, frame, sizeof(frame), &t, 0, 0));
        }
        tp_producer_do_work(prod.p);
        usleep(20000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(try_read_output(output));
    assert_non_null(strstr(out, "consumed 3 frames (0 failed --verify)"));
    producer_close(&prod);
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(tp("listen"), 2);
    assert_non_null(strstr(out, "usage: tp listen"));
    assert_int_equal(tp("listen bogus"), 2);
    assert_non_null(strstr(out, "tp listen: unknown stream kind 'bogus'"));
    assert_int_equal(tp("listen all --stream-id 5"), 2);
    assert_non_null(strstr(out, "not with 'all'"));
    assert_int_equal(tp("listen control --stream-id x"), 2);
    assert_non_null(strstr(out, "'x' is not an integer"));
    assert_int_equal(tp("listen control --duration"), 2);
    assert_non_null(strstr(out, "--duration needs a value"));
    assert_int_equal(tp("listen control --nope"), 2);
    assert_non_null(strstr(out, "unknown option '--nope'"));
    assert_int_equal(tp("listen --help"), 0);
    assert_non_null(strstr(out, "examples:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listen_decodes_announces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_survives_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_and_validate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_detach_keepalive_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_stops_at_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
