/* Producers and claims: offer any array (copy path), or fill a writable view of the slot and commit (tp_py.h). */
#define NO_IMPORT_ARRAY
#include "tp_py.h"

#include <string.h>

#include "tensorpool/tp_metadata.h"

typedef struct tp_py_producer
{
    PyObject_HEAD
    tp_py_client_t *owner;
    tp_producer_t *producer; /* NULL once closed */
    PyObject *claim;         /* the open Claim, borrowed (it holds a reference to us) */
} tp_py_producer_t;

typedef struct tp_py_claim
{
    PyObject_HEAD
    tp_py_producer_t *producer;
    tp_claim_t claim;
    tp_tensor_desc_t tensor;
    uint32_t length;
    PyObject *array; /* the writable view handed out; made read-only at commit or abort */
    bool is_open;
} tp_py_claim_t;

static int check_open(tp_py_producer_t *self)
{
    if (self->producer == NULL)
    {
        PyErr_SetString(PyExc_ValueError, "the producer is closed");
        return -1;
    }
    return 0;
}

/* The tensor of a C-contiguous array: its dtype, shape, inferred strides. -1 with an exception. */
static int tensor_of(PyArrayObject *a, tp_tensor_desc_t *t)
{
    memset(t, 0, sizeof(*t));
    int dtype = tp_py_dtype_of(PyArray_TYPE(a), true);
    if (dtype < 0)
    {
        return -1;
    }
    int nd = PyArray_NDIM(a);
    if (nd > TP_MAX_DIMS)
    {
        PyErr_Format(PyExc_ValueError, "%d dimensions: a tensor has at most %d", nd, TP_MAX_DIMS);
        return -1;
    }
    t->dtype = (tp_dtype_t)dtype;
    t->major_order = TP_MAJOR_ORDER_ROW;
    t->ndims = (uint8_t)(nd == 0 ? 1 : nd);
    t->dims[0] = 1;
    for (int i = 0; i < nd; i++)
    {
        if (PyArray_DIM(a, i) > INT32_MAX)
        {
            PyErr_SetString(PyExc_ValueError, "a dimension is larger than 2^31 - 1");
            return -1;
        }
        t->dims[i] = (int32_t)PyArray_DIM(a, i);
    }
    return 0;
}

