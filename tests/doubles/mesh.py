"""FakeIstiod replicas plus an aggregator over them, asked as istioctl asks: shared by the aggregator test modules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from envoy.service.status.v3 import csds_pb2

from kubectl_istio_remote.aggregator.client import Connection, Replies, ask
from kubectl_istio_remote.aggregator.discovery import StaticTargets
from kubectl_istio_remote.aggregator.server import Aggregator
from kubectl_istio_remote.aggregator.serving import Settings
from kubectl_istio_remote.istio import istiod_authority
from kubectl_istio_remote.relay import Target, TcpDialer
from tests.doubles.istiod import CONFIG_DUMP, SYNCZ, FakeIstiod

NAMESPACE = "external-istiod"
AUTHORITY = istiod_authority(NAMESPACE)
TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-token-payload.sig"


def syncz(*names: str) -> DiscoveryRequest:
    request = DiscoveryRequest(type_url=SYNCZ, resource_names=names)
    request.node.id = "sidecar~10.1.2.3~istioctl.external-istiod~external-istiod.svc.cluster.local"
    request.node.metadata.update({"NAMESPACE": NAMESPACE, "SERVICE_ACCOUNT": "default", "GENERATOR": "event"})
    return request


def config_dump(proxy: str) -> DiscoveryRequest:
    request = syncz()
    request.type_url, request.resource_names[:] = CONFIG_DUMP, [proxy]
    return request


def proxy_ids(replies: Replies) -> list[str]:
    ids = []
    for resource in replies.responses[0].resources:
        config = csds_pb2.ClientConfig()
        assert resource.Unpack(config)
        ids.append(config.node.id)
    return ids


def replicas(count: int, proxies_each: int = 2, **overrides) -> list[FakeIstiod]:
    return [FakeIstiod(f"istiod-{i}", [f"app-{i}-{p}.sample" for p in range(proxies_each)], **overrides) for i in range(count)]


class Mesh:
    """Fake replicas plus an aggregator over them, and a way to ask it as istioctl would."""

    def __init__(self, istiods: Sequence[FakeIstiod], settings: Settings, dead_addresses: Sequence[str] = ()) -> None:
        self.istiods = list(istiods)
        self.settings = settings
        self.dead_addresses = list(dead_addresses)
        self.aggregator: Aggregator | None = None
        self.connection: Connection | None = None

    async def start(self) -> None:
        for istiod in self.istiods:
            await istiod.start()
        targets = [Target(i.name, *split_address(i.address), AUTHORITY) for i in self.istiods]
        targets += [Target(f"dead-{n}", *split_address(a), AUTHORITY) for n, a in enumerate(self.dead_addresses)]
        self.aggregator = Aggregator(self.settings, StaticTargets(targets), TcpDialer())
        address = await self.aggregator.start()
        pair = self.settings.serving_pair
        # A certificate from files (rotated under the server) is taken unverified here, as istioctl takes it.
        secure = pair is not None or self.settings.serving_files is not None
        self.connection = Connection(address, tls=secure, root_certificates=pair[1] if pair else None, token=TOKEN)

    async def stop(self) -> None:
        if self.aggregator:
            await self.aggregator.stop(0)
        for istiod in self.istiods:
            await istiod.stop()

    async def ask(self, *requests: DiscoveryRequest, token: str | None = TOKEN, cluster_id: str = "", timeout: float = 30) -> Replies:
        assert self.connection is not None
        connection = dataclasses.replace(self.connection, token=token, cluster_id=cluster_id)
        return await ask(connection, requests, timeout=timeout)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def free_dead_address() -> str:
    import portpicker

    return f"127.0.0.1:{portpicker.pick_unused_port()}"
