/*
 * `tp top`: a live table of every stream of a driver, refreshed every second: producer, epoch, consumers (from
 * the driver's status file), frames/s and bytes/s (from the descriptors on the bus, each frame's length read from
 * its header slot), drops (from QosConsumer, when consumers send it) and the age of the last announce
 * (tp_cli_monitor.c watches all that). Plain ANSI output that works over ssh; `q` or Ctrl-C quits; `--once` prints
 * one snapshot for scripts.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/tp_cli.h"
#include "cli/tp_cli_monitor.h"
#include "core/tp_clock.h"
#include "core/tp_err.h"
#include "core/tp_strbuf.h"

typedef struct top_args
{
    const char *bus_dir;
    uint32_t control_stream_id;
} top_args_t;

static void top_usage(FILE *out)
{
    fprintf(out,
        "usage: tp top [--once] [--interval S] [--bus-dir DIR] [--control-stream-id N]\n\n"
        "A live table of the driver's streams, refreshed every second: epoch, producer, consumers, frames/s,\n"
        "MiB/s, drops reported by consumers (QosConsumer), and the age of the last ShmPoolAnnounce. It reads the\n"
        "driver's status file and listens to the announce, descriptor (1100) and QoS (1200) streams; frame sizes\n"
        "come from the header slots, mapped read-only. Plain ANSI: works in any terminal over ssh. q or Ctrl-C\n"
        "quits.\n\n"
        "options:\n"
        "  --once             sample for one interval, print one table without escape codes, exit\n"
        "  --interval S       refresh (or sampling) period in seconds [1]\n"
        "  --bus-dir DIR      the bus directory ($TP_BUS_DIR, else /dev/shm/tensorpool-$USER/bus)\n"
        "  --control-stream-id N  the driver's control stream ($TP_CONTROL_STREAM_ID, else 1000)\n"
        "environment: TP_DESCRIPTOR_STREAM_ID (1100), TP_QOS_STREAM_ID (1200); each unset, the client's\n"
        "TP_CLIENT_<X> applies.\n\n"
        "example:\n"
        "  tp top --once\n\n"
        "exit status: 0; 1 no driver status could be read; 2 bad arguments.\n");
}

#define TOP_COLUMNS 9
#define TOP_CELL 64

/* The terminal's width: the window of stdout, else $COLUMNS, else 0 (not a terminal: nothing is cut). */
static int terminal_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    {
        return ws.ws_col;
    }
    const char *columns = getenv("COLUMNS");
    uint64_t v = 0;
    return columns != NULL && tp_cli_parse_u64(columns, 20, 10000, &v) == 0 ? (int)v : 0;
}

/* One line of at most width columns (0: any), cut with '~' where it would wrap. */
static void put_line(tp_strbuf_t *b, const char *line, int width)
{
    size_t n = strlen(line);
    if (width > 0 && n > (size_t)width)
    {
        tp_strbuf_append(b, line, (size_t)width - 1);
        tp_strbuf_putc(b, '~');
    }
    else
    {
        tp_strbuf_puts(b, line);
    }
    tp_strbuf_putc(b, '\n');
}

static void stream_cells(const tp_monitor_stream_t *s, int64_t now, char cells[TOP_COLUMNS][TOP_CELL])
{
    snprintf(cells[0], TOP_CELL, "%" PRIu32, s->stream_id);
    snprintf(cells[1], TOP_CELL, "%s", s->in_status ? s->name : "(not the driver's)");
    snprintf(cells[2], TOP_CELL, "%" PRIu64, s->epoch);
    snprintf(cells[3], TOP_CELL, s->producer_client_id != 0 ? "client %" PRIu32 : "-", s->producer_client_id);
    snprintf(cells[4], TOP_CELL, "%" PRIu32, s->consumers);
    if (s->has_rates)
    {
        snprintf(cells[5], TOP_CELL, "%.1f", s->fps);
        snprintf(cells[6], TOP_CELL, "%.1f", s->bps / (1024.0 * 1024.0));
    }
    else
    {
        snprintf(cells[5], TOP_CELL, "..."); /* the first screen, before any sampling */
        snprintf(cells[6], TOP_CELL, "...");
    }
    if (s->has_drops)
    {
        snprintf(cells[7], TOP_CELL, "%" PRIu64 "/%" PRIu64, s->drops_gap, s->drops_late);
    }
    else
    {
        snprintf(cells[7], TOP_CELL, "-");
    }
    if (s->last_announce_ns != 0)
    {
        snprintf(cells[8], TOP_CELL, "%.1f s ago", (double)(now - s->last_announce_ns) / 1e9);
    }
    else
    {
        snprintf(cells[8], TOP_CELL, "-");
    }
}

