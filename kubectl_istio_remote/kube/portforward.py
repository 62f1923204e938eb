"""A Dialer whose byte streams are Kubernetes port-forwards: how a laptop reaches a pod.

The API server's port-forward is a websocket (subprotocol v4.channel.k8s.io) whose binary frames
start with a channel byte: 0 carries the port's data, 1 its errors, and each channel's first frame
is the port number. A thread joins the websocket to one end of a socket pair; the dialer hands the
other end to asyncio as an ordinary stream, as the official client's PortForward does.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from kubectl_istio_remote.kube.api_errors import ApiError, UnreachableError, server_message
from kubectl_istio_remote.kube.cluster import CONNECT_SECONDS, Cluster
from kubectl_istio_remote.kube.kinds import POD
from kubectl_istio_remote.relay import Target

if TYPE_CHECKING:
    from websocket import WebSocket

log = logging.getLogger(__name__)
SUBPROTOCOLS = ["v4.channel.k8s.io"]
DATA, ERROR = 0, 1
CHUNK = 256 * 1024


class Tunnel:
    """One port-forward stream: `socket` is ours to read and write; closing it ends the websocket.

    What the API server says on the error channel (the pod does not listen on the port yet, say)
    is logged and kept in `error`: the stream then ends, and that is why.
    """

    def __init__(self, websocket: WebSocket, port: int, where: str = "") -> None:
        self.socket, inner = socket.socketpair()
        self._websocket = websocket
        self._where = where or f"port {port}"
        self.error = ""
        threading.Thread(target=self._pump, args=(inner,), name=f"port-forward {port}", daemon=True).start()

    def _pump(self, local: socket.socket) -> None:
        """Until both sides are done: frames to bytes one way, bytes to frames the other; what arrived is delivered first."""
        from websocket import ABNF, WebSocketException

        ws, seen = self._websocket, [False, False]
        remote = ws.sock
        assert remote is not None
        to_local, to_remote, local_open, remote_open = b"", b"", True, True
        try:
            while (local_open and (remote_open or to_local)) or (remote_open and to_remote):
                readers = ([local] if local_open else []) + ([remote] if remote_open else [])
                writers = ([local] if local_open and to_local else []) + ([remote] if remote_open and to_remote else [])
                readable, writable, _ = select.select(readers, writers, [])
                if remote_open and remote in readable:
                    while True:
                        opcode, frame = ws.recv_data_frame(True)
                        if opcode == ABNF.OPCODE_CLOSE:
                            remote_open = False
                            break
                        if opcode == ABNF.OPCODE_BINARY and frame.data and frame.data[0] in (DATA, ERROR):
                            channel, payload = frame.data[0], frame.data[1:]
                            if not seen[channel]:
                                seen[channel] = True  # the port number
                            elif channel == DATA:
                                to_local += payload
                            elif payload.strip():
                                self.error = " ".join(payload.decode(errors="replace").split())
                                log.info("port-forward to %s: %s", self._where, self.error)  # in the failure it causes, too
                        if not (isinstance(remote, ssl.SSLSocket) and remote.pending()):
                            break
                if local in readable:
                    data = local.recv(CHUNK)
                    if not data:
                        local_open = False
                    to_remote += ABNF.create_frame(bytes([DATA]) + data, ABNF.OPCODE_BINARY).format() if data else b""
                if local in writable:
                    to_local = to_local[local.send(to_local) :]
                if remote_open and remote in writable:
                    to_remote = to_remote[remote.send(to_remote) :]
        except (WebSocketException, OSError) as error:
            log.debug("port-forward ended: %s", error)
        finally:
            local.close()
            ws.close(timeout=1)


def open_tunnel(cluster: Cluster, namespace: str, pod: str, port: int) -> Tunnel:
    """A websocket port-forward of its own: nothing shared with other requests or other port-forwards."""
    from websocket import WebSocketBadStatusException, WebSocketException

    action = cluster.action("get", POD, namespace, pod, "portforward")
    path = POD.path(namespace, pod, "portforward")
    try:
        websocket = cluster.transport.websocket(path, [("ports", str(port))], SUBPROTOCOLS, CONNECT_SECONDS)
    except WebSocketBadStatusException as error:
        body = error.resp_body if isinstance(error.resp_body, bytes) else None
        raise ApiError(action, error.status_code, server_message(body, str(error.status_message or error))) from None
    except (WebSocketException, OSError) as error:
        raise UnreachableError(action, error) from None
    return Tunnel(websocket, port, f"pod {namespace}/{pod} port {port}")


class PortForwardDialer:
    """Opens a port-forward stream to the target pod per connection (one stream per accepted connection)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._tunnels: list[Tunnel] = []

    @property
    def last_error(self) -> str:
        """What the API server last said on a tunnel's error channel ("" when nothing)."""
        return next((tunnel.error for tunnel in reversed(self._tunnels) if tunnel.error), "")

    async def open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tunnel = await asyncio.to_thread(open_tunnel, self._cluster, target.namespace, target.name, target.port)
        self._tunnels = [*self._tunnels[-7:], tunnel]
        return await asyncio.open_connection(sock=tunnel.socket)
