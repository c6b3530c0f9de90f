/* The lineage store in SQLite; see tp_lineage.h. */
#include "cli/tp_lineage.h"

#include <sqlite3.h>
#include <string.h>

#include "core/tp_alloc.h"
#include "core/tp_err.h"

enum
{
    ST_FRAME,
    ST_LINK,
    ST_FRAMES_OF,
    ST_FRAME_AT,
    ST_FRAME_AT_NEWEST,
    ST_PARENTS,
    ST_CHILDREN,
    ST_ANCESTORS,
    ST_COUNT,
};

struct tp_lineage
{
    sqlite3 *db;
    bool is_writer;
    bool is_in_batch;
    sqlite3_stmt *st[ST_COUNT];
};

/* Section 10's tables, plus the time each frame and link was recorded (for retention). Window metadata has no
 * wire message: its table is there for stages that record windows themselves, and lineage queries use it. */
static const char *const schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS frames ("
    "  stream_id INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, stage_id INTEGER NOT NULL,"
    "  t_ns INTEGER NOT NULL, trace_id INTEGER NOT NULL, status INTEGER NOT NULL,"
    "  PRIMARY KEY (stream_id, epoch, seq)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS frames_trace_idx ON frames(trace_id);"
    "CREATE INDEX IF NOT EXISTS frames_time_idx ON frames(t_ns);"
    "CREATE TABLE IF NOT EXISTS trace_links ("
    "  trace_id INTEGER NOT NULL, parent_trace_id INTEGER NOT NULL, t_ns INTEGER NOT NULL,"
    "  PRIMARY KEY (trace_id, parent_trace_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS trace_links_parent_idx ON trace_links(parent_trace_id);"
    "CREATE INDEX IF NOT EXISTS trace_links_time_idx ON trace_links(t_ns);"
    "CREATE TABLE IF NOT EXISTS trace_windows ("
    "  trace_id INTEGER NOT NULL, in_stream_id INTEGER NOT NULL, epoch INTEGER NOT NULL,"
    "  seq_start INTEGER, seq_end INTEGER, t_start_ns INTEGER, t_end_ns INTEGER,"
    "  PRIMARY KEY (trace_id, in_stream_id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS trace_windows_stream_idx ON trace_windows(in_stream_id, epoch);";

/* Parents: the recorded links, and the traced frames inside a recorded window (section 12.1). */
#define PARENTS_SQL                                                                                                  \
    "SELECT parent_trace_id FROM trace_links WHERE trace_id = ?1 "                                                   \
    "UNION SELECT f.trace_id FROM trace_windows w JOIN frames f ON f.stream_id = w.in_stream_id AND "                \
    "f.epoch = w.epoch AND f.trace_id != 0 AND f.seq BETWEEN w.seq_start AND w.seq_end WHERE w.trace_id = ?1"

static const char *const statements[ST_COUNT] = {
    [ST_FRAME] = "INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_LINK] = "INSERT OR IGNORE INTO trace_links VALUES (?, ?, ?)",
    [ST_FRAMES_OF] = "SELECT stream_id, epoch, seq, stage_id, t_ns, trace_id, status FROM frames WHERE trace_id = ? "
                     "ORDER BY t_ns, stream_id",
    [ST_FRAME_AT] = "SELECT stream_id, epoch, seq, stage_id, t_ns, trace_id, status FROM frames "
                    "WHERE stream_id = ? AND epoch = ? AND seq = ?",
    [ST_FRAME_AT_NEWEST] = "SELECT stream_id, epoch, seq, stage_id, t_ns, trace_id, status FROM frames "
                           "WHERE stream_id = ? AND seq = ? ORDER BY epoch DESC LIMIT 1",
    [ST_PARENTS] = PARENTS_SQL " ORDER BY 1",
    [ST_CHILDREN] = "SELECT trace_id FROM trace_links WHERE parent_trace_id = ? ORDER BY 1",
    [ST_ANCESTORS] = "WITH RECURSIVE ancestors(id, depth) AS ("
                     "  SELECT parent_trace_id, 1 FROM trace_links WHERE trace_id = ?1"
                     "  UNION SELECT l.parent_trace_id, a.depth + 1 FROM trace_links l JOIN ancestors a "
                     "    ON l.trace_id = a.id WHERE a.depth < ?2) "
                     "SELECT id, MIN(depth) AS d FROM ancestors GROUP BY id ORDER BY d, id",
};

static int sql_error(tp_lineage_t *db, const char *what)
{
    TP_SET_ERR(TP_E_GENERIC, "%s: %s", what, db->db != NULL ? sqlite3_errmsg(db->db) : "no database");
    return -1;
}

int tp_lineage_open(tp_lineage_t **out, const char *path, bool is_writer)
{
    *out = NULL;
    tp_lineage_t *db = NULL;
    if (tp_alloc((void **)&db, sizeof(*db)) < 0)
    {
        return -1;
    }
    db->is_writer = is_writer;
    int flags = is_writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    if (sqlite3_open_v2(path, &db->db, flags, NULL) != SQLITE_OK)
    {
        sql_error(db, "opening the lineage database");
        goto error;
    }
    sqlite3_busy_timeout(db->db, 5000); /* a reader may meet the recorder's checkpoint */
    if (is_writer && sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK)
    {
        sql_error(db, "creating the lineage tables");
        goto error;
    }
    for (int i = 0; i < ST_COUNT; i++)
    {
        if ((!is_writer && (i == ST_FRAME || i == ST_LINK)) ||
            sqlite3_prepare_v2(db->db, statements[i], -1, &db->st[i], NULL) == SQLITE_OK)
        {
            continue;
        }
        sql_error(db, is_writer ? "preparing the lineage statements" : "reading the lineage database (is it one?)");
        goto error;
    }
    *out = db;
    return 0;
error:
    TP_APPEND_ERR("lineage database %s", path);
    tp_lineage_close(db);
    return -1;
}

int tp_lineage_close(tp_lineage_t *db)
{
    if (db == NULL)
    {
        return 0;
    }
    int rc = db->is_in_batch ? tp_lineage_flush(db) : 0;
    for (int i = 0; i < ST_COUNT; i++)
    {
        sqlite3_finalize(db->st[i]);
    }
    sqlite3_close(db->db);
    tp_free(db);
    return rc;
}

static int begin_batch(tp_lineage_t *db)
{
    if (db->is_in_batch)
    {
        return 0;
    }
    if (sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
    {
        return sql_error(db, "starting a batch");
    }
    db->is_in_batch = true;
    return 0;
}

int tp_lineage_flush(tp_lineage_t *db)
{
    if (!db->is_in_batch)
    {
        return 0;
    }
    db->is_in_batch = false;
    if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
        return sql_error(db, "committing a batch");
    }
    return 0;
}

static int step_done(tp_lineage_t *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sql_error(db, what);
}

int tp_lineage_add_frame(tp_lineage_t *db, const tp_lineage_frame_t *f)
{
    if (begin_batch(db) < 0)
    {
        return -1;
    }
    sqlite3_stmt *st = db->st[ST_FRAME];
    sqlite3_bind_int64(st, 1, f->stream_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)f->epoch);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)f->seq);
    sqlite3_bind_int64(st, 4, f->stage_id);
    sqlite3_bind_int64(st, 5, f->t_ns);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)f->trace_id);
    sqlite3_bind_int(st, 7, f->status);
    return step_done(db, st, "recording a frame");
}

