/* The module: errors, dtypes and arrays, pins, Client, Driver and discover() (tp_py.h). */
#include "tp_py.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "tensorpool/tp_discovery.h"
#include "tensorpool/tp_driver.h"

PyObject *tp_py_error;
PyObject *tp_py_stale_error;

PyObject *tp_py_raise(const char *what)
{
    PyErr_Format(tp_py_error, "%s: %s", what, tp_errmsg());
    return NULL;
}

int64_t tp_py_timeout_ns(PyObject *seconds)
{
    if (seconds == NULL || seconds == Py_None)
    {
        return -1;
    }
    double s = PyFloat_AsDouble(seconds);
    if (s == -1.0 && PyErr_Occurred())
    {
        return -2;
    }
    if (s < 0 || s > 1e9)
    {
        PyErr_SetString(PyExc_ValueError, "timeout must be None or between 0 and 1e9 seconds");
        return -2;
    }
    return (int64_t)(s * 1e9);
}

/* ---- dtypes and arrays ---- */

static const struct
{
    tp_dtype_t dtype;
    int numpy_type;
} dtypes[] = {
    { TP_DTYPE_UINT8, NPY_UINT8 }, { TP_DTYPE_INT8, NPY_INT8 }, { TP_DTYPE_UINT16, NPY_UINT16 },
    { TP_DTYPE_INT16, NPY_INT16 }, { TP_DTYPE_UINT32, NPY_UINT32 }, { TP_DTYPE_INT32, NPY_INT32 },
    { TP_DTYPE_UINT64, NPY_UINT64 }, { TP_DTYPE_INT64, NPY_INT64 }, { TP_DTYPE_FLOAT32, NPY_FLOAT32 },
    { TP_DTYPE_FLOAT64, NPY_FLOAT64 }, { TP_DTYPE_BOOLEAN, NPY_BOOL },
};

int tp_py_numpy_type_of(tp_dtype_t dtype)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
    {
        if (dtypes[i].dtype == dtype)
        {
            return dtypes[i].numpy_type;
        }
    }
    /* BYTES, BIT (packed) and UNKNOWN: the raw bytes */
    return NPY_UINT8;
}

int tp_py_dtype_of(int numpy_type, bool raise)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
    {
        if (PyArray_EquivTypenums(dtypes[i].numpy_type, numpy_type))
        {
            return dtypes[i].dtype;
        }
    }
    if (raise)
    {
        PyArray_Descr *d = PyArray_DescrFromType(numpy_type);
        PyErr_Format(PyExc_TypeError, "NumPy dtype %R has no tensorpool dtype (the wire spec has int8-64, uint8-64, "
            "float32, float64 and bool)", d != NULL ? (PyObject *)d : Py_None);
        Py_XDECREF(d);
    }
    return -1;
}

