/* Logging; see tp_log.h. Formatting happens only for records that pass the level test. */
#include "core/tp_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/tp_clock.h"

#define LOG_LINE_MAX 4096
#define LOG_MODULES_MAX 512

/* Until the first record initialises from the environment, every level reaches tp_log_write, which re-checks. */
int tp_log_min_level = 0;

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static tp_log_sink_t log_sink;
static void *log_sink_clientd;
static int log_is_logfmt;
static char log_modules[LOG_MODULES_MAX];
static FILE *log_file;

static void log_read_env(void)
{
    const char *enabled = getenv("TP_LOG");
    const char *level = getenv("TP_LOG_LEVEL");
    int min_level = TP_LOG_WARN;
    if (enabled != NULL && strcmp(enabled, "0") == 0)
    {
        min_level = TP_LOG_ERROR + 1;
    }
    else if (enabled != NULL && strcmp(enabled, "1") == 0)
    {
        min_level = TP_LOG_INFO;
    }
    if (level != NULL && *level != '\0' && min_level <= TP_LOG_ERROR)
    {
        char *end = NULL;
        long v = strtol(level, &end, 10);
        if (end != level && *end == '\0' && v >= 0 && v <= 100)
        {
            min_level = (int)v;
        }
    }
    tp_log_min_level = min_level;
    const char *format = getenv("TP_LOG_FORMAT");
    /* "text" is what people type for the human-readable one; anything unknown is said, not silently ignored. */
    log_is_logfmt = format != NULL && (strcmp(format, "logfmt") == 0 || strcmp(format, "text") == 0);
    if (format != NULL && *format != '\0' && !log_is_logfmt && strcmp(format, "json") != 0)
    {
        fprintf(stderr, "tensorpool: TP_LOG_FORMAT='%s' is not json, logfmt or text; logging JSON\n", format);
    }
    const char *modules = getenv("TP_LOG_MODULES");
    log_modules[0] = '\0';
    if (modules != NULL && strlen(modules) < sizeof(log_modules))
    {
        memcpy(log_modules, modules, strlen(modules) + 1);
    }
    const char *path = getenv("TP_LOG_FILE");
    if (path != NULL && *path != '\0' && log_file == NULL)
    {
        log_file = fopen(path, "ae");
    }
}

void tp_log_init(void)
{
    pthread_mutex_lock(&log_mutex);
    log_read_env();
    pthread_mutex_unlock(&log_mutex);
}

static void log_once_init(void)
{
    log_read_env();
}

void tp_log_set_sink(tp_log_sink_t sink, void *clientd)
{
    pthread_once(&log_once, log_once_init);
    pthread_mutex_lock(&log_mutex);
    log_sink = sink;
    log_sink_clientd = clientd;
    pthread_mutex_unlock(&log_mutex);
}

void tp_log_set_level(int level)
{
    pthread_once(&log_once, log_once_init);
    tp_log_min_level = level;
}

static int module_selected(const char *module)
{
    if (log_modules[0] == '\0')
    {
        return 1;
    }
    size_t n = strlen(module);
    const char *p = log_modules;
    while (*p != '\0')
    {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncasecmp(p, module, n) == 0)
        {
            return 1;
        }
        p += len;
        if (*p == ',')
        {
            p++;
        }
    }
    return 0;
}

static const char *level_name(int level)
{
    if (level >= TP_LOG_ERROR)
    {
        return "error";
    }
    if (level >= TP_LOG_WARN)
    {
        return "warn";
    }
    if (level >= TP_LOG_INFO)
    {
        return "info";
    }
    return "debug";
}

/* Append s to out as the body of a JSON string (quotes excluded). */
static size_t json_escape(char *out, size_t room, size_t pos, const char *s)
{
    for (; *s != '\0' && pos + 7 < room; s++)
    {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
        {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        }
        else if (c == '\n')
        {
            out[pos++] = '\\';
            out[pos++] = 'n';
        }
        else if (c < 0x20)
        {
            pos += (size_t)snprintf(out + pos, room - pos, "\\u%04x", c);
        }
        else
        {
            out[pos++] = (char)c;
        }
    }
    out[pos] = '\0';
    return pos;
}

static void log_emit(int level, const char *module, const char *msg)
{
    char line[LOG_LINE_MAX + 256];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
    size_t pos;
    if (log_is_logfmt)
    {
        pos = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s module=%s pid=%d msg=\"", when, level_name(level),
            module, (int)getpid());
        pos = json_escape(line, sizeof(line), pos, msg);
        snprintf(line + pos, sizeof(line) - pos, "\"");
    }
    else
    {
        pos = (size_t)snprintf(line, sizeof(line),
            "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"pid\":%d,\"msg\":\"",
            when, level_name(level), module, (int)getpid());
        pos = json_escape(line, sizeof(line), pos, msg);
        snprintf(line + pos, sizeof(line) - pos, "\"}");
    }
    pthread_mutex_lock(&log_mutex);
    if (log_sink != NULL)
    {
        log_sink(log_sink_clientd, level, module, line);
    }
    else
    {
        FILE *out = log_file != NULL ? log_file : stderr;
        fprintf(out, "%s\n", line);
        fflush(out);
    }
    pthread_mutex_unlock(&log_mutex);
}

void tp_log_write(int level, const char *module, const char *fmt, ...)
{
    pthread_once(&log_once, log_once_init);
    if (level < tp_log_min_level || !module_selected(module))
    {
        return;
    }
    char msg[LOG_LINE_MAX];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    log_emit(level, module, msg);
}

void tp_log_errmsg(int level, const char *module, const char *context)
{
    tp_log_write(level, module, "%s: %s", context, tp_errmsg());
}