int tp_lineage_add_link(tp_lineage_t *db, const tp_trace_link_t *link, int64_t t_ns)
{
    if (begin_batch(db) < 0)
    {
        return -1;
    }
    sqlite3_stmt *st = db->st[ST_LINK];
    for (uint32_t i = 0; i < link->parent_count; i++)
    {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)link->trace_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)link->parents[i]);
        sqlite3_bind_int64(st, 3, t_ns);
        if (step_done(db, st, "recording a trace link") < 0)
        {
            return -1;
        }
    }
    return 0;
}

int64_t tp_lineage_expire(tp_lineage_t *db, int64_t cutoff_ns)
{
    if (tp_lineage_flush(db) < 0)
    {
        return -1;
    }
    int64_t deleted = 0;
    const char *sql[2] = {"DELETE FROM frames WHERE t_ns < ?", "DELETE FROM trace_links WHERE t_ns < ?"};
    for (int i = 0; i < 2; i++)
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->db, sql[i], -1, &st, NULL) != SQLITE_OK)
        {
            return sql_error(db, "expiring old records");
        }
        sqlite3_bind_int64(st, 1, cutoff_ns);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
        {
            return sql_error(db, "expiring old records");
        }
        deleted += sqlite3_changes(db->db);
    }
    return deleted;
}

