/* Consumers and frames: zero-copy read-only NumPy views over the slot, DLPack, the seqlock re-check (tp_py.h). */
#define NO_IMPORT_ARRAY
#include "tp_py.h"

#include <string.h>

#include "tensorpool/tp_common.h"

#include <dlpack/dlpack.h>

#include "tensorpool/tp_discovery.h"

#define PINS_MAX 16

typedef struct tp_py_consumer
{
    PyObject_HEAD
    tp_py_client_t *owner;
    tp_consumer_t *consumer; /* NULL once closed */
    uint64_t generation;     /* moves on at every next/poll/close: frames of earlier generations are stale */
    bool busy;               /* a call is running with the GIL released */
    tp_py_pin_t *pins[PINS_MAX]; /* this epoch's regions, mapped again for views */
} tp_py_consumer_t;

typedef struct tp_py_frame
{
    PyObject_HEAD
    tp_py_consumer_t *consumer;
    tp_frame_t frame;
    uint64_t generation;
    tp_py_pin_t *pin;
    uint8_t *data; /* the payload in the pin's mapping */
} tp_py_frame_t;

/* ---- consumer ---- */

static int check_open(tp_py_consumer_t *self)
{
    if (self->consumer == NULL)
    {
        PyErr_SetString(PyExc_ValueError, "the consumer is closed");
        return -1;
    }
    if (self->busy)
    {
        PyErr_SetString(PyExc_RuntimeError, "the consumer is in use by another thread (one thread at a time)");
        return -1;
    }
    return 0;
}

static void drop_pins(tp_py_consumer_t *self)
{
    for (int i = 0; i < PINS_MAX; i++)
    {
        Py_CLEAR(self->pins[i]);
    }
}

/* The pin of the region holding f's payload (mapped again the first time in an epoch). Borrowed, or NULL. */
static tp_py_pin_t *pin_for(tp_py_consumer_t *self, const tp_frame_t *f)
{
    tp_region_info_t info;
    if (tp_consumer_payload_region(self->consumer, f, &info) < 0)
    {
        tp_py_raise("the frame's region");
        return NULL;
    }
    int free_slot = -1;
    for (int i = 0; i < PINS_MAX; i++)
    {
        tp_py_pin_t *p = self->pins[i];
        if (p != NULL && p->epoch == f->epoch && p->library_base == info.base && p->length == info.length)
        {
            return p;
        }
        if (p != NULL && p->epoch != f->epoch)
        {
            Py_CLEAR(self->pins[i]); /* a past epoch's: frames that still use it hold their own reference */
        }
        free_slot = self->pins[i] == NULL && free_slot < 0 ? i : free_slot;
    }
    if (free_slot < 0)
    {
        drop_pins(self);
        free_slot = 0;
    }
    self->pins[free_slot] = tp_py_pin_new(&info, f->epoch, false);
    return self->pins[free_slot];
}

static PyObject *frame_new(tp_py_consumer_t *self, const tp_frame_t *f)
{
    tp_py_pin_t *pin = pin_for(self, f);
    if (pin == NULL)
    {
        return NULL;
    }
    tp_py_frame_t *fr = PyObject_New(tp_py_frame_t, &tp_py_frame_type);
    if (fr == NULL)
    {
        return NULL;
    }
    Py_INCREF(self);
    Py_INCREF(pin);
    fr->consumer = self;
    fr->frame = *f;
    fr->generation = self->generation;
    fr->pin = pin;
    fr->data = pin->base + (f->payload - pin->library_base);
    return (PyObject *)fr;
}

/* The next frame within timeout_ns (-1: forever), the GIL released while waiting; Ctrl-C is seen every 100 ms.
 * 1 with *f filled, 0 on timeout, -1 with an exception. */
static int next_frame(tp_py_consumer_t *self, int64_t timeout_ns, tp_frame_t *f)
{
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : tp_clock_monotonic_ns() + timeout_ns;
    self->generation++;
    for (;;)
    {
        int rc = 0;
        int64_t now = tp_clock_monotonic_ns();
        int64_t slice_end = deadline - now > 100000000 ? now + 100000000 : deadline;
        self->busy = true;
        Py_BEGIN_ALLOW_THREADS
        for (;;)
        {
            rc = tp_consumer_next(self->consumer, f);
            now = tp_clock_monotonic_ns();
            if (rc != 0 || now >= slice_end)
            {
                break;
            }
            tp_consumer_wait(self->consumer, slice_end - now);
        }
        Py_END_ALLOW_THREADS
        self->busy = false;
        if (rc < 0)
        {
            tp_py_raise("reading the stream");
            return -1;
        }
        if (rc > 0)
        {
            return 1;
        }
        if (PyErr_CheckSignals() < 0)
        {
            return -1;
        }
        if (now >= deadline)
        {
            return 0;
        }
    }
}

