/*
 * Wire spec rules about what travels where, checked on a live session (embedded driver, producer and consumer):
 * every message on the control, descriptor, QoS and metadata streams is a whole SBE message behind the 8-byte
 * header and the SHM directory holds only header rings and pools; an announce is only published once its epoch's
 * superblock is written; the consumer maps every region read-only; and it never scans a directory to find them.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/tp_consumer_internal.h"
#include "core/tp_clock.h"
#include "shm/tp_region_uri.h"
#include "shm/tp_shm_region.h"
#include "tensorpool/tp_bus.h"
#include "tensorpool/tp_client.h"
#include "tensorpool/tp_metadata.h"
#include "tp_client_fixture.h"
#include "tp_sbe_wire.h"
#include "tp_test_util.h"
#include "wire/tp_sbe.h"

#define STREAM 10
#define TIMEOUT_NS (5 * TP_NS_PER_S)

static client_fixture_t F;
static tp_client_t *client;

/* ---- directory scans by the thread under test ---- */

static __thread bool is_watched;
static __thread int depth; /* one listing counts once, whatever the C library calls inside */
static int scans;

/* A listing of a directory under the SHM base directory (the bus keeps its own directory tidy: not counted). */
static bool is_shm_dir(const char *path)
{
    return strncmp(path, F.shm, strlen(F.shm)) == 0;
}

/* Every directory listing of this process goes through here; those of the watched thread are counted. */
DIR *opendir(const char *name)
{
    static DIR *(*real)(const char *);
    if (real == NULL)
    {
        *(void **)&real = dlsym(RTLD_NEXT, "opendir");
    }
    if (is_watched && depth == 0 && is_shm_dir(name))
    {
        scans++; /* only the watched thread writes it */
    }
    depth++;
    DIR *d = real(name);
    depth--;
    return d;
}

DIR *fdopendir(int fd)
{
    static DIR *(*real)(int);
    if (real == NULL)
    {
        *(void **)&real = dlsym(RTLD_NEXT, "fdopendir");
    }
    char link[64], path[4096] = "";
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = '\0';
    if (is_watched && depth == 0 && is_shm_dir(path))
    {
        scans++;
    }
    depth++;
    DIR *d = real(fd);
    depth--;
    return d;
}

static int setup(void **state)
{
    (void)state;
    client_fixture_prepare(&F, "client-wire-rules");
    client_fixture_add_stream(&F, "cam", STREAM, "small", 16, 4096);
    tp_assert_ok(tp_driver_context_set(F.dctx, "policies.announce_period_ms", "50"));
    client_fixture_start(&F);
    tp_assert_ok(tp_client_context_set(F.cctx, "client.qos_period_ms", "20"));
    tp_assert_ok(tp_client_context_set(F.cctx, "client.metadata_period_ms", "20"));
    tp_assert_ok(tp_client_connect(&client, F.cctx));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_assert_ok(tp_client_close(client));
    client_fixture_close(&F);
    return 0;
}

static void on_frame(void *clientd, const tp_frame_t *f)
{
    (void)f;
    (*(int *)clientd)++;
}

/* ---- every message is SBE behind the standard header ---- */

typedef struct census
{
    int messages;
    int bad;
    int templates[8][64]; /* per schema (index in tp_sbe_schemas), per template id: how many */
} census_t;

static void on_any(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    census_t *c = clientd;
    c->messages++;
    tp_sbe_header_t h;
    const tp_sbe_message_meta_t *meta = NULL;
    tp_sbe_msg_view_t view;
    if (tp_sbe_header_read(&h, buffer, length) < 0 ||
        (meta = tp_sbe_message_find(h.schema_id, h.template_id)) == NULL || meta->is_headerless ||
        h.block_length != meta->body.block_length || h.version != meta->schema_version ||
        tp_sbe_decode(&view, meta, buffer, length) < 0)
    {
        c->bad++;
        return;
    }
    for (size_t i = 0; i < tp_sbe_schema_count && i < 8; i++)
    {
        if (tp_sbe_schemas[i]->id == h.schema_id && h.template_id < 64)
        {
            c->templates[i][h.template_id]++;
        }
    }
}

static int seen(const census_t *c, uint16_t schema_id, uint16_t template_id)
{
    for (size_t i = 0; i < tp_sbe_schema_count && i < 8; i++)
    {
        if (tp_sbe_schemas[i]->id == schema_id)
        {
            return c->templates[i][template_id];
        }
    }
    return 0;
}

static int count_unexpected_files(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F)
    {
        return 0;
    }
    const char *base = strrchr(path, '/') + 1;
    size_t n = strlen(base);
    bool is_region = strcmp(base, "header.ring") == 0 || (n > 5 && strcmp(base + n - 5, ".pool") == 0) ||
        strcmp(base, "driver.lock") == 0; /* the driver's lock, beside the streams */
    if (!is_region)
    {
        print_message("unexpected file in the SHM directory: %s\n", path);
    }
    return is_region ? 0 : 1;
}

