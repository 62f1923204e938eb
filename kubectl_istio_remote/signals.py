"""Signals as exceptions, so that teardown in `finally` blocks always runs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

#: The signals that end a command: Ctrl-C, kill, and a closed terminal.
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal asked us to stop; BaseException so that every `finally` (teardown) still runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_status = 128 + signum


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread instead of killing us mid-way."""

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in HANDLED}
    try:
        yield
    finally:
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