static PyObject *consumer_next(tp_py_consumer_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *timeout = NULL;
    static char *kw[] = { "timeout", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O", kw, &timeout) || check_open(self) < 0)
    {
        return NULL;
    }
    int64_t timeout_ns = tp_py_timeout_ns(timeout);
    if (timeout_ns == -2)
    {
        return NULL;
    }
    tp_frame_t f;
    int rc = next_frame(self, timeout_ns, &f);
    if (rc <= 0)
    {
        if (rc == 0)
        {
            Py_RETURN_NONE;
        }
        return NULL;
    }
    return frame_new(self, &f);
}

static PyObject *consumer_iternext(tp_py_consumer_t *self)
{
    if (self->consumer == NULL)
    {
        return NULL; /* StopIteration */
    }
    if (check_open(self) < 0)
    {
        return NULL;
    }
    tp_frame_t f;
    int rc = next_frame(self, -1, &f);
    return rc > 0 ? frame_new(self, &f) : NULL;
}

static PyObject *consumer_poll(tp_py_consumer_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *callback = NULL;
    int limit = 16;
    static char *kw[] = { "callback", "limit", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|i", kw, &callback, &limit) || check_open(self) < 0)
    {
        return NULL;
    }
    int delivered = 0;
    while (delivered < limit && self->consumer != NULL)
    {
        tp_frame_t f;
        int rc = next_frame(self, 0, &f);
        if (rc <= 0)
        {
            if (rc < 0)
            {
                return NULL;
            }
            break;
        }
        PyObject *frame = frame_new(self, &f);
        PyObject *r = frame != NULL ? PyObject_CallOneArg(callback, frame) : NULL;
        Py_XDECREF(frame);
        if (r == NULL)
        {
            return NULL;
        }
        Py_DECREF(r);
        delivered++;
    }
    return PyLong_FromLong(delivered);
}

static PyObject *consumer_wait(tp_py_consumer_t *self, PyObject *args)
{
    double seconds = 0.1;
    if (!PyArg_ParseTuple(args, "|d", &seconds) || check_open(self) < 0)
    {
        return NULL;
    }
    int rc;
    self->busy = true;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_consumer_wait(self->consumer, (int64_t)(seconds * 1e9));
    Py_END_ALLOW_THREADS
    self->busy = false;
    return PyBool_FromLong(rc > 0);
}

static PyObject *consumer_counters(tp_py_consumer_t *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self) < 0)
    {
        return NULL;
    }
    tp_consumer_counters_t k;
    tp_consumer_counters(self->consumer, &k);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "frames", (unsigned long long)k.frames,
        "drops_gap", (unsigned long long)k.drops_gap, "drops_late", (unsigned long long)k.drops_late,
        "drops_invalid", (unsigned long long)k.drops_invalid, "remaps", (unsigned long long)k.remaps,
        "lease_losses", (unsigned long long)k.lease_losses, "rate_limited", (unsigned long long)k.rate_limited,
        "resyncs", (unsigned long long)k.resyncs, "regions_damaged", (unsigned long long)k.regions_damaged);
}

static PyObject *consumer_close(tp_py_consumer_t *self, PyObject *unused)
{
    (void)unused;
    if (self->busy)
    {
        PyErr_SetString(PyExc_RuntimeError, "the consumer is in use by another thread");
        return NULL;
    }
    if (self->consumer != NULL)
    {
        tp_consumer_t *c = self->consumer;
        self->consumer = NULL;
        self->generation++;
        Py_BEGIN_ALLOW_THREADS
        tp_consumer_close(c);
        Py_END_ALLOW_THREADS
        drop_pins(self); /* views still alive keep their own mapping */
    }
    Py_RETURN_NONE;
}

