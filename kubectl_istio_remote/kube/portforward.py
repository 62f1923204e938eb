"""A Dialer whose byte streams are Kubernetes port-forwards: how a laptop reaches a pod."""

from __future__ import annotations

import asyncio

from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.relay import Target


class PortForwardDialer:
    """Opens a port-forward stream to the target pod per connection (one stream per accepted connection)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    async def open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        forward = await asyncio.to_thread(self._cluster.port_forward, target.namespace, target.name, target.port)
        # The client joins a socketpair to the websocket; its other end is an ordinary socket.
        return await asyncio.open_connection(sock=forward.socket(target.port)._socket)