static PyObject *producer_offer(tp_py_producer_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *obj = NULL;
    unsigned int meta_version = 0;
    unsigned long long trace_id = 0, timestamp_ns = 0;
    static char *kw[] = { "array", "meta_version", "trace_id", "timestamp_ns", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|IKK", kw, &obj, &meta_version, &trace_id, &timestamp_ns) ||
        check_open(self) < 0)
    {
        return NULL;
    }
    /* any array or buffer; strided ones are made contiguous (this is the copy path anyway). A plain buffer
     * (bytes, bytearray, memoryview) goes through a memoryview so that its format decides the dtype (bytes: uint8)
     * rather than NumPy's reading of bytes as one string. */
    PyObject *view = !PyArray_Check(obj) && PyObject_CheckBuffer(obj) ? PyMemoryView_FromObject(obj) : NULL;
    if (view == NULL && PyErr_Occurred())
    {
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OF(view != NULL ? view : obj,
        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    Py_XDECREF(view);
    if (a == NULL)
    {
        return NULL;
    }
    tp_tensor_desc_t t;
    if (tensor_of(a, &t) < 0)
    {
        Py_DECREF(a);
        return NULL;
    }
    if (PyArray_NBYTES(a) > UINT32_MAX)
    {
        Py_DECREF(a);
        PyErr_SetString(PyExc_ValueError, "a frame is at most 4 GiB");
        return NULL;
    }
    int64_t rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_producer_offer_frame_at(self->producer, PyArray_DATA(a), (uint32_t)PyArray_NBYTES(a), &t, meta_version,
        trace_id, timestamp_ns);
    tp_producer_do_work(self->producer); /* keepalives, metadata and QoS: Python callers need not think of it */
    Py_END_ALLOW_THREADS
    Py_DECREF(a);
    if (rc == TP_PRODUCER_NOT_ATTACHED)
    {
        PyErr_Format(tp_py_error, "not attached to the stream now (the driver restarted or revoked the lease): %s",
            tp_producer_last_error(self->producer));
        return NULL;
    }
    if (rc < 0)
    {
        return tp_py_raise("offering a frame");
    }
    return PyLong_FromLongLong(rc);
}

static PyObject *producer_claim(tp_py_producer_t *self, PyObject *args, PyObject *kwargs)
{
    PyObject *shape = NULL, *dtype_obj = NULL;
    static char *kw[] = { "shape", "dtype", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO", kw, &shape, &dtype_obj) || check_open(self) < 0)
    {
        return NULL;
    }
    if (self->claim != NULL)
    {
        PyErr_SetString(tp_py_error, "a claim is open: commit() or abort() it first");
        return NULL;
    }
    PyArray_Descr *descr = NULL;
    if (!PyArray_DescrConverter(dtype_obj, &descr))
    {
        return NULL;
    }
    int dtype = tp_py_dtype_of(descr->type_num, true);
    size_t item = (size_t)descr->elsize;
    Py_DECREF(descr);
    PyObject *dims = PySequence_Fast(shape, "shape must be a sequence of ints");
    if (dtype < 0 || dims == NULL)
    {
        Py_XDECREF(dims);
        return NULL;
    }
    tp_py_claim_t *c = PyObject_New(tp_py_claim_t, &tp_py_claim_type);
    if (c == NULL)
    {
        Py_DECREF(dims);
        return NULL;
    }
    c->producer = NULL;
    c->array = NULL;
    c->is_open = false;
    memset(&c->tensor, 0, sizeof(c->tensor));
    c->tensor.dtype = (tp_dtype_t)dtype;
    c->tensor.major_order = TP_MAJOR_ORDER_ROW;
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(dims);
    uint64_t bytes = item;
    if (nd < 1 || nd > TP_MAX_DIMS)
    {
        PyErr_Format(PyExc_ValueError, "shape has %zd dimensions: 1 to %d", nd, TP_MAX_DIMS);
    }
    for (Py_ssize_t i = 0; !PyErr_Occurred() && i < nd; i++)
    {
        long d = PyLong_AsLong(PySequence_Fast_GET_ITEM(dims, i));
        if (!PyErr_Occurred() && (d < 1 || d > INT32_MAX))
        {
            PyErr_Format(PyExc_ValueError, "dimension %zd is %ld: 1 to 2^31 - 1", i, d);
        }
        c->tensor.dims[i] = (int32_t)d;
        bytes *= (uint64_t)(d > 0 ? d : 1);
    }
    c->tensor.ndims = (uint8_t)nd;
    Py_DECREF(dims);
    if (!PyErr_Occurred() && bytes > UINT32_MAX)
    {
        PyErr_SetString(PyExc_ValueError, "a frame is at most 4 GiB");
    }
    if (PyErr_Occurred())
    {
        Py_DECREF(c);
        return NULL;
    }
    c->length = (uint32_t)bytes;
    int rc = tp_producer_try_claim_by_size(self->producer, c->length, &c->claim);
    if (rc != 0)
    {
        Py_DECREF(c);
        return rc == TP_PRODUCER_NOT_ATTACHED ? PyErr_Format(tp_py_error, "not attached to the stream now")
                                              : tp_py_raise("claiming a slot");
    }
    tp_region_info_t info;
    tp_py_pin_t *pin = NULL;
    if (tp_producer_payload_region(self->producer, &c->claim, &info) < 0 ||
        (pin = tp_py_pin_new(&info, tp_producer_epoch(self->producer), true)) == NULL)
    {
        tp_producer_abort(self->producer, &c->claim);
        Py_DECREF(c);
        return PyErr_Occurred() ? NULL : tp_py_raise("the claimed slot's region");
    }
    c->array = tp_py_array(&c->tensor, pin->base + (c->claim.buffer - info.base), true, (PyObject *)pin);
    Py_DECREF(pin); /* the array holds it */
    if (c->array == NULL)
    {
        tp_producer_abort(self->producer, &c->claim);
        Py_DECREF(c);
        return NULL;
    }
    Py_INCREF(self);
    c->producer = self;
    c->is_open = true;
    self->claim = (PyObject *)c;
    return (PyObject *)c;
}

static PyObject *producer_do_work(tp_py_producer_t *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self) < 0)
    {
        return NULL;
    }
    int work;
    Py_BEGIN_ALLOW_THREADS
    work = tp_producer_do_work(self->producer);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(work);
}

static PyObject *producer_set_source(tp_py_producer_t *self, PyObject *args, PyObject *kwargs)
{
    const char *name = NULL, *summary = "";
    static char *kw[] = { "name", "summary", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|s", kw, &name, &summary) || check_open(self) < 0)
    {
        return NULL;
    }
    if (tp_metadata_set_source(tp_producer_metadata(self->producer), name, summary) < 0)
    {
        PyErr_Format(PyExc_ValueError, "%s", tp_errmsg());
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *producer_set_attribute(tp_py_producer_t *self, PyObject *args)
{
    const char *key = NULL, *text = NULL;
    if (!PyArg_ParseTuple(args, "ss", &key, &text) || check_open(self) < 0)
    {
        return NULL;
    }
    if (tp_metadata_set_text(tp_producer_metadata(self->producer), key, text) < 0)
    {
        PyErr_Format(PyExc_ValueError, "%s", tp_errmsg());
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *producer_close(tp_py_producer_t *self, PyObject *unused)
{
    (void)unused;
    if (self->claim != NULL)
    {
        PyErr_SetString(tp_py_error, "a claim is open: commit() or abort() it before closing");
        return NULL;
    }
    if (self->producer != NULL)
    {
        tp_producer_t *p = self->producer;
        self->producer = NULL;
        Py_BEGIN_ALLOW_THREADS
        tp_producer_close(p);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static void producer_dealloc(tp_py_producer_t *self)
{
    if (self->producer != NULL)
    {
        tp_producer_close(self->producer);
    }
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *self_ref(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_INCREF(self);
    return self;
}

static PyObject *producer_exit(tp_py_producer_t *self, PyObject *args)
{
    (void)args;
    return producer_close(self, NULL);
}

static PyObject *producer_get(tp_py_producer_t *self, void *what)
{
    if (check_open(self) < 0)
    {
        return NULL;
    }
    switch ((intptr_t)what)
    {
    case 0: return PyLong_FromUnsignedLong(tp_producer_stream_id(self->producer));
    case 1: return PyLong_FromUnsignedLongLong(tp_producer_epoch(self->producer));
    default: return PyBool_FromLong(tp_producer_is_attached(self->producer));
    }
}

PyObject *tp_py_producer_open(tp_py_client_t *client, PyObject *args, PyObject *kwargs)
{
    unsigned int stream_id = 0;
    PyObject *timeout = NULL;
    int create_stream = 0;
    static char *kw[] = { "stream_id", "timeout", "create_stream", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "I|Op", kw, &stream_id, &timeout, &create_stream))
    {
        return NULL;
    }
    tp_client_t *c = tp_py_client_get(client);
    int64_t timeout_ns = timeout == NULL ? 5000000000LL : tp_py_timeout_ns(timeout);
    if (c == NULL || timeout_ns == -2)
    {
        return NULL;
    }
    tp_producer_options_t o;
    tp_producer_options_init(&o);
    o.create_stream = create_stream != 0;
    tp_py_producer_t *self = PyObject_New(tp_py_producer_t, &tp_py_producer_type);
    if (self == NULL)
    {
        return NULL;
    }
    self->owner = NULL;
    self->producer = NULL;
    self->claim = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_producer_open(&self->producer, c, stream_id, &o, timeout_ns < 0 ? INT64_MAX / 2 : timeout_ns);
    Py_END_ALLOW_THREADS
    if (rc < 0)
    {
        Py_DECREF(self);
        char what[64];
        snprintf(what, sizeof(what), "attaching to stream %u as its producer", stream_id);
        return tp_py_raise(what);
    }
    Py_INCREF(client);
    self->owner = client;
    return (PyObject *)self;
}

static PyMethodDef producer_methods[] = {
    { "offer", (PyCFunction)(void (*)(void))producer_offer, METH_VARARGS | METH_KEYWORDS,
        "offer(array, meta_version=0, trace_id=0, timestamp_ns=0) -> seq: copy an array (any object NumPy can "
        "read; a strided one is made contiguous first) into the next slot and publish it." },
    { "claim", (PyCFunction)(void (*)(void))producer_claim, METH_VARARGS | METH_KEYWORDS,
        "claim(shape, dtype) -> Claim: a writable view of the next slot; fill claim.array, then commit() (with "
        "`with producer.claim(...) as c:` commit happens on success, abort on an exception)." },
    { "do_work", (PyCFunction)producer_do_work, METH_NOARGS,
        "Keepalives, metadata and QoS (offer and commit do it too): call it when idle for longer than a second." },
    { "set_source", (PyCFunction)(void (*)(void))producer_set_source, METH_VARARGS | METH_KEYWORDS,
        "set_source(name, summary='') : the stream's data source name (DataSourceAnnounce)." },
    { "set_attribute", (PyCFunction)producer_set_attribute, METH_VARARGS,
        "set_attribute(key, text) : a metadata attribute (DataSourceMeta)." },
    { "close", (PyCFunction)producer_close, METH_NOARGS, "Detach (the driver moves the stream to a new epoch)." },
    { "__enter__", self_ref, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)producer_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef producer_getset[] = {
    { "stream_id", (getter)producer_get, NULL, "The stream id.", (void *)0 },
    { "epoch", (getter)producer_get, NULL, "The epoch now.", (void *)1 },
    { "attached", (getter)producer_get, NULL, "True while attached.", (void *)2 },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject tp_py_producer_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Producer",
    .tp_basicsize = sizeof(tp_py_producer_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The producer of one stream (Client.producer).",
    .tp_dealloc = (destructor)producer_dealloc,
    .tp_methods = producer_methods,
    .tp_getset = producer_getset,
};

/* ---- claim ---- */

static int claim_finish(tp_py_claim_t *c)
{
    if (!c->is_open)
    {
        PyErr_SetString(tp_py_error, "the claim was committed or aborted already");
        return -1;
    }
    c->is_open = false;
    c->producer->claim = NULL;
    /* The slot is the consumers' now: the view handed out may not write to it any more. */
    PyArray_CLEARFLAGS((PyArrayObject *)c->array, NPY_ARRAY_WRITEABLE);
    return 0;
}

static PyObject *claim_commit(tp_py_claim_t *c, PyObject *args, PyObject *kwargs)
{
    unsigned int meta_version = 0;
    unsigned long long trace_id = 0, timestamp_ns = 0;
    static char *kw[] = { "meta_version", "trace_id", "timestamp_ns", NULL };
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|IKK", kw, &meta_version, &trace_id, &timestamp_ns) ||
        claim_finish(c) < 0)
    {
        return NULL;
    }
    c->claim.timestamp_ns = timestamp_ns;
    int64_t rc;
    tp_producer_t *p = c->producer->producer;
    Py_BEGIN_ALLOW_THREADS
    rc = tp_producer_commit(p, &c->claim, c->length, &c->tensor, meta_version, trace_id);
    tp_producer_do_work(p);
    Py_END_ALLOW_THREADS
    return rc < 0 ? tp_py_raise("committing the frame") : PyLong_FromLongLong(rc);
}

static PyObject *claim_abort(tp_py_claim_t *c, PyObject *unused)
{
    (void)unused;
    if (claim_finish(c) < 0)
    {
        return NULL;
    }
    if (tp_producer_abort(c->producer->producer, &c->claim) < 0)
    {
        return tp_py_raise("aborting the claim");
    }
    Py_RETURN_NONE;
}

static PyObject *claim_exit(tp_py_claim_t *c, PyObject *args)
{
    PyObject *type = PyTuple_GET_ITEM(args, 0);
    if (!c->is_open)
    {
        Py_RETURN_FALSE;
    }
    PyObject *none = PyTuple_New(0);
    PyObject *r = none == NULL ? NULL : type == Py_None ? claim_commit(c, none, NULL) : claim_abort(c, NULL);
    Py_XDECREF(none);
    if (r == NULL)
    {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_FALSE; /* an exception in the block goes on */
}

static PyObject *claim_array(tp_py_claim_t *c, void *unused)
{
    (void)unused;
    Py_INCREF(c->array);
    return c->array;
}

static void claim_dealloc(tp_py_claim_t *c)
{
    if (c->is_open && c->producer != NULL && c->producer->producer != NULL)
    {
        tp_producer_abort(c->producer->producer, &c->claim); /* dropped without commit: the slot is released */
        c->producer->claim = NULL;
    }
    Py_XDECREF(c->array);
    Py_XDECREF(c->producer);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyMethodDef claim_methods[] = {
    { "commit", (PyCFunction)(void (*)(void))claim_commit, METH_VARARGS | METH_KEYWORDS,
        "commit(meta_version=0, trace_id=0, timestamp_ns=0) -> seq: publish the filled slot; the array turns "
        "read-only." },
    { "abort", (PyCFunction)claim_abort, METH_NOARGS, "Release the slot unpublished." },
    { "__enter__", self_ref, METH_NOARGS, NULL },
    { "__exit__", (PyCFunction)claim_exit, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef claim_getset[] = {
    { "array", (getter)claim_array, NULL, "The writable view of the claimed slot.", NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject tp_py_claim_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tensorpool._tensorpool.Claim",
    .tp_basicsize = sizeof(tp_py_claim_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A claimed slot (Producer.claim): fill .array, then commit() or abort().",
    .tp_dealloc = (destructor)claim_dealloc,
    .tp_methods = claim_methods,
    .tp_getset = claim_getset,
};
