"""The process's one asyncio loop, in a daemon thread: tunnels, relays, the local aggregator and every gRPC call of the
plugin live there while the main thread waits on istioctl or on the API servers.

One loop for the whole process, not one per session or per call: grpc's asyncio stack binds its poller to each loop
that makes a gRPC object, and gRPC objects on two loops in two threads are not supported (grpc/grpc#25364). A
native proxy-status once aborted with `double free or corruption` while its session's loop and the loop of its own
`asyncio.run` call were both alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from kubectl_istio_remote.signals import signals_held

T = TypeVar("T")

_started: list[asyncio.AbstractEventLoop] = []
_starting = threading.Lock()


def _shared_loop() -> asyncio.AbstractEventLoop:
    with _starting:
        if not _started:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="istio-remote-io", daemon=True)
            with signals_held():
                thread.start()
            _started.append(loop)
        return _started[0]


class LoopThread:
    """A handle on the shared loop; there is nothing to close. What runs there is ended by whoever started it (a
    relay's close, the aggregator's stop); a call given up on (its timeout, a signal) is cancelled."""

    def __init__(self) -> None:
        self.loop = _shared_loop()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise


def run(coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
    """`coroutine` on the shared loop, from any thread but the loop's own."""
    return LoopThread().run(coroutine, timeout)
