"""Shared set-up of the Python binding's tests: an embedded driver in a private directory, clients of it, the C
peer program (tp_py_peer), and the element pattern both sides agree on."""

import os
import shutil
import subprocess
import tempfile

import numpy as np

import tensorpool

PEER = os.environ.get("TP_PY_PEER", "")

# wire dtype code -> NumPy dtype (include/tensorpool/tp_tensor.h)
WIRE_DTYPES = {
    1: np.uint8, 2: np.int8, 3: np.uint16, 4: np.int16, 5: np.uint32, 6: np.int32,
    7: np.uint64, 8: np.int64, 9: np.float32, 10: np.float64, 11: np.bool_,
}


def pattern(wire_dtype, shape, seq):
    """The elements tp_py_peer writes into frame seq: (seq * 7 + i) mod 251, scaled per type."""
    v = (seq * 7 + np.arange(int(np.prod(shape)), dtype=np.int64)) % 251
    dt = WIRE_DTYPES[wire_dtype]
    scaled = {
        1: v, 2: v - 125, 3: v * 200, 4: v * 100 - 12500, 5: v * 100000, 6: v * -100000,
        7: v.astype(np.uint64) << np.uint64(40), 8: -(v << 40), 9: v * 0.5, 10: v * 0.25, 11: v % 2,
    }[wire_dtype]
    return np.asarray(scaled).astype(dt).reshape(shape)


def fnv1a(data):
    h = 1469598103934665603
    for b in bytes(data):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


class Env:
    """An embedded driver with streams 10000-10004 (16 slots of 64 KiB) in a fresh directory under /dev/shm."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="tp-py-%s-" % name, dir="/dev/shm")
        self.bus = os.path.join(self.dir, "bus")
        self.shm = os.path.join(self.dir, "shm")
        os.mkdir(self.shm)
        self.config = os.path.join(self.dir, "driver.toml")
        streams = "".join('[streams.s%d]\nstream_id = %d\nprofile = "small"\n' % (i, 10000 + i) for i in range(5))
        with open(self.config, "w") as f:
            f.write('[driver]\nbus_dir = "%s"\n[shm]\nbase_dir = "%s"\n[policies]\nprefault_shm = false\n'
                    'announce_period_ms = 100\n[profiles.small]\nheader_nslots = 16\n'
                    'payload_pools = [ { pool_id = 1, stride_bytes = 65536 } ]\n%s' % (self.bus, self.shm, streams))
        self.driver = tensorpool.Driver(self.config)

    def client(self, **keys):
        return tensorpool.Client(bus_dir=self.bus, allowed_base_dirs=[self.shm], **keys)

    def peer(self, *args, **kwargs):
        return subprocess.Popen([PEER] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, **kwargs)

    def close(self):
        self.driver.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def mapping_of(address):
    """The /proc/self/maps line of the mapping holding address, or None."""
    with open("/proc/self/maps") as f:
        for line in f:
            span = line.split()[0]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= address < hi:
                return line
    return None
