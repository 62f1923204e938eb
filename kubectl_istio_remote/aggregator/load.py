"""Bounds that keep istiod and the aggregator standing under load: a queue per replica, and a memory budget.

A shared aggregator serves every mesh user of a control plane. Without bounds a burst of calls
became a burst on every istiod at once, and answers that came too late were dropped from a merge
that still looked like success. Here each replica takes at most `limit` of our requests at a
time (the others wait in line, their wait not counted against --istiod-timeout); a call whose
place in line would outlast its caller's deadline, or whose answers would not fit the memory
budget, is refused whole: RESOURCE_EXHAUSTED, "busy, retry", never a partial answer.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BUSY_HINT = "the aggregator is busy: retry in a few seconds"
#: What an answer costs the process beyond its bytes: gRPC's receive and send buffers and the merged copy
#: (bench/RESULTS.md, the load table: peak RSS over the bytes accounted here).
OVERHEAD = 3
#: Until a page has been answered once, a call for it is assumed to hold this much.
FIRST_ESTIMATE_BYTES = 4 * 1024 * 1024
#: cgroup v2, then v1: the container's memory limit, which --max-memory defaults to.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
#: cgroup v1 writes "no limit" as a huge number.
UNLIMITED_ABOVE = 1 << 60
QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
UNITS = {None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class Overloaded(Exception):
    """This call cannot be served now without hurting others: the caller gets RESOURCE_EXHAUSTED and retries."""

    def __init__(self, reason: str, cause: str) -> None:
        super().__init__(f"{reason}; {BUSY_HINT}")
        #: "memory" or "queue", the metrics' label.
        self.cause = cause


def parse_size(text: str) -> int:
    """A Kubernetes quantity of bytes (384Mi, 1Gi, 500M, 1048576); ValueError when it is not one."""
    match = QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 384Mi, 1Gi or 500M")
    return int(float(match[1]) * UNITS[match[2]])


def container_limit() -> int | None:
    """The container's memory limit in bytes, or None outside a limited cgroup."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < UNLIMITED_ABOVE:
            return int(text)
        return None
    return None


def resident_bytes() -> int:
    """This process's resident memory now (Linux), 0 where it cannot be read."""
    import os

    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Budget:
    """Bytes of answers held: replicas' answers being merged, merged answers being sent; None: unbounded.

    A fan-out reserves what its page took last time once it is let in to ask istiod (its first
    replica has room for it), before anything is sent: past the budget it is refused then, instead of
    after istiod has done the work; while it waits in a replica's line it holds nothing and counts
    nothing. A caller's own copy of the merged answer (gRPC copies what it sends, so a thousand
    callers of one fan-out hold a thousand copies while they are sent) waits for room, within its
    deadline. With nothing held a reservation is always let in: a budget smaller than one answer
    makes calls wait their turn, it never refuses them all.
    """

    limit: int | None
    used: int = 0
    #: The last peak of each kind of bytes held (a page class's fan-out, or its answer), what its next call reserves.
    estimates: dict[str, int] = field(default_factory=dict)
    #: Told (used, limit) after every change: the metrics' gauges.
    observer: Callable[[int, int | None], None] = lambda used, limit: None
    _freed: list[asyncio.Future[None]] = field(default_factory=list)

    def change(self, by: int) -> None:
        self.used += by
        self.observer(self.used, self.limit)
        if by < 0:
            freed, self._freed = self._freed, []
            for waiter in freed:
                if not waiter.done():
                    waiter.set_result(None)

    def hold(self, kind: str) -> Hold:
        """A share of the budget for one kind of bytes (`syncz fan-out`, `syncz answer`), counted once reserved."""
        return Hold(self, kind)

    def fits(self, size: int) -> bool:
        return self.limit is None or not self.used or self.used + size <= self.limit

    def full(self) -> Overloaded:
        return Overloaded(
            f"answers in flight hold {self.used // 2**20} MiB of the {(self.limit or 0) // 2**20} MiB budget (--max-memory)", "memory"
        )

    async def room(self, size: int, timeout: float) -> None:
        """Until `size` more bytes fit; Overloaded when they do not within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while not self.fits(size):
            waiter: asyncio.Future[None] = loop.create_future()
            self._freed.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, give_up - loop.time()))
            except asyncio.TimeoutError:
                raise self.full() from None


@dataclass
class Hold:
    """One call's share of the budget: nothing until reserved, then its estimate until its answers arrive, then what it holds."""

    budget: Budget
    kind: str
    counted: int = 0
    peak: int = 0
    reserved: bool = False
    released: bool = False

    @property
    def estimate(self) -> int:
        return self.budget.estimates.get(self.kind, FIRST_ESTIMATE_BYTES)

    def reserve(self) -> None:
        """Count this share's estimate now, or raise Overloaded when it does not fit (once; later calls do nothing)."""
        if self.reserved or self.released:
            return
        if not self.budget.fits(self.estimate):
            raise self.budget.full()
        self.reserved = True
        self._count(self.estimate)

    def holding(self, size: int) -> None:
        """The call now holds `size` bytes (answers received, or the merged answer)."""
        if self.released:
            return
        self.reserved = True
        self.peak = max(self.peak, size)
        self._count(size)

    def _count(self, size: int) -> None:
        self.budget.change(size - self.counted)
        self.counted = size

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.budget.change(-self.counted)
            if self.peak:
                self.budget.estimates[self.kind] = self.peak


class ReplicaQueue:
    """At most `limit` of our requests at one replica at a time; the rest wait in line, first come first served."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.busy = 0
        #: How long this replica takes to answer lately (seconds, a moving average): a turn is of use only that long before a deadline.
        self.typical = 0.0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiting if not waiter.done())

    def answered_in(self, seconds: float) -> None:
        self.typical = seconds if not self.typical else 0.8 * self.typical + 0.2 * seconds

    async def enter(self, replica: str, wait_seconds: float, deadline: float | None = None) -> None:
        """Take a place at the replica, or raise Overloaded when none frees up within `wait_seconds`, or the place
        comes too late for the replica to answer by `deadline` (the caller's, in the loop's time)."""
        if self.limit is None or (self.busy < self.limit and not self.waiting):
            self.busy += 1
            return
        loop = asyncio.get_running_loop()
        if deadline is not None:
            wait_seconds = min(wait_seconds, deadline - loop.time() - self.typical)
        expected = (self.waiting // self.limit + 1) * self.typical  # the places ahead, `limit` answered at a time
        if expected > wait_seconds:
            raise Overloaded(
                f"istiod {replica} has {self.waiting} of our requests waiting for it (--istiod-max-in-flight {self.limit}, "
                f"{self.typical:.1f} s each): this call's turn would come after the {max(0.0, wait_seconds):.1f} s it could wait",
                "queue",
            )
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(turn, max(0.0, wait_seconds))
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed a place just as the caller went away: pass it on
            raise
        except asyncio.TimeoutError:
            raise Overloaded(
                f"istiod {replica} stayed busy with {self.busy} of our requests (--istiod-max-in-flight) for the "
                f"{wait_seconds:.1f} s this call could wait",
                "queue",
            ) from None
        if deadline is not None and loop.time() + self.typical > deadline:
            self.leave()
            raise Overloaded(
                f"istiod {replica} answers in {self.typical:.1f} s and had room for this call too late for its deadline", "queue"
            )

    def leave(self) -> None:
        """Hand the place to the first caller still waiting, or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy -= 1