static void read_frame(sqlite3_stmt *st, tp_lineage_frame_t *f)
{
    f->stream_id = (uint32_t)sqlite3_column_int64(st, 0);
    f->epoch = (uint64_t)sqlite3_column_int64(st, 1);
    f->seq = (uint64_t)sqlite3_column_int64(st, 2);
    f->stage_id = (uint32_t)sqlite3_column_int64(st, 3);
    f->t_ns = sqlite3_column_int64(st, 4);
    f->trace_id = (uint64_t)sqlite3_column_int64(st, 5);
    f->status = sqlite3_column_int(st, 6);
}

/* Run a bound query: each row to on_row; 0 when done, -1 on error. */
static int each_row(tp_lineage_t *db, sqlite3_stmt *st, int (*on_row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    {
        if (on_row(st, ctx) != 0)
        {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sql_error(db, "querying the lineage database");
}

typedef struct frame_ctx
{
    tp_lineage_frame_fn fn;
    void *clientd;
} frame_ctx_t;

static int frame_row(sqlite3_stmt *st, void *ctx)
{
    frame_ctx_t *c = ctx;
    tp_lineage_frame_t f;
    read_frame(st, &f);
    return c->fn(c->clientd, &f);
}

typedef struct id_ctx
{
    tp_lineage_id_fn fn;
    void *clientd;
} id_ctx_t;

static int id_row(sqlite3_stmt *st, void *ctx)
{
    id_ctx_t *c = ctx;
    uint32_t depth = sqlite3_column_count(st) > 1 ? (uint32_t)sqlite3_column_int(st, 1) : 1;
    return c->fn(c->clientd, (uint64_t)sqlite3_column_int64(st, 0), depth);
}

int tp_lineage_frames_of(tp_lineage_t *db, uint64_t trace_id, tp_lineage_frame_fn fn, void *clientd)
{
    frame_ctx_t c = {fn, clientd};
    sqlite3_bind_int64(db->st[ST_FRAMES_OF], 1, (sqlite3_int64)trace_id);
    return each_row(db, db->st[ST_FRAMES_OF], frame_row, &c);
}

static int copy_frame(void *clientd, const tp_lineage_frame_t *f)
{
    *(tp_lineage_frame_t *)clientd = *f;
    return 1;
}

int tp_lineage_frame_at(tp_lineage_t *db, uint32_t stream_id, uint64_t epoch, uint64_t seq, tp_lineage_frame_t *out)
{
    bool is_newest = epoch == UINT64_MAX;
    sqlite3_stmt *st = db->st[is_newest ? ST_FRAME_AT_NEWEST : ST_FRAME_AT];
    sqlite3_bind_int64(st, 1, stream_id);
    if (is_newest)
    {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    }
    else
    {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)epoch);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    }
    out->stream_id = 0;
    frame_ctx_t c = {copy_frame, out};
    if (each_row(db, st, frame_row, &c) < 0)
    {
        return -1;
    }
    return out->stream_id != 0 ? 1 : 0;
}

static int ids(tp_lineage_t *db, int which, uint64_t trace_id, tp_lineage_id_fn fn, void *clientd)
{
    id_ctx_t c = {fn, clientd};
    sqlite3_bind_int64(db->st[which], 1, (sqlite3_int64)trace_id);
    return each_row(db, db->st[which], id_row, &c);
}

int tp_lineage_parents(tp_lineage_t *db, uint64_t trace_id, tp_lineage_id_fn fn, void *clientd)
{
    return ids(db, ST_PARENTS, trace_id, fn, clientd);
}

int tp_lineage_children(tp_lineage_t *db, uint64_t trace_id, tp_lineage_id_fn fn, void *clientd)
{
    return ids(db, ST_CHILDREN, trace_id, fn, clientd);
}

int tp_lineage_ancestors(tp_lineage_t *db, uint64_t trace_id, uint32_t max_depth, tp_lineage_id_fn fn, void *clientd)
{
    sqlite3_bind_int64(db->st[ST_ANCESTORS], 2, max_depth);
    return ids(db, ST_ANCESTORS, trace_id, fn, clientd);
}

static int count_row(sqlite3_stmt *st, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(st, 0);
    return 1;
}

int tp_lineage_totals(tp_lineage_t *db, tp_lineage_totals_t *out)
{
    const char *sql[2] = {"SELECT COUNT(*) FROM frames", "SELECT COUNT(*) FROM trace_links"};
    int64_t *dst[2] = {&out->frames, &out->links};
    for (int i = 0; i < 2; i++)
    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db->db, sql[i], -1, &st, NULL) != SQLITE_OK)
        {
            return sql_error(db, "counting records");
        }
        int rc = each_row(db, st, count_row, dst[i]);
        sqlite3_finalize(st);
        if (rc < 0)
        {
            return -1;
        }
    }
    return 0;
}
