"""The aggregator put together in one place, for `serve`, local mode and the tests' mesh of stand-ins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubectl_istio_remote.aggregator.discovery import PodDiscovery, StaticTargets, TargetSource
from kubectl_istio_remote.aggregator.server import Aggregator
from kubectl_istio_remote.aggregator.serving import Settings
from kubectl_istio_remote.errors import UsageError
from kubectl_istio_remote.istio import DEFAULT_NAMESPACE, ISTIOD_LABEL, ISTIOD_PORT, istiod_authority, istiod_selector
from kubectl_istio_remote.relay import Dialer, Target

if TYPE_CHECKING:
    from kubectl_istio_remote.kube.cluster import Cluster
    from kubectl_istio_remote.kube.records import Pod


@dataclass(frozen=True)
class Replicas:
    """Where the istiod replicas are: pods found by label in a namespace (followed by a watch), or fixed addresses."""

    namespace: str = DEFAULT_NAMESPACE
    revision: str = ""
    label: str = ISTIOD_LABEL
    port: int = ISTIOD_PORT
    #: HOST:PORT of istiods that are not pods (`serve --istiod-address`); pods are discovered when empty.
    addresses: tuple[str, ...] = ()

    @property
    def authority(self) -> str:
        return istiod_authority(self.namespace, self.revision)

    def source(self, cluster: Cluster | None, known: tuple[list[Pod], str] | None = None) -> TargetSource:
        """Fixed addresses, or discovery in `cluster`, starting from `known` pods (and their list's resourceVersion) when given."""
        if self.addresses:
            return StaticTargets(static_target(address, self.authority) for address in self.addresses)
        if cluster is None:
            raise ValueError("discovering istiod pods needs a cluster")
        selector = istiod_selector(self.revision, self.label)
        return PodDiscovery(cluster, self.namespace, selector, self.port, self.authority, known)


def self_signed_serving_pair(replicas: Replicas) -> tuple[bytes, bytes]:
    """A certificate made in memory for this run, valid for the names istioctl dials (localhost, istiod's name, 127.0.0.1)."""
    from kubectl_istio_remote.aggregator.tls import self_signed_pair

    return self_signed_pair(["localhost", replicas.authority], ["127.0.0.1"])


def assemble(
    settings: Settings, replicas: Replicas, dialer: Dialer, cluster: Cluster | None = None, known: tuple[list[Pod], str] | None = None
) -> Aggregator:
    return Aggregator(settings, replicas.source(cluster, known), dialer)


def static_target(address: str, authority: str) -> Target:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--istiod-address {address!r} is not HOST:PORT", "for example --istiod-address 10.0.0.7:15012")
    return Target(name=address, host=host.strip("[]"), port=int(port), authority=authority)
