"""--native: ask the aggregator ourselves, as istioctl would, when istioctl is not wanted or not installed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.istio import CONTROL_PLANE_ID
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.concurrent import in_background
from kubectl_istio_remote.kube.kinds import SERVICE_ACCOUNT
from kubectl_istio_remote.permissions import TOKEN_SERVICE_ACCOUNT
from kubectl_istio_remote.render import ProxyStatus, proxy_statuses

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection, Replies

SYNCZ = "istio.io/debug/syncz"
DEBUG_TYPE = "istio.io/debug"
TOKEN_AUDIENCE = "istio-ca"
TOKEN_SECONDS = 3600


def istioctl_token(mesh: Cluster, istio_namespace: str) -> str:
    """A TokenRequest token exactly like istioctl's, from the mesh cluster (istiod reviews it there)."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [TOKEN_AUDIENCE], "expirationSeconds": TOKEN_SECONDS},
    }
    answer = mesh.create(SERVICE_ACCOUNT, istio_namespace, request, name=TOKEN_SERVICE_ACCOUNT, subresource="token")
    return str((answer.get("status") or {}).get("token", ""))


def istioctl_token_soon(mesh: Cluster, istio_namespace: str) -> Callable[[], str]:
    """Ask for the token now, in the background; call the result to have it (or its error)."""
    return in_background(functools.partial(istioctl_token, mesh, istio_namespace))


def syncz_request(istio_namespace: str, proxy: str | None) -> DiscoveryRequest:
    """The request istioctl sends, with the node istiod matches against the token's namespace and account."""
    request = DiscoveryRequest(type_url=SYNCZ, resource_names=[proxy] if proxy else [])
    request.node.id = f"sidecar~127.0.0.1~kubectl-istio-remote.{istio_namespace}~{istio_namespace}.svc.cluster.local"
    request.node.metadata.update(
        {
            "GENERATOR": "event",
            "SERVICE_ACCOUNT": TOKEN_SERVICE_ACCOUNT,
            "NAMESPACE": istio_namespace,
            "ISTIO_VERSION": "65536.65536.65536",
        }
    )
    return request


@dataclass(frozen=True)
class Syncz:
    """Every proxy's sync status (or one proxy's), the replicas that did not answer, and what those that did run."""

    statuses: list[ProxyStatus]
    failed: list[str]
    #: Each answering replica's control-plane identifier, by replica name.
    identities: dict[str, str]
    #: (replica, proxies it holds), in merge order.
    sources: list[tuple[str, int]]


def ask_once(connection: Connection, token: str, request: DiscoveryRequest, timeout: float) -> Replies:
    """One request through the aggregator, as istioctl sends it; an aggregator-level refusal is one line."""
    import dataclasses

    import grpc

    from kubectl_istio_remote.aggregator.client import ask

    try:
        return asyncio.run(ask(dataclasses.replace(connection, token=token), [request], timeout))
    except grpc.aio.AioRpcError as error:
        raise UnavailableError(f"istiod answered {error.code().name}: {error.details()}") from None


def fetch(connection: Connection, token: str, istio_namespace: str, proxy: str | None, timeout: float) -> Syncz:
    replies = ask_once(connection, token, syncz_request(istio_namespace, proxy), timeout)
    statuses = proxy_statuses(replies.responses[0], replies.sources, fallback_istiod=CONTROL_PLANE_ID)
    return Syncz(statuses, replies.failed, replies.identities, replies.sources)


def debug_request(istio_namespace: str, page: str) -> DiscoveryRequest:
    """`istioctl x internal-debug PAGE`'s request."""
    request = syncz_request(istio_namespace, None)
    request.type_url, request.resource_names[:] = DEBUG_TYPE, [page]
    return request
