"""The token istioctl authenticates to istiod with, asked for exactly as istioctl asks: the native commands send it too."""

from __future__ import annotations

import functools
from collections.abc import Callable

from kubectl_istio_remote.concurrency import in_background
from kubectl_istio_remote.istio import TOKEN_SERVICE_ACCOUNT
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import SERVICE_ACCOUNT

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
