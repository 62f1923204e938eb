"""Calls in flight: identical ones share one fan-out, and each is let in only if the memory budget has room.

Identical means the same metadata passed on to istiod (the authorization header and cluster ID)
and the same request (page, resource names, node): istiod checks every token itself, so calls with different tokens never share an answer. A
caller that goes away stops waiting; the fan-out goes on while another caller shares it, and is
cancelled when none is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from kubectl_istio_remote.aggregator.fanout import FanOut, Merged
from kubectl_istio_remote.aggregator.load import Budget, Hold
from kubectl_istio_remote.aggregator.metrics import Metrics, page_class

#: (what istiod sees of the caller, the request's bytes): calls of one key share a fan-out.
CallKey = tuple[tuple[tuple[str, str], ...], bytes]
#: A place in line is given up this long before the caller's deadline, so the caller reads why, not a bare deadline.
DEADLINE_MARGIN_SECONDS = 0.2


@dataclass(eq=False)
class Call:
    """One fan-out and the callers waiting for it; its budget share is released once the last of them has its answer."""

    hold: Hold
    task: asyncio.Future[Merged] | None = None
    waiting: int = 0

    def leave(self) -> None:
        """A caller is done (answered, failed or gone); the last one frees what the call held."""
        self.waiting -= 1
        if self.waiting == 0:
            if self.task is not None and not self.task.done():
                self.task.cancel()  # nobody is left to read it
            self.hold.release()


@dataclass(eq=False)
class Caller:
    """One caller's part: the fan-out it waits for, and its own copy of the answer on its way out."""

    call: Call
    sending: Hold

    def done(self) -> None:
        """Its answer is sent, or it failed, or the caller went away."""
        self.sending.release()
        self.call.leave()


class Calls:
    """The aggregator's calls in flight, by what makes two of them identical."""

    def __init__(self, fan_out: FanOut, budget: Budget, metrics: Metrics, max_queue_seconds: float) -> None:
        self._fan_out = fan_out
        self._budget = budget
        self._metrics = metrics
        self._max_queue_seconds = max_queue_seconds
        self._in_flight: dict[CallKey, Call] = {}

    async def answer(
        self, request: DiscoveryRequest, metadata: Sequence[tuple[str, str]], remaining: float | None
    ) -> tuple[Merged, Caller]:
        """The merged answer and this caller's part (`done()` once it is sent); raises Overloaded or AggregationError.

        `metadata` is what goes on to istiod (server.forwarded_metadata), so it is also who istiod takes the caller for;
        `remaining` is the caller's own deadline, in seconds from now (None: it gave none).
        """
        key = (tuple(sorted(metadata)), request.SerializeToString(deterministic=True))
        page = page_class(request)
        call = self._in_flight.get(key)
        wait = self._max_queue_seconds if remaining is None else min(self._max_queue_seconds, remaining - DEADLINE_MARGIN_SECONDS)
        if call is None:
            links = self._fan_out.links(request)
            fanning = self._budget.hold(f"{page} fan-out")
            if not self._budget.fits(fanning.estimate):
                raise self._budget.full()  # full now: refused at the door; its reservation is made when istiod has room
            call = Call(fanning)
            deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining - DEADLINE_MARGIN_SECONDS
            call.task = asyncio.ensure_future(self._fan_out.answer(request, metadata, links, call.hold, wait, deadline))
            self._in_flight[key] = call
            call.task.add_done_callback(lambda _: self._forget(key, call))
        else:
            self._metrics.coalesced()
        call.waiting += 1
        caller = Caller(call, self._budget.hold(f"{page} answer"))
        try:
            assert call.task is not None
            merged = await asyncio.shield(call.task)
            # This caller's copy of the answer, once it fits: copies of callers before it are sent in moments.
            await self._budget.room(len(merged.raw), max(0.0, wait))
        except BaseException:
            caller.done()
            raise
        caller.sending.holding(len(merged.raw))
        return merged, caller

    def _forget(self, key: CallKey, call: Call) -> None:
        """A finished fan-out takes no new callers: a later identical call asks istiod afresh."""
        if self._in_flight.get(key) is call:
            del self._in_flight[key]
