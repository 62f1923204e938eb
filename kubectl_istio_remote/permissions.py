"""Which RBAC rights a session needs, checked with SelfSubjectAccessReview before anything is created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubernetes import client

from kubectl_istio_remote.kube import Cluster, ForbiddenError, explain

if TYPE_CHECKING:
    from kubectl_istio_remote.istioctl import Istioctl


@dataclass(frozen=True)
class Need:
    cluster: Cluster
    verb: str
    resource: str
    namespace: str
    group: str = ""
    name: str = ""

    @property
    def description(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.resource}{named} {where} ({self.cluster.context})"


def needs(mode: str, mesh: Cluster, external: Cluster, istio_namespace: str, *, istioctl: Istioctl | None = None) -> list[Need]:
    """Pod mode creates four objects and tunnels to the pod; local mode tunnels to each istiod. Both read istiod pods.

    `istioctl`, the one that will run (None: native output): 1.28+ also watches MutatingWebhookConfigurations
    of the mesh cluster to find the default revision.
    """
    ns = istio_namespace
    common = [Need(external, verb, "pods", ns) for verb in ("get", "list", "watch")]
    # kubectl's port-forward is authorized as `create`, the websocket one of the kubernetes client we use as `get`.
    common += [Need(external, verb, "pods/portforward", ns) for verb in ("get", "create")]
    common += [Need(mesh, "create", "serviceaccounts/token", ns, name="default")]
    if istioctl is not None and istioctl.watches_webhooks:
        common += [Need(mesh, verb, "mutatingwebhookconfigurations", "", "admissionregistration.k8s.io") for verb in ("list", "watch")]
    if mode == "local":
        return common
    pod_mode = [Need(external, verb, "pods", ns) for verb in ("create", "delete")]
    pod_mode += [Need(external, verb, "serviceaccounts", ns) for verb in ("create", "patch", "delete")]
    for resource in ("roles", "rolebindings"):
        pod_mode += [Need(external, verb, resource, ns, "rbac.authorization.k8s.io") for verb in ("create", "patch", "delete")]
    return common + pod_mode


def allowed(need: Need) -> bool:
    resource, _, subresource = need.resource.partition("/")
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=need.namespace,
                verb=need.verb,
                group=need.group,
                resource=resource,
                subresource=subresource or None,
                name=need.name or None,
            )
        )
    )
    try:
        return bool(need.cluster.authorization.create_self_subject_access_review(review).status.allowed)
    except Exception as error:  # noqa: BLE001 - explained with the context and verb
        raise explain(error, need.cluster, "create", "selfsubjectaccessreviews") from None


def require(required: list[Need]) -> None:
    """Refuse to start, naming every missing right, rather than half-create objects and fail."""
    missing = [need for need in required if not allowed(need)]
    if missing:
        raise ForbiddenError(
            "missing RBAC rights: " + "; ".join(need.description for need in missing),
            "ask your cluster admin for them (examples/rbac.yaml), or run `kubectl istio-remote doctor`",
        )
