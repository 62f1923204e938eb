"""Signals as exceptions, so that teardown in `finally` blocks always runs."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that end a command: Ctrl-C, kill, and a closed terminal.
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal asked us to stop; BaseException so that every `finally` (teardown) still runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


#: Signals raised as Interrupted and not yet seen arriving where they are handled. Python runs a signal's handler
#: wherever the main thread is, and an exception raised inside a finalizer or a weakref callback it happens to be
#: running is printed and dropped: a waiting loop calls `raise_pending` so that a Ctrl-C is never lost.
_pending: list[int] = []


def raise_pending() -> None:
    """Raise again the Interrupted of a signal whose first one Python dropped; nothing when there is none."""
    if _pending:
        raise Interrupted(_pending[-1])


def arrived(error: BaseException) -> None:
    """An Interrupted reached the code that handles it: nothing is pending any more."""
    if isinstance(error, Interrupted):
        _pending.clear()


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread instead of killing us mid-way."""

    def interrupt(signum: int, _frame: object) -> None:
        _pending.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in HANDLED}
    try:
        yield
    finally:
        _pending.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """While tearing down, a second Ctrl-C must not cut the teardown short: note signals, act after."""
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _frame: received.append(signum)) for signum in HANDLED}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """A signal arriving inside is delivered as usual when the block ends: for a step that must not be cut in two.

    Thread.start() cut by a signal leaves the thread running but unknown to its owner (a ThreadPoolExecutor
    does not join it, and a create it runs lands after teardown's delete: the signal campaign found a
    RoleBinding left). Only the main thread receives signals; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with signals_deferred() as received:
        yield
    for signum in received:
        signal.raise_signal(signum)
