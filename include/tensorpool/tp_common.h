/*
 * tensorpool: common definitions shared by every public header.
 *
 * Error model: a function that can fail returns -1 (or NULL) and leaves a thread-local error code and
 * message, read with tp_errcode() and tp_errmsg(). The message reads from the root cause to the API call,
 * one line per layer. The record belongs to the calling thread; copy it before handing it to another.
 */
#ifndef TENSORPOOL_TP_COMMON_H
#define TENSORPOOL_TP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 1
#define TP_VERSION_PATCH 0

/* Library error codes. tp_errcode() returns either a positive errno value or one of these. */
enum
{
    TP_E_GENERIC = -1,      /* unclassified failure */
    TP_E_MALFORMED = -2,    /* encoded input (SBE message, SHM struct, JSON, TOML) is malformed */
    TP_E_INVALID = -3,      /* an argument or a value is out of range */
    TP_E_VALIDATION = -4,   /* a region, superblock or header does not match what was expected */
    TP_E_UNSUPPORTED = -5,  /* the request needs something this build or platform cannot do */
    TP_E_CONFIG = -6,       /* a configuration file or setting is wrong */
    TP_E_TIMEOUT = -7,      /* a deadline passed */
    TP_E_STATE = -8,        /* the object is not in a state that allows this call */
    TP_E_CAPACITY = -9,     /* a fixed-size table or buffer is full */
    TP_E_REJECTED = -10,    /* a peer refused the request */
    TP_E_CONTAINMENT = -11, /* a path escapes every allowed base directory, or is not a plain file */
};

/* The code of the calling thread's last error (0 if none was recorded). */
TP_API int tp_errcode(void);

/* The message of the calling thread's last error: root cause first, then one line per caller. Never NULL. */
TP_API const char *tp_errmsg(void);

/* The same message with the source location of each line ("[function file.c:123]"), for debug logs and bug
 * reports. Never NULL. */
TP_API const char *tp_errmsg_trace(void);

/* Forget the calling thread's last error. */
TP_API void tp_err_clear(void);

/* CLOCK_MONOTONIC in nanoseconds. Cheap (vDSO); read it once per duty cycle and pass now_ns down. */
TP_API int64_t tp_clock_monotonic_ns(void);

/* CLOCK_REALTIME in nanoseconds since 1970. */
TP_API int64_t tp_clock_realtime_ns(void);

/* A clock for the time-dependent logic of a driver or a client (lease expiry, keepalives, backoff, announce
 * freshness, throttles, rates): monotonic nanoseconds. Contexts default to tp_clock_monotonic_ns; tests give them
 * a clock they advance by hand (tp_driver_context_set_clock, tp_client_context_set_clock). A driver and the
 * clients that talk to it must share one clock, since announces carry its readings. */
typedef int64_t (*tp_clock_fn_t)(void *clientd);

/* Log levels, as TP_LOG_LEVEL spells them. */
enum
{
    TP_LOG_DEBUG = 10,
    TP_LOG_INFO = 20,
    TP_LOG_WARN = 30,
    TP_LOG_ERROR = 40,
};

/* A log sink receives each record already formatted as one line (no trailing newline). */
typedef void (*tp_log_sink_t)(void *clientd, int level, const char *module, const char *line);

/* Replace the log sink (NULL restores the default: stderr). clientd must outlive the registration. */
TP_API void tp_log_set_sink(tp_log_sink_t sink, void *clientd);

/* Set the minimum level that is logged (overrides TP_LOG / TP_LOG_LEVEL); above TP_LOG_ERROR disables logging. */
TP_API void tp_log_set_level(int level);

/* "MAJOR.MINOR.PATCH". */
TP_API const char *tp_version(void);

#ifdef __cplusplus
}
#endif

#endif
