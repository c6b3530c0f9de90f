"""The Python binding against real processes: a C producer to a Python consumer for every wire dtype (zero copy,
read-only, bit-exact), a Python producer (copy and claim paths) to a C consumer, DLPack, asyncio, the GIL, and
lifetime misuse that must raise rather than crash."""

import asyncio
import os
import threading
import time
import unittest

import numpy as np

import tensorpool
from tp_py_support import PEER, WIRE_DTYPES, Env, fnv1a, mapping_of, pattern


class BindingTest(unittest.TestCase):
    def setUp(self):
        if not PEER:
            self.skipTest("TP_PY_PEER is not set (run through ctest)")
        self.env = Env(self.id().split(".")[-1])
        self.client = self.env.client()

    def tearDown(self):
        self.client.close()
        self.env.close()

    def next_frame(self, consumer, timeout=5.0):
        frame = consumer.next(timeout=timeout)
        self.assertIsNotNone(frame, "no frame within %.1f s" % timeout)
        return frame

    def test_c_producer_to_python_consumer_every_dtype(self):
        """Every wire dtype: the view has the producer's dtype, shape and strides, equals what was sent, is read-only
        and lies in a shared mapping of the stream's pool file (no copy)."""
        for stream, (wire, dtype) in enumerate(sorted(WIRE_DTYPES.items())):
            stream_id = 10000 + stream % 5
            with self.subTest(dtype=np.dtype(dtype).name), self.client.consumer(stream_id) as consumer:
                peer = self.env.peer("produce", self.env.bus, self.env.shm, stream_id, wire, 3, 5, 200)
                checked = 0
                while checked < 5:
                    frame = self.next_frame(consumer)
                    view = frame.array
                    if view.dtype != np.dtype(dtype):
                        continue  # a frame of the stream's previous producer
                    self.assertEqual(view.shape, (3, 5))
                    self.assertEqual(frame.shape, (3, 5))
                    self.assertEqual(view.strides, (5 * view.itemsize, view.itemsize))
                    self.assertFalse(view.flags.writeable)
                    expected = pattern(wire, (3, 5), frame.seq)
                    same = np.array_equal(view, expected)
                    if frame.intact():
                        self.assertTrue(same, "frame %d differs" % frame.seq)
                        checked += 1
                    line = mapping_of(view.__array_interface__["data"][0])
                    self.assertIn(self.env.shm, line)
                    self.assertIn(".pool", line)
                    self.assertEqual(line.split()[1][:3], "r--")
                peer.kill()
                peer.wait()

    def test_lapped_frame_is_not_intact(self):
        with self.client.producer(10000) as producer, self.client.consumer(10000) as consumer:
            producer.offer(np.full((4, 4), 7, dtype=np.uint16))
            frame = self.next_frame(consumer)
            self.assertTrue(frame.intact())
            view = frame.array
            for i in range(20):  # past the ring's 16 slots: frame's slot now holds a newer frame
                producer.offer(np.full((4, 4), 100 + i, dtype=np.uint16))
            self.assertFalse(frame.intact())
            self.assertNotEqual(int(view[0, 0]), 7)
            with self.assertRaises(tensorpool.StaleFrameError):
                frame.copy()

    def c_consumer(self, stream_id, count):
        peer = self.env.peer("consume", self.env.bus, self.env.shm, stream_id, count)
        self.assertEqual(peer.stdout.readline().strip(), "ready")
        return peer

    def test_python_producer_to_c_consumer(self):
        """The copy path (contiguous and strided arrays) and the claim path arrive bit-exact in C."""
        with self.client.producer(10001) as producer:
            peer = self.c_consumer(10001, 3)  # attached (and subscribed) once it says ready
            a = np.arange(60, dtype=np.float64).reshape(6, 10)
            b = np.arange(200, dtype=np.int32).reshape(10, 20)[::2, 1::3]  # strided: made contiguous
            sent = [a, b]
            producer.offer(a)
            producer.offer(b)
            with producer.claim((3, 7), np.int16) as claim:
                claim.array[:] = np.arange(21, dtype=np.int16).reshape(3, 7) * -3
                sent.append(claim.array.copy())
            out, err = peer.communicate(timeout=10)
            self.assertEqual(peer.returncode, 0, err)
        lines = out.split("\n")[:3]
        for line, array in zip(lines, sent):
            seq, dtype, *dims, digest = line.split()
            self.assertEqual([int(d) for d in dims], list(array.shape))
            self.assertEqual(WIRE_DTYPES[int(dtype)], array.dtype.type)
            self.assertEqual(int(digest, 16), fnv1a(np.ascontiguousarray(array).tobytes()))

    def test_claim_view_is_read_only_after_commit(self):
        with self.client.producer(10002) as producer:
            claim = producer.claim((8,), np.uint8)
            claim.array[:] = 1
            claim.commit()
            with self.assertRaises(ValueError):
                claim.array[0] = 2
            with self.assertRaises(tensorpool.Error):
                claim.commit()
            with self.assertRaises(TypeError):
                producer.claim((2,), np.float16)  # no wire dtype
            with self.assertRaises(TypeError):
                producer.offer(np.zeros(3, dtype=np.complex64))
            with self.client.consumer(10002) as consumer:  # a buffer that is not an array: its bytes, as uint8
                producer.offer(b"hello")
                frame = self.next_frame(consumer)
                self.assertEqual(frame.array.dtype, np.uint8)
                self.assertEqual(frame.array.tobytes(), b"hello")

    def test_dlpack_shares_memory(self):
        with self.client.producer(10003) as producer, self.client.consumer(10003) as consumer:
            producer.offer(np.arange(12, dtype=np.int32).reshape(3, 4))
            frame = self.next_frame(consumer)
            view = frame.array
            x = np.from_dlpack(frame)
            self.assertEqual(x.dtype, np.int32)
            self.assertEqual(x.shape, (3, 4))
            self.assertEqual(x.strides, view.strides)
            self.assertEqual(x.__array_interface__["data"][0], view.__array_interface__["data"][0])
            self.assertEqual(frame.__dlpack_device__(), (1, 0))
            try:
                import torch  # Debian's python3-torch, when installed
            except ImportError:
                print("skipped: torch.from_dlpack (python3-torch is not installed)")
                return
            t = torch.from_dlpack(frame)
            self.assertEqual(t.data_ptr(), view.__array_interface__["data"][0])
            self.assertEqual(tuple(t.shape), (3, 4))

    def test_gil_is_released_while_waiting(self):
        with self.client.consumer(10004) as consumer:
            done = []
            t = threading.Thread(target=lambda: done.append(consumer.next(timeout=0.5)))
            t.start()
            spins = 0
            while t.is_alive():
                spins += 1  # runs only if the waiting thread let go of the GIL
            t.join()
            self.assertEqual(done, [None])
            self.assertGreater(spins, 1000)

    def test_asyncio_frames_keep_the_loop_responsive(self):
        with self.client.producer(10000) as producer, self.client.consumer(10000) as consumer:
            async def main():
                ticks = 0
                stop = asyncio.Event()

                async def ticker():
                    nonlocal ticks
                    while not stop.is_set():
                        ticks += 1
                        await asyncio.sleep(0.005)

                async def feed():
                    for i in range(10):
                        await asyncio.sleep(0.02)
                        producer.offer(np.full(4, i, dtype=np.uint8))

                tick_task = asyncio.create_task(ticker())
                feed_task = asyncio.create_task(feed())
                seen = []
                cpu0, wall0 = time.process_time(), time.monotonic()
                async for frame in consumer.frames(idle_timeout=1.0):
                    seen.append(int(frame.array[0]))
                    if len(seen) == 10:
                        break
                await feed_task
                # idle: nothing comes for a second; the loop is free and the process does next to nothing
                idle_cpu0 = time.process_time()
                async for frame in consumer.frames(idle_timeout=1.0):
                    seen.append(-1)
                idle_cpu = time.process_time() - idle_cpu0
                stop.set()
                await tick_task
                return seen, ticks, idle_cpu, time.monotonic() - wall0

            seen, ticks, idle_cpu, wall = asyncio.run(main())
            self.assertEqual(seen, list(range(10)))
            self.assertGreater(ticks, 50)  # the loop kept running while frames were awaited
            self.assertLess(idle_cpu, 0.25)  # about 0% of a core for the idle second (a spinning loop uses 1.0)

    def test_lifetime_misuse_raises(self):
        producer = self.client.producer(10002)
        consumer = self.client.consumer(10002)
        producer.offer(np.arange(16, dtype=np.uint8))
        frame = self.next_frame(consumer)
        kept = frame.array
        producer.offer(np.arange(16, dtype=np.uint8))
        self.next_frame(consumer)
        with self.assertRaises(tensorpool.StaleFrameError):
            frame.array
        self.assertFalse(frame.intact())
        self.assertIn("stale", repr(frame))
        # the producer goes away (a new epoch: the consumer maps again) and the consumer closes: the array kept
        # past all that still reads (its own mapping), it never faults
        producer.close()
        producer = self.client.producer(10002)
        producer.offer(np.arange(16, dtype=np.uint8))
        self.next_frame(consumer)
        consumer.close()
        self.assertEqual(int(kept.sum()), sum(range(16)))
        with self.assertRaises(ValueError):
            consumer.next(timeout=0)
        producer.close()
        with self.assertRaises(ValueError):
            producer.offer(np.zeros(4, dtype=np.uint8))
        self.client.close()
        with self.assertRaises(ValueError):
            self.client.consumer(10002)

    def test_client_settings(self):
        """Keys as keywords or as a settings dict, with or without the 'client.' prefix; a bad key or value says
        which."""
        with tensorpool.Client(settings={"client.bus_dir": self.env.bus, "allowed_base_dirs": self.env.shm},
                               qos_period_ms=50) as c, c.consumer(10001) as consumer:
            self.assertTrue(consumer.attached)
        with self.assertRaisesRegex(ValueError, "no_such_key"):
            tensorpool.Client(bus_dir=self.env.bus, no_such_key=1)
        with self.assertRaisesRegex(ValueError, "qos_period_ms"):
            tensorpool.Client(bus_dir=self.env.bus, qos_period_ms="often")

    def test_discovery_and_metadata(self):
        with self.client.producer(10003) as producer:
            producer.set_source("py-camera", "a camera in Python")
            producer.set_attribute("tags", "front,python")
            deadline = time.monotonic() + 5
            found = []
            while not found and time.monotonic() < deadline:
                producer.do_work()
                found = tensorpool.discover(self.client, name="py-camera", timeout=1.0)
                time.sleep(0.05)
            self.assertEqual(len(found), 1)
            self.assertEqual(found[0]["stream_id"], 10003)
            self.assertEqual(found[0]["driver_control_stream_id"], 1000)
            with self.client.consumer_by_name("py-camera") as consumer:
                self.assertEqual(consumer.stream_id, 10003)
            with self.assertRaises(tensorpool.Error):
                self.client.consumer_by_name("nobody-has-this", timeout=1.0)


if __name__ == "__main__":
    unittest.main()