/* The table fits the terminal: every column as wide as its widest cell; when the line is still too long, the
 * NAME column gives way first (names cut with '~'), then lines are cut. */
static void render(tp_monitor_t *t, tp_strbuf_t *b, bool ansi)
{
    static const char *const headers[TOP_COLUMNS] = { "STREAM", "NAME", "EPOCH", "PRODUCER", "CONSUMERS",
        "FRAMES/S", "MIB/S", "DROPS", "ANNOUNCED" };
    int width = ansi ? terminal_width() : 0;
    if (ansi)
    {
        tp_strbuf_puts(b, "\033[H\033[2J");
    }
    char line[2048];
    snprintf(line, sizeof(line), "tp top: %s", t->driver_line);
    put_line(b, line, width);
    snprintf(line, sizeof(line), "bus %s", tp_bus_dir(t->bus));
    put_line(b, line, width);
    tp_strbuf_putc(b, '\n');
    int64_t now = tp_clock_monotonic_ns();
    size_t widths[TOP_COLUMNS];
    for (int c = 0; c < TOP_COLUMNS; c++)
    {
        widths[c] = strlen(headers[c]);
    }
    char cells[TOP_COLUMNS][TOP_CELL];
    for (size_t i = 0; i < t->count; i++)
    {
        stream_cells(&t->streams[i], now, cells);
        for (int c = 0; c < TOP_COLUMNS; c++)
        {
            size_t n = strlen(cells[c]);
            widths[c] = n > widths[c] ? n : widths[c];
        }
    }
    size_t total = 0;
    for (int c = 0; c < TOP_COLUMNS; c++)
    {
        total += widths[c] + (c + 1 < TOP_COLUMNS ? 2 : 0);
    }
    if (width > 0 && total > (size_t)width && widths[1] > 6)
    {
        size_t excess = total - (size_t)width;
        widths[1] = excess + 6 <= widths[1] ? widths[1] - excess : 6;
    }
    for (size_t i = 0; i <= t->count; i++)
    {
        if (i > 0)
        {
            stream_cells(&t->streams[i - 1], now, cells);
        }
        size_t at = 0;
        for (int c = 0; c < TOP_COLUMNS && at + 1 < sizeof(line); c++)
        {
            const char *text = i == 0 ? headers[c] : cells[c];
            size_t n = strlen(text);
            bool cut = n > widths[c];
            int shown = (int)(cut ? widths[c] - 1 : n);
            at += (size_t)snprintf(line + at, sizeof(line) - at, "%.*s%s%*s", shown, text, cut ? "~" : "",
                c + 1 < TOP_COLUMNS ? (int)(widths[c] - (size_t)shown - (cut ? 1 : 0)) + 2 : 0, "");
        }
        put_line(b, line, width);
    }
    if (t->count == 0)
    {
        tp_strbuf_puts(b, "(no streams)\n");
    }
    if (ansi)
    {
        tp_strbuf_putc(b, '\n');
        put_line(b, "q quits; DROPS = gaps/late, summed over the consumers' latest QosConsumer reports", width);
    }
}