static void consumer_dealloc(tp_py_consumer_t *self)
{
    if (self->consumer != NULL)
    {
        tp_consumer_close(self->consumer);
    }
    drop_pins(self);
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *self_ref(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *consumer_exit(tp_py_consumer_t *self, PyObject *args)
{
    (void)args;
    return consumer_close(self, NULL);
}

static PyObject *consumer_get(tp_py_consumer_t *self, void *what)
{
    if (self->consumer == NULL)
    {
        if ((intptr_t)what == 3)
        {
            Py_RETURN_TRUE;
        }
        PyErr_SetString(PyExc_ValueError, "the consumer is closed");
        return NULL;
    }
    switch ((intptr_t)what)
    {
    case 0: return PyLong_FromUnsignedLong(tp_consumer_stream_id(self->consumer));
    case 1: return PyLong_FromUnsignedLongLong(tp_consumer_epoch(self->consumer));
    case 2: return PyBool_FromLong(tp_consumer_is_attached(self->consumer));
    default: Py_RETURN_FALSE;
    }
}

/* A new Consumer object around what attach() opens with the GIL released; NULL with the error. */
static PyObject *consumer_new(tp_py_client_t *client, tp_client_t *c, const tp_consumer_options_t *o,
    uint32_t stream_id, const char *name, int64_t timeout_ns)
{
    tp_py_consumer_t *self = PyObject_New(tp_py_consumer_t, &tp_py_consumer_type);
    if (self == NULL)
    {
        return NULL;
    }
    self->owner = NULL;
    self->consumer = NULL;
    self->generation = 0;
    self->busy = false;
    memset(self->pins, 0, sizeof(self->pins));
    int64_t t = timeout_ns < 0 ? INT64_MAX / 2 : timeout_ns;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = name != NULL ? tp_consumer_attach_by_name(&self->consumer, c, name, t)
                      : tp_consumer_open(&self->consumer, c, stream_id, o, t);
    Py_END_ALLOW_THREADS
    if (rc < 0)
    {
        Py_DECREF(self);
        char what[320];
        if (name != NULL)
        {
            snprintf(what, sizeof(what), "attaching to the stream named '%.256s'", name);
        }
        else
        {
            snprintf(what, sizeof(what), "attaching to stream %u as a consumer", stream_id);
        }
        return tp_py_raise(what);
    }
    Py_INCREF(client);
    self->owner = client;
    return (PyObject *)self;
}

PyObject *tp_py_consumer_open(tp_py_client_t *client, PyObject *args, PyObject *kwargs)
{
    unsigned int stream_id = 0, max_rate_hz = 0;
    PyObject *timeout = NULL;
    const char *mode = "stream";
    static char *kw[] = { "stream_id", "timeout", "mode", "max_rate_hz", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "I|OsI", kw, &stream_id, &timeout, &mode, &max_rate_hz))
    {
        return NULL;
    }
    tp_client_t *c = tp_py_client_get(client);
    int64_t timeout_ns = timeout == NULL ? 5000000000LL : tp_py_timeout_ns(timeout);
    if (c == NULL || timeout_ns == -2)
    {
        return NULL;
    }
    tp_consumer_options_t o;
    tp_consumer_options_init(&o);
    if (strcmp(mode, "rate_limited") == 0)
    {
        o.mode = TP_CONSUMER_RATE_LIMITED;
        o.max_rate_hz = max_rate_hz;
    }
    else if (strcmp(mode, "stream") != 0)
    {
        PyErr_Format(PyExc_ValueError, "mode is 'stream' or 'rate_limited', not '%s'", mode);
        return NULL;
    }
    return consumer_new(client, c, &o, stream_id, NULL, timeout_ns);
}

PyObject *tp_py_consumer_open_by_name(tp_py_client_t *client, PyObject *args, PyObject *kwargs)
{
    const char *name = NULL;
    PyObject *timeout = NULL;
    static char *kw[] = { "name", "timeout", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O", kw, &name, &timeout))
    {
        return NULL;
    }
    tp_client_t *c = tp_py_client_get(client);
    int64_t timeout_ns = timeout == NULL ? 5000000000LL : tp_py_timeout_ns(timeout);
    if (c == NULL || timeout_ns == -2)
    {
        return NULL;
    }
    return consumer_new(client, c, NULL, 0, name, timeout_ns);
}

/* consumer.frames(idle_timeout=None): the async iterator of the package (tensorpool.frames). */
static PyObject *consumer_frames(tp_py_consumer_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *package = PyImport_ImportModule("tensorpool");
    PyObject *frames = package != NULL ? PyObject_GetAttrString(package, "frames") : NULL;
    Py_XDECREF(package);
    if (frames == NULL)
    {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *all = PyTuple_New(n + 1);
    if (all == NULL)
    {
        Py_DECREF(frames);
        return NULL;
    }
    Py_INCREF(self);
    PyTuple_SET_ITEM(all, 0, (PyObject *)self);
    for (Py_ssize_t i = 0; i < n; i++)
    {
        Py_INCREF(PyTuple_GET_ITEM(args, i));
        PyTuple_SET_ITEM(all, i + 1, PyTuple_GET_ITEM(args, i));
    }
    PyObject *r = PyObject_Call(frames, all, kwargs);
    Py_DECREF(all);
    Py_DECREF(frames);
    return r;
}

static PyMethodDef consumer_methods[] = {
    { "frames", (PyCFunction)(void (*)(void))consumer_frames, METH_VARARGS | METH_KEYWORDS,
        "frames(idle_timeout=None): `async for frame in consumer.frames():` for asyncio (tensorpool.frames)." },
    { "next", (PyCFunction)(void (*)(void))consumer_next, METH_VARARGS | METH_KEYWORDS,
        "next(timeout=None) -> Frame or None: the next frame, waiting up to timeout seconds (None: forever) with "
        "the GIL released. The previous frame goes stale." },
    { "poll", (PyCFunction)(void (*)(void))consumer_poll, METH_VARARGS | METH_KEYWORDS,
        "poll(callback, limit=16) -> int: call callback(frame) for each frame available now (no waiting)." },
    { "wait", (PyCFunction)consumer_wait, METH_VARARGS,
        "wait(seconds=0.1) -> bool: sleep until a descriptor may have arrived (GIL released)." },
    { "counters", (PyCFunction)consumer_counters, METH_NOARGS, "counters() -> dict of the consumer's counters." },
    { "close", (PyCFunction)consumer_close, METH_NOARGS, "Detach; frames go stale (their arrays stay readable)." },
    { "__enter__", self_ref, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)consumer_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef consumer_getset[] = {
    { "stream_id", (getter)consumer_get, NULL, "The stream id.", (void *)0 },
    { "epoch", (getter)consumer_get, NULL, "The epoch mapped now.", (void *)1 },
    { "attached", (getter)consumer_get, NULL, "True while attached.", (void *)2 },
    { "closed", (getter)consumer_get, NULL, "True once closed.", (void *)3 },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject tp_py_consumer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Consumer",
    .tp_basicsize = sizeof(tp_py_consumer_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A consumer of one stream (Client.consumer). Iterate it (`for frame in consumer`) or call next().",
    .tp_dealloc = (destructor)consumer_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)consumer_iternext,
    .tp_methods = consumer_methods,
    .tp_getset = consumer_getset,
};

/* ---- frame ---- */

static bool frame_is_current(const tp_py_frame_t *fr)
{
    return fr->consumer->consumer != NULL && fr->generation == fr->consumer->generation;
}

static int check_current(const tp_py_frame_t *fr)
{
    if (!frame_is_current(fr))
    {
        PyErr_Format(tp_py_stale_error, "frame %llu is stale: its consumer moved on (next, poll or close); "
            "use frame.copy() for data that must outlive the next poll", (unsigned long long)fr->frame.seq);
        return -1;
    }
    return 0;
}

static PyObject *frame_array(tp_py_frame_t *fr, void *unused)
{
    (void)unused;
    if (check_current(fr) < 0)
    {
        return NULL;
    }
    return tp_py_array(&fr->frame.tensor, fr->data, false, (PyObject *)fr->pin);
}

static PyObject *frame_intact(tp_py_frame_t *fr, PyObject *unused)
{
    (void)unused;
    /* a stale frame's slot is the library's to reuse or unmap: it can no longer be vouched for */
    return PyBool_FromLong(frame_is_current(fr) && tp_frame_is_intact(&fr->frame));
}

static PyObject *frame_copy(tp_py_frame_t *fr, PyObject *unused)
{
    (void)unused;
    if (check_current(fr) < 0)
    {
        return NULL;
    }
    npy_intp n = (npy_intp)fr->frame.payload_length;
    PyObject *raw = PyArray_SimpleNew(1, &n, NPY_UINT8);
    if (raw == NULL)
    {
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_frame_copy_out(&fr->frame, PyArray_DATA((PyArrayObject *)raw), (size_t)n);
    Py_END_ALLOW_THREADS
    if (rc < 0)
    {
        Py_DECREF(raw);
        PyErr_Format(tp_py_stale_error, "frame %llu was overwritten while being copied (the producer lapped the "
            "ring): read faster, or give the stream more slots", (unsigned long long)fr->frame.seq);
        return NULL;
    }
    PyObject *a = tp_py_array(&fr->frame.tensor, PyArray_DATA((PyArrayObject *)raw), true, raw);
    Py_DECREF(raw);
    return a;
}

static PyObject *frame_get(tp_py_frame_t *fr, void *what)
{
    const tp_frame_t *f = &fr->frame;
    switch ((intptr_t)what)
    {
    case 0: return PyLong_FromUnsignedLongLong(f->seq);
    case 1: return PyLong_FromUnsignedLongLong(f->epoch);
    case 2: return PyLong_FromUnsignedLong(f->stream_id);
    case 3: return PyLong_FromUnsignedLongLong(f->timestamp_ns);
    case 4: return PyLong_FromUnsignedLongLong(f->publish_timestamp_ns);
    case 5: return PyLong_FromUnsignedLong(f->meta_version);
    case 6: return PyLong_FromUnsignedLongLong(f->trace_id);
    case 7: return PyLong_FromUnsignedLong(f->payload_length);
    case 8:
    {
        PyObject *t = PyTuple_New(f->tensor.ndims);
        for (int i = 0; t != NULL && i < f->tensor.ndims; i++)
        {
            PyTuple_SET_ITEM(t, i, PyLong_FromLong(f->tensor.dims[i]));
        }
        return t;
    }
    case 9: return (PyObject *)PyArray_DescrFromType(tp_py_numpy_type_of(f->tensor.dtype));
    case 10:
    {
        int64_t strides[TP_MAX_DIMS];
        uint64_t span;
        if (tp_tensor_resolve(&f->tensor, strides, &span) < 0)
        {
            return tp_py_raise("the frame's tensor header");
        }
        PyObject *t = PyTuple_New(f->tensor.ndims);
        for (int i = 0; t != NULL && i < f->tensor.ndims; i++)
        {
            PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(strides[i]));
        }
        return t;
    }
    default: return PyBool_FromLong(!frame_is_current(fr));
    }
}

static PyObject *frame_repr(tp_py_frame_t *fr)
{
    return PyUnicode_FromFormat("<tensorpool.Frame stream %u seq %llu epoch %llu, %s, %u bytes%s>",
        fr->frame.stream_id, (unsigned long long)fr->frame.seq, (unsigned long long)fr->frame.epoch,
        tp_dtype_name(fr->frame.tensor.dtype) != NULL ? tp_dtype_name(fr->frame.tensor.dtype) : "?",
        fr->frame.payload_length,
        frame_is_current(fr) ? "; its views are valid until the next poll" : "; stale: copy() no longer works");
}

static void frame_dealloc(tp_py_frame_t *fr)
{
    Py_XDECREF(fr->pin);
    Py_XDECREF(fr->consumer);
    Py_TYPE(fr)->tp_free((PyObject *)fr);
}

/* ---- DLPack (Debian's libdlpack-dev: the tensor struct NumPy and PyTorch read from a "dltensor" capsule) ---- */

typedef struct
{
    DLManagedTensor managed;
    int64_t shape[TP_MAX_DIMS];
    int64_t strides[TP_MAX_DIMS];
} dl_holder_t;

/* kDLBool came with DLPack 0.8; Debian 12 packages 0.6, which has the code's value but not its name */
#define TP_DL_BOOL 6

static void dl_delete(DLManagedTensor *m)
{
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF((PyObject *)m->manager_ctx);
    PyMem_Free(m);
    PyGILState_Release(g);
}

static void dl_capsule_destructor(PyObject *capsule)
{
    if (PyCapsule_IsValid(capsule, "dltensor")) /* never consumed: ours to free */
    {
        DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
        m->deleter(m);
    }
}

static PyObject *frame_dlpack(tp_py_frame_t *fr, PyObject *args, PyObject *kwargs)
{
    PyObject *stream = NULL;
    static char *kw[] = { "stream", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O", kw, &stream) || check_current(fr) < 0)
    {
        return NULL;
    }
    const tp_tensor_desc_t *t = &fr->frame.tensor;
    int64_t strides[TP_MAX_DIMS];
    uint64_t span;
    size_t item = tp_dtype_size_bytes(t->dtype);
    if (tp_tensor_resolve(t, strides, &span) < 0)
    {
        return tp_py_raise("the frame's tensor header");
    }
    dl_holder_t *h = PyMem_Malloc(sizeof(*h));
    if (h == NULL)
    {
        return PyErr_NoMemory();
    }
    memset(h, 0, sizeof(*h));
    for (int i = 0; i < t->ndims; i++)
    {
        if (item == 0 || strides[i] % (int64_t)item != 0)
        {
            PyMem_Free(h);
            PyErr_SetString(PyExc_BufferError, "DLPack needs strides in whole elements; use frame.copy()");
            return NULL;
        }
        h->shape[i] = t->dims[i];
        h->strides[i] = strides[i] / (int64_t)item;
    }
    int np_type = tp_py_numpy_type_of(t->dtype);
    uint8_t code = np_type == NPY_BOOL ? TP_DL_BOOL : PyTypeNum_ISFLOAT(np_type) ? kDLFloat
        : PyTypeNum_ISUNSIGNED(np_type) ? kDLUInt : kDLInt;
    h->managed.dl_tensor = (DLTensor){ .data = fr->data, .device = { kDLCPU, 0 }, .ndim = t->ndims,
        .dtype = { code, (uint8_t)(8 * (item != 0 ? item : 1)), 1 }, .shape = h->shape, .strides = h->strides };
    Py_INCREF(fr->pin);
    h->managed.manager_ctx = fr->pin; /* the mapping lives while the importer holds the tensor */
    h->managed.deleter = dl_delete;
    PyObject *capsule = PyCapsule_New(&h->managed, "dltensor", dl_capsule_destructor);
    if (capsule == NULL)
    {
        dl_delete(&h->managed);
    }
    return capsule;
}

static PyObject *frame_dlpack_device(tp_py_frame_t *fr, PyObject *unused)
{
    (void)fr;
    (void)unused;
    return Py_BuildValue("(ii)", 1, 0);
}

static PyMethodDef frame_methods[] = {
    { "intact", (PyCFunction)frame_intact, METH_NOARGS,
        "intact() -> bool: the slot still holds this frame unchanged (re-check after reading the view; False once "
        "the frame is stale)." },
    { "copy", (PyCFunction)frame_copy, METH_NOARGS,
        "copy() -> ndarray: a private copy, validated after copying (StaleFrameError if the producer overwrote the "
        "frame meanwhile): the safe way to keep a frame." },
    { "__dlpack__", (PyCFunction)(void (*)(void))frame_dlpack, METH_VARARGS | METH_KEYWORDS,
        "DLPack export (read-only memory: importers must not write)." },
    { "__dlpack_device__", (PyCFunction)frame_dlpack_device, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef frame_getset[] = {
    { "array", (getter)frame_array, NULL,
        "A read-only NumPy view of the slot (no copy), valid until the next poll: check intact() after reading it.",
        NULL },
    { "seq", (getter)frame_get, NULL, "The frame's sequence number.", (void *)0 },
    { "epoch", (getter)frame_get, NULL, "The stream's epoch.", (void *)1 },
    { "stream_id", (getter)frame_get, NULL, "The stream id.", (void *)2 },
    { "timestamp_ns", (getter)frame_get, NULL, "Capture (or commit) time, CLOCK_MONOTONIC ns.", (void *)3 },
    { "publish_timestamp_ns", (getter)frame_get, NULL, "The descriptor's publish time (0: none).", (void *)4 },
    { "meta_version", (getter)frame_get, NULL, "The metadata version the frame refers to.", (void *)5 },
    { "trace_id", (getter)frame_get, NULL, "TraceLink id (0: none).", (void *)6 },
    { "nbytes", (getter)frame_get, NULL, "Payload bytes.", (void *)7 },
    { "shape", (getter)frame_get, NULL, "Tensor shape.", (void *)8 },
    { "dtype", (getter)frame_get, NULL, "NumPy dtype of the elements.", (void *)9 },
    { "strides", (getter)frame_get, NULL, "Byte strides.", (void *)10 },
    { "stale", (getter)frame_get, NULL, "True once its consumer moved on.", (void *)11 },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject tp_py_frame_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Frame",
    .tp_basicsize = sizeof(tp_py_frame_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A frame read in place. Its views are valid until the consumer's next poll; arrays taken from it "
              "stay mapped but may then hold a newer frame: check intact(), or copy().",
    .tp_dealloc = (destructor)frame_dealloc,
    .tp_repr = (reprfunc)frame_repr,
    .tp_methods = frame_methods,
    .tp_getset = frame_getset,
};
