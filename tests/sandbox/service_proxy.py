"""A Service's virtual address for the sandbox, as kube-proxy gives one: each new connection to one ready endpoint.

The sandbox has no kube-proxy, and the API server refuses loopback addresses as ClusterIPs and as
endpoints, so this stands in for both: it follows the pods the Service selects and sends each
new connection to the next ready one, round robin. Ready means what the endpoints controller and
a kubelet's tcpSocket readiness probe together say: Running, Ready, not terminating, and the port
accepting. A connection already open stays with its pod, as with kube-proxy's conntrack: when the
pod goes, so does the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading

from kubernetes import client

from tests.sandbox.clusters import api

REFRESH_SECONDS = 0.3
PROBE_SECONDS = 0.3


def ready_addresses(context: str, namespace: str, service: str, port: int) -> list[str]:
    """The endpoints a Service would have now: pod IPs of ready, running, not terminating pods that accept on `port`."""
    with api(context) as api_client:
        core = client.CoreV1Api(api_client)
        selector = core.read_namespaced_service(service, namespace).spec.selector or {}
        pods = core.list_namespaced_pod(namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())).items
    candidates = [
        pod.status.pod_ip
        for pod in pods
        if pod.status.phase == "Running"
        and pod.status.pod_ip
        and pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    return [address for address in sorted(candidates) if _accepts(address, port)]


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


class ServiceProxy:
    """Listens on 127.0.0.1 (a free port) for the Service's `port`; `address` is what clients dial."""

    def __init__(self, context: str, namespace: str, service: str, port: int) -> None:
        self._target = (context, namespace, service, port)
        self._endpoints: list[str] = []
        self._next = itertools.count()
        self._stop = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.address = ""
        #: Connections sent to each endpoint, for the test's account of where calls went.
        self.sent: dict[str, int] = {}

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    def __enter__(self) -> ServiceProxy:
        self._endpoints = ready_addresses(*self._target)
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True),
            threading.Thread(target=self._refresh, name="service-endpoints", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._server = server
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop listening and end every connection still piped."""
        self._server.close()
        pipes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            with contextlib.suppress(Exception):  # an API server away for a moment: keep the last endpoints
                self._endpoints = ready_addresses(*self._target)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        endpoints = self._endpoints
        if not endpoints:
            writer.close()  # no endpoint: connection refused, as with a Service without ready pods
            return
        chosen = endpoints[next(self._next) % len(endpoints)]
        self.sent[chosen] = self.sent.get(chosen, 0) + 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(chosen, self._target[3])
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