PyObject *tp_py_array(const tp_tensor_desc_t *t, void *data, bool writable, PyObject *owner)
{
    int64_t strides[TP_MAX_DIMS];
    uint64_t span = 0;
    if (tp_tensor_resolve(t, strides, &span) < 0)
    {
        return tp_py_raise("the frame's tensor header");
    }
    npy_intp dims[TP_MAX_DIMS], st[TP_MAX_DIMS];
    for (int i = 0; i < t->ndims; i++)
    {
        dims[i] = t->dims[i];
        st[i] = (npy_intp)strides[i];
    }
    PyArray_Descr *descr = PyArray_DescrFromType(tp_py_numpy_type_of(t->dtype));
    if (descr == NULL)
    {
        return NULL;
    }
    int flags = writable ? NPY_ARRAY_WRITEABLE : 0;
    PyObject *a = PyArray_NewFromDescr(&PyArray_Type, descr, t->ndims, dims, st, data, flags, NULL);
    if (a == NULL)
    {
        return NULL;
    }
    Py_INCREF(owner);
    if (PyArray_SetBaseObject((PyArrayObject *)a, owner) < 0)
    {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* ---- pins ---- */

static void pin_dealloc(tp_py_pin_t *self)
{
    if (self->base != NULL)
    {
        munmap(self->base, self->length);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyTypeObject tp_py_pin_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.RegionPin",
    .tp_basicsize = sizeof(tp_py_pin_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A mapping of a shared-memory region kept while NumPy views of it exist (internal).",
    .tp_dealloc = (destructor)pin_dealloc,
};

tp_py_pin_t *tp_py_pin_new(const tp_region_info_t *info, uint64_t epoch, bool writable)
{
    void *base = mmap(NULL, info->length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, info->fd, 0);
    if (base == MAP_FAILED)
    {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    tp_py_pin_t *pin = PyObject_New(tp_py_pin_t, &tp_py_pin_type);
    if (pin == NULL)
    {
        munmap(base, info->length);
        return NULL;
    }
    pin->base = base;
    pin->length = info->length;
    pin->library_base = info->base;
    pin->epoch = epoch;
    return pin;
}

/* ---- Client ---- */

tp_client_t *tp_py_client_get(tp_py_client_t *self)
{
    if (self->client == NULL)
    {
        PyErr_SetString(PyExc_ValueError, "the client is closed");
    }
    return self->client;
}

/* One setting: key "client.x" or "x", value any object (str() of it; a list or tuple is comma-separated). */
static int set_one(tp_client_context_t *ctx, PyObject *key, PyObject *value)
{
    const char *k = PyUnicode_AsUTF8(key);
    if (k == NULL)
    {
        return -1;
    }
    char full[256];
    snprintf(full, sizeof(full), "%s%s", strncmp(k, "client.", 7) == 0 ? "" : "client.", k);
    PyObject *text = NULL;
    if (PyList_Check(value) || PyTuple_Check(value))
    {
        PyObject *sep = PyUnicode_FromString(",");
        PyObject *items = PySequence_List(value);
        PyObject *strs = items != NULL ? PyList_New(0) : NULL;
        for (Py_ssize_t i = 0; strs != NULL && i < PyList_GET_SIZE(items); i++)
        {
            PyObject *s = PyObject_Str(PyList_GET_ITEM(items, i));
            if (s == NULL || PyList_Append(strs, s) < 0)
            {
                Py_XDECREF(s);
                Py_CLEAR(strs);
                break;
            }
            Py_DECREF(s);
        }
        text = strs != NULL && sep != NULL ? PyUnicode_Join(sep, strs) : NULL;
        Py_XDECREF(sep);
        Py_XDECREF(items);
        Py_XDECREF(strs);
    }
    else if (PyBool_Check(value))
    {
        text = PyUnicode_FromString(value == Py_True ? "true" : "false");
    }
    else
    {
        text = PyObject_Str(value);
    }
    const char *v = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    int rc = v == NULL ? -1 : tp_client_context_set(ctx, full, v);
    if (v != NULL && rc < 0)
    {
        PyErr_Format(PyExc_ValueError, "%s", tp_errmsg());
    }
    Py_XDECREF(text);
    return rc;
}

static int client_init(tp_py_client_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *settings = NULL;
    static char *kw[] = { "settings", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, NULL, "|O", kw, &settings))
    {
        return -1;
    }
    if (settings == NULL && kwargs != NULL)
    {
        settings = PyDict_GetItemString(kwargs, "settings"); /* borrowed; the other keywords are keys */
    }
    if (self->client != NULL)
    {
        PyErr_SetString(PyExc_RuntimeError, "Client.__init__ called twice");
        return -1;
    }
    tp_client_context_t *ctx = NULL;
    if (tp_client_context_init(&ctx) < 0)
    {
        tp_py_raise("client settings");
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int rc = 0;
    if (settings != NULL && settings != Py_None)
    {
        if (!PyDict_Check(settings))
        {
            PyErr_SetString(PyExc_TypeError, "settings must be a dict of client keys");
            rc = -1;
        }
        while (rc == 0 && PyDict_Next(settings, &pos, &k, &v))
        {
            rc = set_one(ctx, k, v);
        }
    }
    pos = 0;
    while (rc == 0 && kwargs != NULL && PyDict_Next(kwargs, &pos, &k, &v))
    {
        if (strcmp(PyUnicode_AsUTF8(k), "settings") != 0)
        {
            rc = set_one(ctx, k, v);
        }
    }
    if (rc == 0)
    {
        Py_BEGIN_ALLOW_THREADS
        rc = tp_client_connect(&self->client, ctx);
        Py_END_ALLOW_THREADS
        if (rc < 0)
        {
            tp_py_raise("connecting to the driver");
        }
    }
    tp_client_context_close(ctx);
    return rc < 0 ? -1 : 0;
}

static PyObject *client_close(tp_py_client_t *self, PyObject *unused)
{
    (void)unused;
    if (self->client != NULL)
    {
        /* producers and consumers still open keep the C client alive until they close (tp_client_close) */
        tp_client_close(self->client);
        self->client = NULL;
    }
    Py_RETURN_NONE;
}

static void client_dealloc(tp_py_client_t *self)
{
    client_close(self, NULL);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *enter_self(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *client_exit(tp_py_client_t *self, PyObject *args)
{
    (void)args;
    return client_close(self, NULL);
}

static PyObject *client_consumer(tp_py_client_t *self, PyObject *args, PyObject *kwargs)
{
    return tp_py_consumer_open(self, args, kwargs);
}

static PyObject *client_consumer_by_name(tp_py_client_t *self, PyObject *args, PyObject *kwargs)
{
    return tp_py_consumer_open_by_name(self, args, kwargs);
}

static PyObject *client_producer(tp_py_client_t *self, PyObject *args, PyObject *kwargs)
{
    return tp_py_producer_open(self, args, kwargs);
}

static PyObject *client_closed(tp_py_client_t *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->client == NULL);
}

static PyMethodDef client_methods[] = {
    { "consumer", (PyCFunction)(void (*)(void))client_consumer, METH_VARARGS | METH_KEYWORDS,
        "consumer(stream_id, timeout=5.0, mode='stream', max_rate_hz=0) -> Consumer: attach as a consumer (the "
        "GIL is released while waiting)." },
    { "consumer_by_name", (PyCFunction)(void (*)(void))client_consumer_by_name, METH_VARARGS | METH_KEYWORDS,
        "consumer_by_name(name, timeout=5.0) -> Consumer: find the stream announced as name through discovery and "
        "attach to it through this client's driver." },
    { "producer", (PyCFunction)(void (*)(void))client_producer, METH_VARARGS | METH_KEYWORDS,
        "producer(stream_id, timeout=5.0, create_stream=False) -> Producer: attach as the stream's producer." },
    { "close", (PyCFunction)client_close, METH_NOARGS,
        "Close the client; its producers and consumers keep working until they are closed." },
    { "__enter__", enter_self, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)client_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef client_getset[] = {
    { "closed", (getter)client_closed, NULL, "True once close() was called.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject tp_py_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Client",
    .tp_basicsize = sizeof(tp_py_client_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Client(settings=None, **keys): a connection to the driver. Keys are the client keys of "
              "docs/CONFIG.md without the 'client.' prefix (bus_dir, allowed_base_dirs, control_stream_id, ...); "
              "the environment (TP_CLIENT_BUS_DIR, ...) applies first.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)client_init,
    .tp_dealloc = (destructor)client_dealloc,
    .tp_methods = client_methods,
    .tp_getset = client_getset,
};

/* ---- Driver ---- */

typedef struct tp_py_driver
{
    PyObject_HEAD
    tp_driver_t *driver;
} tp_py_driver_t;

static int driver_init(tp_py_driver_t *self, PyObject *args, PyObject *kwargs)
{
    const char *config = NULL;
    PyObject *settings = NULL;
    static char *kw[] = { "config", "settings", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|zO", kw, &config, &settings))
    {
        return -1;
    }
    tp_driver_context_t *ctx = NULL;
    if (tp_driver_context_init(&ctx) < 0 || (config != NULL && tp_driver_context_load_file(ctx, config) < 0))
    {
        PyErr_Format(PyExc_ValueError, "%s", tp_errmsg());
        tp_driver_context_close(ctx);
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (settings != NULL && settings != Py_None && PyDict_Next(settings, &pos, &k, &v))
    {
        PyObject *text = PyBool_Check(v) ? PyUnicode_FromString(v == Py_True ? "true" : "false") : PyObject_Str(v);
        const char *key = PyUnicode_AsUTF8(k);
        const char *value = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
        int rc = key == NULL || value == NULL ? -1 : tp_driver_context_set(ctx, key, value);
        if (rc < 0 && !PyErr_Occurred())
        {
            PyErr_Format(PyExc_ValueError, "%s", tp_errmsg());
        }
        Py_XDECREF(text);
        if (rc < 0)
        {
            tp_driver_context_close(ctx);
            return -1;
        }
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_driver_init(&self->driver, ctx);
    if (rc == 0 && tp_driver_start(self->driver) < 0)
    {
        tp_driver_close(self->driver);
        self->driver = NULL;
        rc = -1;
    }
    Py_END_ALLOW_THREADS
    tp_driver_context_close(ctx);
    if (rc < 0)
    {
        tp_py_raise("starting the driver");
        return -1;
    }
    return 0;
}

static PyObject *driver_close(tp_py_driver_t *self, PyObject *unused)
{
    (void)unused;
    if (self->driver != NULL)
    {
        tp_driver_t *d = self->driver;
        self->driver = NULL;
        Py_BEGIN_ALLOW_THREADS
        tp_driver_close(d);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static void driver_dealloc(tp_py_driver_t *self)
{
    driver_close(self, NULL);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *driver_exit(tp_py_driver_t *self, PyObject *args)
{
    (void)args;
    return driver_close(self, NULL);
}

static PyMethodDef driver_methods[] = {
    { "close", (PyCFunction)driver_close, METH_NOARGS, "Stop the driver (ShmDriverShutdown to its clients)." },
    { "__enter__", enter_self, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)driver_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

PyTypeObject tp_py_driver_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Driver",
    .tp_basicsize = sizeof(tp_py_driver_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Driver(config=None, settings=None): a driver embedded in this process, on a thread of its own, "
              "from a TOML file (docs/CONFIG.md) and {key: value} settings applied after it.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)driver_init,
    .tp_dealloc = (destructor)driver_dealloc,
    .tp_methods = driver_methods,
};

/* ---- discover ---- */

static PyObject *result_dict(const tp_discovery_result_t *r)
{
    PyObject *tags = PyList_New((Py_ssize_t)r->tag_count);
    for (size_t i = 0; tags != NULL && i < r->tag_count; i++)
    {
        PyList_SET_ITEM(tags, (Py_ssize_t)i, PyUnicode_FromString(r->tags[i]));
    }
    PyObject *d = tags == NULL ? NULL
        : Py_BuildValue("{s:I,s:I,s:K,s:I,s:I,s:s,s:N,s:s,s:s,s:I}", "stream_id", r->stream_id, "producer_id",
              r->producer_id, "epoch", (unsigned long long)r->epoch, "layout_version", r->layout_version,
              "header_nslots", r->header_nslots, "name", r->data_source_name, "tags", tags, "driver_instance_id",
              r->driver_instance_id, "driver_control_channel", r->driver_control_channel,
              "driver_control_stream_id", r->driver_control_stream_id);
    return d;
}

static PyObject *py_discover(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    tp_py_client_t *client = NULL;
    const char *name = NULL;
    PyObject *tags = NULL, *stream_id = NULL, *timeout = NULL;
    static char *kw[] = { "client", "name", "tags", "stream_id", "timeout", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|zOOO", kw, &tp_py_client_type, &client, &name, &tags,
            &stream_id, &timeout))
    {
        return NULL;
    }
    tp_client_t *c = tp_py_client_get(client);
    int64_t timeout_ns = timeout == NULL ? 1000000000LL : tp_py_timeout_ns(timeout);
    if (c == NULL || timeout_ns == -2)
    {
        return NULL;
    }
    tp_discovery_query_t q;
    tp_discovery_query_init(&q);
    q.data_source_name = name;
    PyObject *tag_list = tags != NULL && tags != Py_None ? PySequence_List(tags) : NULL;
    if (tags != NULL && tags != Py_None && tag_list == NULL)
    {
        return NULL;
    }
    for (Py_ssize_t i = 0; tag_list != NULL && i < PyList_GET_SIZE(tag_list); i++)
    {
        if (q.tag_count == TP_DISCOVERY_QUERY_MAX_TAGS || (q.tags[q.tag_count] = PyUnicode_AsUTF8(
                                                               PyList_GET_ITEM(tag_list, i))) == NULL)
        {
            if (!PyErr_Occurred())
            {
                PyErr_Format(PyExc_ValueError, "at most %d tags", TP_DISCOVERY_QUERY_MAX_TAGS);
            }
            Py_DECREF(tag_list);
            return NULL;
        }
        q.tag_count++;
    }
    if (stream_id != NULL && stream_id != Py_None)
    {
        q.has_stream_id = true;
        q.stream_id = (uint32_t)PyLong_AsUnsignedLong(stream_id);
    }
    tp_discovery_result_t *results = PyMem_Malloc(64 * sizeof(*results));
    size_t n = 0;
    int rc = -1;
    if (results != NULL && !PyErr_Occurred())
    {
        Py_BEGIN_ALLOW_THREADS
        rc = tp_discover(c, &q, results, 64, &n, timeout_ns < 0 ? INT64_MAX / 2 : timeout_ns);
        Py_END_ALLOW_THREADS
    }
    PyObject *out = NULL;
    if (rc == 0)
    {
        out = PyList_New((Py_ssize_t)n);
        for (size_t i = 0; out != NULL && i < n; i++)
        {
            PyObject *d = result_dict(&results[i]);
            if (d == NULL)
            {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, d);
        }
    }
    else if (!PyErr_Occurred())
    {
        tp_py_raise("discovery");
    }
    PyMem_Free(results);
    Py_XDECREF(tag_list);
    return out;
}

static PyMethodDef module_methods[] = {
    { "discover", (PyCFunction)(void (*)(void))py_discover, METH_VARARGS | METH_KEYWORDS,
        "discover(client, name=None, tags=None, stream_id=None, timeout=1.0) -> list of dict: ask the discovery "
        "provider which streams match (advisory: attach through the driver a result names)." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tensorpool._tensorpool",
    .m_doc = "The C extension under the tensorpool package (use `import tensorpool`).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__tensorpool(void); /* the one symbol the interpreter looks up */

PyMODINIT_FUNC PyInit__tensorpool(void)
{
    import_array();
    PyTypeObject *types[] = { &tp_py_client_type, &tp_py_driver_type, &tp_py_consumer_type, &tp_py_frame_type,
        &tp_py_producer_type, &tp_py_claim_type, &tp_py_pin_type };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    {
        if (PyType_Ready(types[i]) < 0)
        {
            return NULL;
        }
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
    {
        return NULL;
    }
    tp_py_error = PyErr_NewExceptionWithDoc("tensorpool.Error", "A tensorpool operation failed; the message says why.",
        NULL, NULL);
    tp_py_stale_error = PyErr_NewExceptionWithDoc("tensorpool.StaleFrameError",
        "A frame used after its consumer moved on (the next poll, or close): copy() what must outlive it.",
        tp_py_error, NULL);
    const char *names[] = { "Client", "Driver", "Consumer", "Frame", "Producer", "Claim" };
    for (size_t i = 0; i < 6; i++)
    {
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0)
        {
            return NULL;
        }
    }
    Py_INCREF(tp_py_error);
    Py_INCREF(tp_py_stale_error);
    if (PyModule_AddObject(m, "Error", tp_py_error) < 0 || PyModule_AddObject(m, "StaleFrameError",
                                                                tp_py_stale_error) < 0)
    {
        return NULL;
    }
    return m;
}