static int parse_args(int argc, char **argv, top_args_t *t, bool *once, double *interval)
{
    const char *cmd = "top";
    const char *env = tp_cli_getenv("CONTROL_STREAM_ID");
    uint64_t v = 1000;
    if (env != NULL && tp_cli_parse_u64(env, 1, INT32_MAX, &v) < 0)
    {
        return tp_cli_fail(-1, cmd, "TP_CONTROL_STREAM_ID (or TP_CLIENT_CONTROL_STREAM_ID): %s", tp_errmsg());
    }
    t->control_stream_id = (uint32_t)v;
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        if (tp_cli_is_help(a))
        {
            top_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--once") == 0)
        {
            *once = true;
            continue;
        }
        if (strcmp(a, "--interval") != 0 && strcmp(a, "--bus-dir") != 0 && strcmp(a, "--control-stream-id") != 0)
        {
            return tp_cli_fail(-1, cmd, "unknown option '%s' (see tp top --help)", a);
        }
        if (i + 1 >= argc)
        {
            return tp_cli_fail(-1, cmd, "%s needs a value (see tp top --help)", a);
        }
        const char *val = argv[++i];
        if (strcmp(a, "--interval") == 0 && tp_cli_parse_double(val, 0.05, 3600, interval) < 0)
        {
            return tp_cli_fail(-1, cmd, "--interval: %s", tp_errmsg());
        }
        if (strcmp(a, "--bus-dir") == 0)
        {
            t->bus_dir = val;
        }
        if (strcmp(a, "--control-stream-id") == 0)
        {
            if (tp_cli_parse_u64(val, 1, INT32_MAX, &v) < 0)
            {
                return tp_cli_fail(-1, cmd, "--control-stream-id: %s", tp_errmsg());
            }
            t->control_stream_id = (uint32_t)v;
        }
    }
    return 0;
}

/* true if `q` was typed (stdin in non-canonical mode). */
static bool quit_typed(void)
{
    char c;
    while (read(STDIN_FILENO, &c, 1) == 1)
    {
        if (c == 'q' || c == 'Q')
        {
            return true;
        }
    }
    return false;
}

int tp_cmd_top(int argc, char **argv)
{
    const char *cmd = "top";
    static tp_monitor_t t;
    top_args_t args = { 0 };
    bool once = false;
    double interval = 1.0;
    int rc = parse_args(argc, argv, &args, &once, &interval);
    if (rc != 0)
    {
        return rc > 0 ? TP_EXIT_OK : TP_EXIT_USAGE;
    }
    if (tp_monitor_open(&t, args.bus_dir, args.control_stream_id) < 0)
    {
        return tp_cli_fail(TP_EXIT_FAILED, cmd, "%s", tp_errmsg());
    }
    int status = TP_EXIT_OK;
    if (tp_monitor_read_status(&t) < 0 && once)
    {
        status = tp_cli_fail(TP_EXIT_FAILED, cmd, "%s (is a driver running with this bus directory?)", t.driver_line);
        goto done;
    }
    struct termios saved;
    bool is_tty = !once && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (is_tty)
    {
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    tp_cli_install_stop_handlers();
    tp_strbuf_t b;
    tp_strbuf_init(&b);
    int64_t window_start = tp_clock_monotonic_ns();
    /* Interactive: the first screen at once; then one per interval. */
    int64_t next = once ? window_start + (int64_t)(interval * 1e9) : window_start;
    for (;;)
    {
        int work = tp_monitor_poll(&t);
        int64_t now = tp_clock_monotonic_ns();
        if (now >= next)
        {
            tp_monitor_read_status(&t);
            tp_monitor_sample(&t, (double)(now - window_start) / 1e9, now);
            render(&t, &b, !once);
            fputs(tp_strbuf_cstr(&b), stdout);
            fflush(stdout);
            tp_strbuf_reset(&b);
            if (once)
            {
                break;
            }
            window_start = now;
            next = now + (int64_t)(interval * 1e9);
        }
        if (tp_cli_stop_requested() || (is_tty && quit_typed()))
        {
            break;
        }
        if (work <= 0)
        {
            usleep(1000);
        }
    }
    tp_strbuf_fini(&b);
    if (is_tty)
    {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    }
done:
    tp_monitor_close(&t);
    return status;
}
