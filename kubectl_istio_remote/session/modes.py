"""What every session mode does, written down: open a connection that reaches every istiod through a healthy aggregator, close."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection


class SessionMode(Protocol):
    def open(self, deadline: float) -> Connection:
        """Make what the mode needs and return how to reach its aggregator, once that answers SERVING; `deadline` is monotonic."""
        ...

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Remove everything `open` made, whatever state it reached; returns "Kind/name" of what was removed."""
        ...
