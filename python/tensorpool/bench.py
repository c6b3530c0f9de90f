"""python -m tensorpool.bench: what the Python binding costs, beside C, in one run.

A driver embedded in this process; `tp produce` (C) publishes as fast as it can while, one after the other, a
Python consumer that only takes the view, one that also sums it (np.sum), and `tp consume` (C) read the stream,
for 64 B, 640 KiB and 4 MiB frames. Then a Python producer's offer() of a 640 KiB array against np.copyto of
the same array (the memcpy it has to do). Prints frames/s, GiB/s, the Python/C ratio and the per-frame overhead
of the Python view path (1/py - 1/C).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import tensorpool

SIZES = (64, 640 * 1024, 4 * 1024 * 1024)


def find_tp(explicit):
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (explicit, os.environ.get("TP_TOOL"), os.path.join(here, "..", "..", "src", "cli", "tp"),
                      shutil.which("tp")):
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    sys.exit("tensorpool.bench: the tp tool was not found (give --tp PATH or set TP_TOOL)")


def python_rate(consumer, seconds, reduce):
    """Frames per second a Python loop takes (next, view, optionally np.sum, intact check), and the share of them
    still intact after use (a reader slower than the producer gets lapped: those frames are reported, not kept)."""
    frames = intact = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = consumer.next(timeout=0.5)
        if frame is None:
            continue
        view = frame.array
        if reduce:
            view.sum()
        frames += 1
        intact += frame.intact()
    return frames / seconds, (intact / frames if frames else 0.0)


def c_rate(tp, bus, shm, seconds):
    """tp consume's frames/s over its last full second of seconds + 1."""
    out = subprocess.run([tp, "consume", "10000", "--seconds", str(seconds + 1), "--bus-dir", bus,
                          "--allowed-base-dirs", shm], capture_output=True, text=True, check=True).stdout
    rates = [float(l.split()[0]) for l in out.splitlines() if "frames/s" in l]
    return rates[-1] if rates else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tensorpool.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each measurement [1]")
    ap.add_argument("--tp", help="the tp tool (default: the build tree's, $TP_TOOL, or tp on the PATH)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args(argv)
    tp = find_tp(args.tp)
    work = tempfile.mkdtemp(prefix="tp-py-bench-", dir="/dev/shm")
    bus, shm = os.path.join(work, "bus"), os.path.join(work, "shm")
    os.mkdir(shm)
    config = os.path.join(work, "driver.toml")
    with open(config, "w") as f:
        f.write('[driver]\nbus_dir = "%s"\n[shm]\nbase_dir = "%s"\n[policies]\nprefault_shm = false\n'
                '[profiles.bench]\nheader_nslots = 16\npayload_pools = [ { pool_id = 1, stride_bytes = 4194304 } ]\n'
                '[streams.bench]\nstream_id = 10000\nprofile = "bench"\n' % (bus, shm))
    results = {"consume": [], "offer": {}}
    try:
        with tensorpool.Driver(config), tensorpool.Client(bus_dir=bus, allowed_base_dirs=[shm]) as client:
            for size in SIZES:
                producer = subprocess.Popen([tp, "produce", "10000", "--size", str(size), "--rate", "0", "--seconds",
                                             str(3 * args.seconds + 4), "--bus-dir", bus, "--allowed-base-dirs", shm],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with client.consumer(10000) as consumer:
                    python_rate(consumer, 0.3, False)  # warm up: the producer attached, the stream flows
                    py_view, view_intact = python_rate(consumer, args.seconds, False)
                    py_sum, sum_intact = python_rate(consumer, args.seconds, True)
                c = c_rate(tp, bus, shm, args.seconds)
                producer.wait()
                results["consume"].append({"bytes": size, "c_frames_per_s": c, "py_view_frames_per_s": py_view,
                                           "py_view_intact": view_intact, "py_sum_frames_per_s": py_sum,
                                           "py_sum_intact": sum_intact})
            with client.producer(10000) as producer, client.consumer(10000) as consumer:
                # per-frame cost of the Python view path with frames waiting (no lapping): batches of 12 frames
                # of 64 B offered, then taken with next(timeout=0), .array and intact(); only the taking is timed
                small = np.zeros(64, dtype=np.uint8)
                taken, spent, end = 0, 0.0, time.monotonic() + args.seconds
                while time.monotonic() < end:
                    for _ in range(12):
                        producer.offer(small)
                    t0 = time.perf_counter()
                    for _ in range(12):
                        frame = consumer.next(timeout=0)
                        if frame is not None:
                            frame.array
                            taken += frame.intact()
                    spent += time.perf_counter() - t0
                results["per_frame_us"] = spent / taken * 1e6 if taken else float("nan")
            with client.producer(10000) as producer:
                a = np.random.default_rng(1).integers(0, 255, 640 * 1024, dtype=np.uint8)
                dst = np.empty_like(a)
                n, end = 0, time.monotonic() + args.seconds
                while time.monotonic() < end:
                    producer.offer(a)
                    n += 1
                offer = n * a.nbytes / args.seconds
                n, end = 0, time.monotonic() + args.seconds
                while time.monotonic() < end:
                    np.copyto(dst, a)
                    n += 1
                memcpy = n * a.nbytes / args.seconds
                results["offer"] = {"bytes": a.nbytes, "offer_bytes_per_s": offer, "memcpy_bytes_per_s": memcpy}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        import json
        print(json.dumps(results))
        return 0
    print("Python consumer beside C (tp consume), %s s each, one tp produce publishing as fast as it can" %
          args.seconds)
    print("%10s %14s %14s %7s %14s %13s %s" % ("frame", "C frames/s", "py view/s", "py/C", "py np.sum/s",
                                               "py overhead", "  intact (view, sum)"))
    for r in results["consume"]:
        ratio = r["py_view_frames_per_s"] / r["c_frames_per_s"] if r["c_frames_per_s"] else 0
        overhead = (1 / r["py_view_frames_per_s"] - 1 / r["c_frames_per_s"]) * 1e6 \
            if r["py_view_frames_per_s"] and r["c_frames_per_s"] else float("nan")
        print("%10d %14.0f %14.0f %7.2f %14.0f %10.2f us   %3.0f%% %3.0f%%" % (
            r["bytes"], r["c_frames_per_s"], r["py_view_frames_per_s"], ratio, r["py_sum_frames_per_s"], overhead,
            100 * r["py_view_intact"], 100 * r["py_sum_intact"]))
    print("Python per-frame cost (next + array + intact, frames waiting): %.2f us" % results["per_frame_us"])
    o = results["offer"]
    print("Python producer offer() of %d bytes: %.2f GiB/s; np.copyto of the same: %.2f GiB/s (ratio %.2f)" %
          (o["bytes"], o["offer_bytes_per_s"] / 2**30, o["memcpy_bytes_per_s"] / 2**30,
           o["offer_bytes_per_s"] / o["memcpy_bytes_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