static void test_every_message_is_sbe_on_the_bus(void **state)
{
    (void)state;
    /* A session's control, descriptor, QoS and metadata traffic, read raw: each message is one whole SBE message
     * of a known schema and template behind the 8-byte header, with that template's block length and version; the
     * SHM side holds the regions and nothing else (no counters region).
     * covers: W-10-1, W-15.16-1 */
    tp_bus_t *bus = NULL;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    const int32_t streams[] = { 1000, 1100, 1200, 1300 };
    tp_bus_subscription_t *subs[4];
    for (int i = 0; i < 4; i++)
    {
        tp_assert_ok(tp_bus_subscription_open(&subs[i], bus, TP_BUS_DEFAULT_CHANNEL, streams[i], NULL, NULL, NULL));
    }
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_metadata_set_source(tp_producer_metadata(p), "cam", "a camera"));
    tp_assert_ok(tp_metadata_set_text(tp_producer_metadata(p), "tags", "front"));
    census_t k[4];
    memset(k, 0, sizeof(k));
    int frames = 0;
    uint8_t payload[256] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(payload));
    int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
    while (frames < 20 || seen(&k[2], TP_WIRE_SCHEMA_ID, TP_WIRE_QOS_CONSUMER_TEMPLATE_ID) == 0 ||
           seen(&k[2], TP_WIRE_SCHEMA_ID, TP_WIRE_QOS_PRODUCER_TEMPLATE_ID) == 0 ||
           seen(&k[3], TP_WIRE_SCHEMA_ID, TP_WIRE_DATA_SOURCE_META_TEMPLATE_ID) == 0)
    {
        assert_true(tp_clock_monotonic_ns() < deadline);
        if (frames < 20)
        {
            assert_true(tp_producer_offer_frame(p, payload, sizeof(payload), &t, 0, 0) >= 0);
        }
        tp_producer_do_work(p);
        tp_consumer_poll(c, on_frame, &frames, 16);
        for (int i = 0; i < 4; i++)
        {
            tp_bus_poll(subs[i], on_any, &k[i], 64);
        }
        usleep(1000);
    }
    for (int i = 0; i < 4; i++)
    {
        assert_true(k[i].messages > 0);
        assert_int_equal(k[i].bad, 0);
    }
    assert_true(seen(&k[0], TP_WIRE_SCHEMA_ID, TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID) > 0);
    assert_true(seen(&k[1], TP_WIRE_SCHEMA_ID, TP_WIRE_FRAME_DESCRIPTOR_TEMPLATE_ID) >= 20);
    assert_true(seen(&k[3], TP_WIRE_SCHEMA_ID, TP_WIRE_DATA_SOURCE_ANNOUNCE_TEMPLATE_ID) > 0);
    assert_int_equal(nftw(F.shm, count_unexpected_files, 16, FTW_PHYS), 0);
    tp_consumer_close(c);
    tp_producer_close(p);
    for (int i = 0; i < 4; i++)
    {
        tp_bus_subscription_close(subs[i]);
    }
    tp_bus_close(bus);
}

/* ---- an announce comes after its superblock ---- */

typedef struct announce_check
{
    uint64_t epochs_checked;
    int bad;
    uint64_t last_epoch;
} announce_check_t;

