"""A protocol-level stand-in for one istiod replica: real ADS/CSDS protos, scripted behaviour.

It answers the debug requests istioctl sends (syncz, config_dump, istio.io/debug) the way
istiod's status and debug generators do, and keeps each stream open after answering, as istiod
does. Fast aggregator tests use it; the real pilot-discovery is exercised by the sandbox tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from envoy.admin.v3 import config_dump_shared_pb2 as config_dump_pb2
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2

SYNCZ = "istio.io/debug/syncz"
CONFIG_DUMP = "istio.io/debug/config_dump"
DEBUG = "istio.io/debug"
NOT_CONNECTED = "Proxy not connected to this Pilot instance. It may be connected to another instance.\n"
XDS_TYPES = (
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
)


@dataclass
class FakeIstiod:
    """One replica. `behaviour`: answer, hang (accept, never answer), garbage (undecodable bytes), refuse."""

    name: str
    proxies: list[str] = field(default_factory=list)
    version: str = "1.30.3"
    delay: float = 0.0
    behaviour: str = "answer"
    #: (key PEM, certificate PEM) to serve TLS, as istiod does on 15012; None serves plaintext.
    serving_pair: tuple[bytes, bytes] | None = None
    #: When set, answers wait until it is: a test can then have every stream in flight at once.
    gate: asyncio.Event | None = None
    #: Answers prepared at once, as a busy istiod's few cores allow (None: any number); the others wait their turn.
    concurrency: int | None = None
    #: The most requests this replica held at once (answering or waiting to): what the aggregator let through.
    most_in_flight: int = 0
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    seen_requests: list[DiscoveryRequest] = field(default_factory=list)
    #: What `configz` answers: the same on every replica unless a test makes one differ.
    configz: list[dict[str, str]] = field(default_factory=lambda: [{"kind": "VirtualService", "name": "reviews"}])
    #: Streams open to this replica now: shows when the aggregator closes them.
    open_streams: int = 0
    address: str = ""
    _server: grpc.aio.Server | None = None
    _syncz_bytes: bytes = b""
    _in_flight: int = 0
    _turns: asyncio.Semaphore | None = None

    async def start(self, port: int = 0) -> str:
        server = grpc.aio.server(options=[("grpc.max_send_message_length", 1 << 30)])
        handler = grpc.stream_stream_rpc_method_handler(
            self._stream, request_deserializer=DiscoveryRequest.FromString, response_serializer=bytes
        )
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "envoy.service.discovery.v3.AggregatedDiscoveryService", {"StreamAggregatedResources": handler}
                )
            ]
        )
        listen = f"127.0.0.1:{port}"
        if self.serving_pair:
            bound = server.add_secure_port(listen, grpc.ssl_server_credentials([self.serving_pair]))
        else:
            bound = server.add_insecure_port(listen)
        await server.start()
        self._server = server
        self.address = f"127.0.0.1:{bound}"
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)

    @property
    def identifier(self) -> str:
        info = {"version": self.version, "revision": f"rev-{self.version}", "status": "Clean", "tag": self.version}
        return json.dumps({"Component": "istiod", "ID": self.name, "Info": info})

    async def _stream(self, requests: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self.seen_metadata.append(dict(context.invocation_metadata()))
        self.open_streams += 1
        try:
            async for request in requests:
                self.seen_requests.append(request)
                if self.behaviour == "refuse":
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication required")
                if self.behaviour == "hang":
                    await asyncio.sleep(3600)
                self._in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self._in_flight)
                try:
                    await self._prepare()
                finally:
                    self._in_flight -= 1
                if self.behaviour == "garbage":
                    yield b"\xff\xff\xff\xff not a DiscoveryResponse"
                    continue
                yield self._serialized(request)
        finally:
            self.open_streams -= 1

    async def _prepare(self) -> None:
        """The time an answer takes: after the gate, `delay` seconds, `concurrency` answers at a time."""
        if self.gate is not None:
            await self.gate.wait()
        if self.concurrency is None:
            await asyncio.sleep(self.delay)
            return
        if self._turns is None:
            self._turns = asyncio.Semaphore(self.concurrency)
        async with self._turns:
            await asyncio.sleep(self.delay)

    def _serialized(self, request: DiscoveryRequest) -> bytes:
        """Full syncz answers are built once: large fakes should cost the aggregator, not themselves."""
        if request.type_url != SYNCZ:
            return self.respond(request).SerializeToString()
        if not self._syncz_bytes:
            self._syncz_bytes = self.respond(request).SerializeToString()
        return self._syncz_bytes

    def respond(self, request: DiscoveryRequest) -> DiscoveryResponse:
        response = DiscoveryResponse(type_url=request.type_url, version_info=self.name, nonce=f"{self.name}-nonce")
        names = list(request.resource_names)
        if request.type_url == SYNCZ:  # names are ignored, as istiod's debugSyncz ignores them
            response.resources.extend(_packed(self.client_config(proxy)) for proxy in self.proxies)
            response.control_plane.identifier = self.identifier
        elif request.type_url == CONFIG_DUMP and len(names) == 1 and names[0] in self.proxies:
            response.resources.append(_packed(config_dump_pb2.ClustersConfigDump(version_info=f"{self.name}/{names[0]}")))
        elif request.type_url == DEBUG and names:
            page = self._debug_page(names[0], request.node.id.split("~")[2] if request.node.id.count("~") == 3 else "")
            response.resources.append(any_pb2.Any(type_url=DEBUG, value=page.encode()))
        return response

    def _debug_page(self, name: str, requester: str) -> str:
        """The HTTP-style pages in the shapes istiod writes (pilot/pkg/xds/debug.go); `requester` is the asking
        connection's proxy ID, which istiod lists among its clients like any other."""
        page, _, query = name.partition("?")
        _, _, proxy = query.partition("proxyID=")
        if proxy:
            return json.dumps({"istiod": self.name, "proxy": proxy}) if proxy in self.proxies else NOT_CONNECTED
        clients = [*self.proxies, requester]
        if page == "syncz":
            return json.dumps([{"proxy": proxy, "cluster_id": "remote", "istio_version": self.version} for proxy in clients])
        if page in ("adsz", "connections"):
            if "push=true" in query:
                return f"Pushed to {len(clients)} servers\n"
            entries = [{"connectionId": f"{proxy}-{index}", "address": "127.0.0.1:1"} for index, proxy in enumerate(clients)]
            return json.dumps({"totalClients": len(entries), "clients": entries})
        if page == "configz":
            return json.dumps(self.configz)
        if page == "nosuchpage":
            return "404 page not found\n"
        return json.dumps({"page": name})

    def client_config(self, proxy: str) -> csds_pb2.ClientConfig:
        config = csds_pb2.ClientConfig()
        config.node.id = proxy
        config.node.metadata.update({"CLUSTER_ID": "remote", "NAMESPACE": proxy.rpartition(".")[2], "ISTIO_VERSION": self.version})
        for type_url in XDS_TYPES:
            config.generic_xds_configs.add(type_url=type_url, config_status=csds_pb2.SYNCED)
        return config


def _packed(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def _serve_until_terminated(istiod: FakeIstiod) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {await istiod.start()}", flush=True)
    await stop.wait()
    await istiod.stop()


def main() -> None:
    """`python -m tests.doubles.istiod`: one stand-in replica as a process (the benchmarks run them so)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.doubles.istiod", description=main.__doc__)
    parser.add_argument("--name", default="istiod-0")
    parser.add_argument("--groups", type=int, nargs="+", default=[0], help="proxies are named app-GROUP-N.sample")
    parser.add_argument("--proxies", type=int, default=2, help="proxies per group")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--concurrency", type=int, default=None, help="answers prepared at once (default: any number)")
    args = parser.parse_args()
    proxies = [f"app-{group}-{index}.sample" for group in args.groups for index in range(args.proxies)]
    asyncio.run(_serve_until_terminated(FakeIstiod(args.name, proxies, delay=args.delay, concurrency=args.concurrency)))


if __name__ == "__main__":
    main()
