/*
 * The CPython extension `tensorpool._tensorpool` over libtensorpool (docs/PYTHON.md). One header for its four
 * files: the module (errors, dtypes, Client, Driver, discover), consumers and frames, producers and claims, and
 * the pins that keep a region mapped for as long as a NumPy view of it lives.
 */
#ifndef TP_PY_H
#define TP_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* NumPy's C API: imported once by the module (tp_py_module.c); the other files define NO_IMPORT_ARRAY first. */
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL tp_py_array_api
#include <numpy/arrayobject.h>

#include <stdbool.h>
#include <stdint.h>

#include "tensorpool/tp_client.h"
#include "tensorpool/tp_tensor.h"

/* Exceptions: tensorpool.Error, and StaleFrameError (a frame used after its consumer moved on). */
extern PyObject *tp_py_error;
extern PyObject *tp_py_stale_error;

/* Raise tensorpool.Error with the library's last error message, prefixed by what was being done. NULL. */
PyObject *tp_py_raise(const char *what);

typedef struct tp_py_client
{
    PyObject_HEAD
    tp_client_t *client; /* NULL once closed */
    int users;           /* producers and consumers open on it */
} tp_py_client_t;
extern PyTypeObject tp_py_client_type;
/* The client of a Python object, or NULL with ValueError if it is closed. */
tp_client_t *tp_py_client_get(tp_py_client_t *self);

/* A second mapping of a region (tp_region_info_t), kept while views into it exist; unmapped when released. */
typedef struct tp_py_pin
{
    PyObject_HEAD
    uint8_t *base;
    size_t length;
    const uint8_t *library_base; /* where the library maps the same region */
    uint64_t epoch;
} tp_py_pin_t;
extern PyTypeObject tp_py_pin_type;
/* A pin of the region info names (writable: PROT_WRITE too). New reference, or NULL with an exception. */
tp_py_pin_t *tp_py_pin_new(const tp_region_info_t *info, uint64_t epoch, bool writable);

/* dtype mapping between the wire spec and NumPy. -1 (and a Python exception when raise) if none. */
int tp_py_numpy_type_of(tp_dtype_t dtype);
int tp_py_dtype_of(int numpy_type, bool raise);
/* A NumPy array over data (shape and byte strides of the tensor), base `owner` (a reference is taken). */
PyObject *tp_py_array(const tp_tensor_desc_t *tensor, void *data, bool writable, PyObject *owner);

extern PyTypeObject tp_py_consumer_type;
extern PyTypeObject tp_py_frame_type;
extern PyTypeObject tp_py_producer_type;
extern PyTypeObject tp_py_claim_type;
extern PyTypeObject tp_py_driver_type;

/* Client.consumer(...) and Client.producer(...). */
PyObject *tp_py_consumer_open(tp_py_client_t *client, PyObject *args, PyObject *kwargs);
PyObject *tp_py_consumer_open_by_name(tp_py_client_t *client, PyObject *args, PyObject *kwargs);
PyObject *tp_py_producer_open(tp_py_client_t *client, PyObject *args, PyObject *kwargs);

/* Seconds (None: forever) to nanoseconds; -1 for forever. -2 with an exception on a bad value. */
int64_t tp_py_timeout_ns(PyObject *seconds);

#endif
