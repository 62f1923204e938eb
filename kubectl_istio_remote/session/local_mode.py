"""Local mode: no pod and no image; the aggregator runs in this process and port-forwards to each istiod pod."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.session.health import left, wait_healthy
from kubectl_istio_remote.session.istiods import Istiods
from kubectl_istio_remote.session.settings import SessionSettings

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection
    from kubectl_istio_remote.aggregator.server import Aggregator


class LocalMode:
    def __init__(self, settings: SessionSettings, io: LoopThread, console: Console, istiods: Istiods) -> None:
        self._settings = settings
        self._istiods = istiods
        self._io = io
        self._console = console
        self._aggregator: Aggregator | None = None

    def open(self, deadline: float) -> Connection:
        from kubectl_istio_remote.aggregator.assembly import Replicas, assemble, self_signed_serving_pair
        from kubectl_istio_remote.aggregator.client import Connection
        from kubectl_istio_remote.aggregator.serving import Settings
        from kubectl_istio_remote.kube.portforward import PortForwardDialer
        from kubectl_istio_remote.relay import free_port

        settings = self._settings
        replicas = Replicas(settings.istio_namespace, settings.revision)
        serving = Settings(
            listen=f"127.0.0.1:{free_port()}",
            serving_pair=self_signed_serving_pair(replicas),
            istiod_timeout=settings.istiod_timeout,
            connect_ahead=True,
            allow_debug_changes=True,  # the user's own session, as in pod mode
            cluster_id=settings.cluster_id,
        )
        known = (self._istiods.pods, self._istiods.resource_version)
        self._aggregator = assemble(serving, replicas, PortForwardDialer(settings.external), settings.external, known)
        self._console.progress(f"port-forwarding to the istiods in {settings.istio_namespace} of context {settings.external.context}")
        address = self._io.run(self._aggregator.start(), left(deadline))
        # Tunnels to each istiod fail per replica; the aggregator reports those in its answers.
        return wait_healthy(self._io, Connection(address), deadline, lambda: "")

    def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
        """Nothing was created in a cluster: stopping the aggregator is all, and nothing waits on an API server."""
        if self._aggregator is not None:
            self._io.run(self._aggregator.stop(0), left(deadline))
        return []