static void on_announce(void *clientd, const uint8_t *buffer, size_t length, const tp_bus_header_t *header)
{
    (void)header;
    announce_check_t *a = clientd;
    tp_sbe_header_t h;
    tp_wire_shm_pool_announce_t m;
    if (tp_sbe_header_read(&h, buffer, length) < 0 || h.schema_id != TP_WIRE_SCHEMA_ID ||
        h.template_id != TP_WIRE_SHM_POOL_ANNOUNCE_TEMPLATE_ID ||
        tp_wire_shm_pool_announce_decode(&m, buffer, length) < 0 ||
        tp_wire_shm_pool_announce_stream_id(&m) != STREAM || tp_wire_shm_pool_announce_epoch(&m) == a->last_epoch)
    {
        return;
    }
    /* The first announce of an epoch: its header region is already complete on disk. */
    a->last_epoch = tp_wire_shm_pool_announce_epoch(&m);
    tp_sbe_bytes_t u = tp_wire_shm_pool_announce_header_region_uri(&m);
    tp_region_uri_t uri;
    uint8_t raw[64];
    int fd = -1;
    tp_superblock_t sb;
    if (tp_region_uri_parse(&uri, (const char *)u.data, u.length) < 0 || (fd = open(uri.path, O_RDONLY)) < 0 ||
        pread(fd, raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
    {
        a->bad++;
    }
    else
    {
        tp_superblock_read(raw, &sb);
        a->bad += sb.magic != TP_SUPERBLOCK_MAGIC || sb.epoch != a->last_epoch || sb.stream_id != STREAM ||
            sb.layout_version != TP_LAYOUT_VERSION || sb.region_type != TP_REGION_HEADER_RING;
    }
    if (fd >= 0)
    {
        close(fd);
    }
    a->epochs_checked++;
}

static void test_announce_follows_the_superblock(void **state)
{
    (void)state;
    /* Each new epoch (a producer attaching, detaching, attaching again): by the time its first ShmPoolAnnounce is
     * read, the epoch's header ring exists with a complete superblock for that epoch. covers: W-15.14-3 */
    tp_bus_t *bus = NULL;
    tp_bus_subscription_t *sub = NULL;
    tp_assert_ok(tp_bus_init(&bus, F.bus));
    tp_assert_ok(tp_bus_subscription_open(&sub, bus, TP_BUS_DEFAULT_CHANNEL, 1000, NULL, NULL, NULL));
    announce_check_t a = { 0 };
    for (int round = 0; round < 3; round++)
    {
        tp_producer_t *p = NULL;
        tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
        uint64_t epoch = tp_producer_epoch(p);
        int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
        while (a.last_epoch < epoch)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            tp_bus_poll(sub, on_announce, &a, 16);
            tp_producer_do_work(p);
        }
        tp_producer_close(p);
    }
    assert_true(a.epochs_checked >= 3);
    assert_int_equal(a.bad, 0);
    tp_bus_subscription_close(sub);
    tp_bus_close(bus);
}

/* ---- read-only mappings ---- */

/* The permissions of the mapping that starts at base in /proc/self/maps ("r--s"), "" if none. */
static void mapping_perms(const void *base, char perms[5])
{
    perms[0] = '\0';
    FILE *f = fopen("/proc/self/maps", "re");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof(line), f) != NULL)
    {
        unsigned long start = 0;
        char p[5] = "";
        if (sscanf(line, "%lx-%*x %4s", &start, p) == 2 && start == (unsigned long)(uintptr_t)base)
        {
            memcpy(perms, p, 5);
            break;
        }
    }
    fclose(f);
}

static void test_consumer_maps_read_only(void **state)
{
    (void)state;
    /* The producer is the only writer of its regions: a consumer's mapping of the header ring and of every pool
     * has no write permission, so not even a bug of ours could write there. covers: W-15.16-4 */
    tp_producer_t *p = NULL;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    char perms[5];
    mapping_perms(c->lease.header.base, perms);
    assert_string_equal(perms, "r--s");
    assert_true(c->lease.pool_count > 0);
    for (uint32_t i = 0; i < c->lease.pool_count; i++)
    {
        mapping_perms(c->lease.pools[i].base, perms);
        assert_string_equal(perms, "r--s");
    }
    /* and the producer's own mapping is the writable one */
    tp_consumer_close(c);
    tp_producer_close(p);
}

/* ---- no directory scanning ---- */

static void test_consumer_never_scans_directories(void **state)
{
    (void)state;
    /* A consumer attaching, remapping after a new epoch and reading frames lists no directory: every path comes
     * from the driver's messages. The driver's own thread (epoch GC) is not watched.
     * covers: W-15.21a.1-1, W-15.21a.4-3 */
    tp_producer_t *p = NULL;
    tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
    is_watched = true;
    int before = scans;
    DIR *probe = opendir(F.shm); /* the counter works */
    assert_non_null(probe);
    closedir(probe);
    assert_int_equal(scans, before + 1);
    before = scans;
    tp_consumer_t *c = NULL;
    tp_assert_ok(tp_consumer_attach(&c, client, STREAM, TIMEOUT_NS));
    uint8_t payload[64] = { 0 };
    tp_tensor_desc_t t;
    tp_tensor_bytes(&t, sizeof(payload));
    int frames = 0;
    for (int round = 0; round < 2; round++)
    {
        int64_t deadline = tp_clock_monotonic_ns() + TIMEOUT_NS;
        int target = frames + 5;
        while (frames < target)
        {
            assert_true(tp_clock_monotonic_ns() < deadline);
            if (tp_producer_is_attached(p))
            {
                tp_producer_offer_frame(p, payload, sizeof(payload), &t, 0, 0);
            }
            tp_producer_do_work(p);
            tp_consumer_poll(c, on_frame, &frames, 16);
        }
        if (round == 0)
        {
            is_watched = false;
            tp_producer_close(p); /* a new epoch: the consumer maps again */
            tp_assert_ok(tp_producer_attach(&p, client, STREAM, TIMEOUT_NS));
            is_watched = true;
        }
    }
    tp_consumer_counters_t k;
    tp_consumer_counters(c, &k);
    assert_true(k.remaps >= 1);
    assert_int_equal(scans, before);
    is_watched = false;
    tp_consumer_close(c);
    tp_producer_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_message_is_sbe_on_the_bus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_follows_the_superblock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_maps_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_never_scans_directories, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
