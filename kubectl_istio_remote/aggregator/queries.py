"""istioctl's requests, sent by us through an aggregator: what the native commands ask when istioctl does not run."""

from __future__ import annotations

import dataclasses

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from kubectl_istio_remote.aggregator.client import Connection, Replies, ask
from kubectl_istio_remote.aggregator.loop import run
from kubectl_istio_remote.errors import UnavailableError
from kubectl_istio_remote.istio import CONTROL_PLANE_ID, DEBUG_TYPE, SYNCZ_TYPE, TOKEN_SERVICE_ACCOUNT
from kubectl_istio_remote.native.render import proxy_statuses
from kubectl_istio_remote.native.syncz import Syncz

#: Past the call's own deadline, the loop's answer is waited for this much longer (the call ends itself first).
RUN_MARGIN_SECONDS = 5.0


def syncz_request(istio_namespace: str) -> DiscoveryRequest:
    """The request istioctl sends, with the node istiod matches against the token's namespace and account."""
    request = DiscoveryRequest(type_url=SYNCZ_TYPE)
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


def debug_request(istio_namespace: str, page: str) -> DiscoveryRequest:
    """`istioctl x internal-debug PAGE`'s request."""
    request = syncz_request(istio_namespace)
    request.type_url, request.resource_names[:] = DEBUG_TYPE, [page]
    return request


def ask_once(connection: Connection, token: str, request: DiscoveryRequest, timeout: float) -> Replies:
    """One request through the aggregator, as istioctl sends it; an aggregator-level refusal is one line."""
    try:
        return run(ask(dataclasses.replace(connection, token=token), [request], timeout), timeout + RUN_MARGIN_SECONDS)
    except grpc.aio.AioRpcError as error:
        hint = ""
        if error.code() is grpc.StatusCode.UNAUTHENTICATED:
            reviewed = f"Istio cluster {connection.cluster_id}" if connection.cluster_id else "its config cluster"
            hint = f"; istiod reviewed the token in {reviewed}: set --cluster-id to the mesh cluster's (its remote secret's name)"
        raise UnavailableError(f"istiod answered {error.code().name}: {error.details()}{hint}") from None


def fetch(connection: Connection, token: str, istio_namespace: str, proxy: str | None, timeout: float) -> Syncz:
    """Every proxy's status, or one proxy's: istiod's syncz ignores resource names (statusgen's debugSyncz), so every
    replica is asked for all it holds and the one is picked here."""
    replies = ask_once(connection, token, syncz_request(istio_namespace), timeout)
    statuses = proxy_statuses(replies.responses[0], replies.sources, fallback_istiod=CONTROL_PLANE_ID)
    if proxy is not None:
        statuses = [status for status in statuses if status.name == proxy]
    return Syncz(statuses, replies.failed, replies.identities, replies.sources, connection.cluster_id)
