"""Waiting until the aggregator answers its health service through the tunnel."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.errors import DeadlineError

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection

CHECK_SECONDS = 5.0
PAUSE_SECONDS = 0.3


def left(deadline: float) -> float:
    """Seconds to `deadline` (monotonic), never less than half a second: a last attempt always gets a chance."""
    return max(0.5, deadline - time.monotonic())


def wait_healthy(io: LoopThread, connection: Connection, deadline: float, tunnel_error: Callable[[], str]) -> Connection:
    """Ask until it says SERVING. A failure names the tunnel's own reason when it has one (a forbidden
    port-forward, say), since the gRPC error seen through it only says the connection closed."""
    import grpc

    from kubectl_istio_remote.aggregator.client import check_health

    last = "no answer"
    while time.monotonic() < deadline:
        try:
            if io.run(check_health(connection, timeout=min(CHECK_SECONDS, left(deadline))), left(deadline) + 1):
                return connection
            last = "not serving yet"
        except grpc.RpcError as error:
            last = tunnel_error() or f"{error.code().name}: {error.details()}"
        except Exception as error:  # noqa: BLE001 - keep trying until the deadline, report the last reason
            text = str(error).strip()
            last = tunnel_error() or (text.splitlines()[0] if text else type(error).__name__)
        time.sleep(PAUSE_SECONDS)
    raise DeadlineError(
        f"the aggregator at {connection.address} was not healthy within --timeout: {last}", "raise --timeout, or retry with -v"
    )
