"""What every session mode does, written down: open a local address that reaches every istiod, report why a tunnel fails, close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class SessionMode(Protocol):
    def open(self, deadline: float) -> str:
        """Make what the mode needs and return the local HOST:PORT of an aggregator; `deadline` is monotonic."""
        ...

    def tunnel_error(self) -> str:
        """Why the last connection through the tunnel failed ("" if it did not): errors name the real cause."""
        ...

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Remove everything `open` made, whatever state it reached; returns "Kind/name" of what was removed."""
        ...
