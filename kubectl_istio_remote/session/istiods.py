"""Finding istiod's pods in the external cluster, with an error that says where we looked."""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.kube.api_errors import ApiError
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import NAMESPACE, POD
from kubectl_istio_remote.kube.records import Pod, items
from kubectl_istio_remote.session.settings import SessionSettings


@dataclass(frozen=True)
class Istiods:
    pods: list[Pod]
    #: The list's resourceVersion: a watch from here misses no change (local mode's discovery starts from it).
    resource_version: str


def find_istiods(settings: SessionSettings) -> Istiods:
    """Running istiod pods; a clear error naming label, namespace and context if there are none."""
    external, namespace = settings.external, settings.istio_namespace
    listed = external.list_objects(POD, namespace, labels=settings.istiod_selector, fields="status.phase=Running")
    pods = [Pod.of(pod) for pod in items(listed)]
    if not pods:
        _require_namespace(external, namespace)
        raise UserError(
            f"no istiod found: no running pods with label {settings.istiod_selector} in namespace "
            f"{namespace} of context {external.context}",
            "set -i/--istio-namespace, --revision or --external-context",
        )
    return Istiods(pods, str((listed.get("metadata") or {}).get("resourceVersion", "")))


def _require_namespace(cluster: Cluster, namespace: str) -> None:
    """A mistyped -i is the usual reason for finding no istiod: say so when the namespace is missing."""
    try:
        cluster.read(NAMESPACE, "", namespace)
    except ApiError as error:
        if error.status == 404:
            raise UserError(
                f"namespace {namespace} does not exist in context {cluster.context}", "set -i/--istio-namespace to istiod's namespace"
            ) from None
        # Not allowed to read namespaces: the "no istiod found" message that follows still applies.
