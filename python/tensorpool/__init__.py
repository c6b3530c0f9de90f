"""tensorpool: shared-memory tensors and camera frames between processes, zero copy.

    import tensorpool
    with tensorpool.Client() as client, client.consumer(10000) as consumer:
        for frame in consumer:
            image = frame.array          # read-only NumPy view of the slot, no copy
            total = image.sum()
            if frame.intact():           # the producer did not lap the slot while we read
                print(frame.seq, total)

A frame's views are valid until the consumer's next poll (the next iteration). Arrays taken from it stay
readable (their memory stays mapped), but the slot may then hold a newer frame: check frame.intact() after reading,
or keep frame.copy(). See docs/PYTHON.md.
"""

import asyncio
import concurrent.futures

from ._tensorpool import (  # noqa: F401  (the public API)
    Claim,
    Client,
    Consumer,
    Driver,
    Error,
    Frame,
    Producer,
    StaleFrameError,
    discover,
)

__all__ = [
    "Claim",
    "Client",
    "Consumer",
    "Driver",
    "Error",
    "Frame",
    "Producer",
    "StaleFrameError",
    "discover",
    "frames",
]


async def frames(consumer, idle_timeout=None):
    """Frames of a consumer for asyncio: `async for frame in tensorpool.frames(consumer):`.

    The waiting runs on a thread of its own with the GIL released (a futex wait on the descriptor stream), so the
    event loop never spins and an idle consumer costs nothing. Each frame is handed to the loop; its views are
    valid until the next one is requested. Ends when the consumer is closed, or after idle_timeout seconds
    without a frame (None: never).
    """
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tensorpool-frames") as pool:
        while not consumer.closed:
            frame = await loop.run_in_executor(pool, _next_or_none, consumer, idle_timeout)
            if frame is None:
                if idle_timeout is not None:
                    return
                continue
            yield frame


def _next_or_none(consumer, timeout):
    if consumer.closed:
        return None
    return consumer.next(timeout=1.0 if timeout is None else timeout)
