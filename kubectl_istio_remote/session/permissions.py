"""Which RBAC rights a session needs, checked with SelfSubjectAccessReview before anything is created."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubectl_istio_remote.concurrency import all_of
from kubectl_istio_remote.errors import ForbiddenError
from kubectl_istio_remote.istio import TOKEN_SERVICE_ACCOUNT
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import (
    MUTATING_WEBHOOK_CONFIGURATION,
    POD,
    ROLE,
    ROLE_BINDING,
    SELF_SUBJECT_ACCESS_REVIEW,
    SERVICE_ACCOUNT,
    Kind,
)
from kubectl_istio_remote.session.settings import Mode

if TYPE_CHECKING:
    from kubectl_istio_remote.istioctl import Istioctl


@dataclass(frozen=True)
class Need:
    cluster: Cluster
    verb: str
    kind: Kind
    namespace: str
    subresource: str = ""
    name: str = ""

    @property
    def resource(self) -> str:
        return f"{self.kind.plural}/{self.subresource}" if self.subresource else self.kind.plural

    @property
    def description(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.resource}{named} {where} ({self.cluster.context})"


def needs(mode: Mode, mesh: Cluster, external: Cluster, istio_namespace: str, *, istioctl: Istioctl | None = None) -> list[Need]:
    """Pod mode creates four objects and tunnels to the pod; local mode tunnels to each istiod. Both read istiod pods.
    Shared mode needs the control-plane cluster not at all: only the token istioctl asks for, in the mesh cluster.

    `istioctl`, the one that will run (None: native output): 1.28+ also watches MutatingWebhookConfigurations
    of the mesh cluster to find the default revision.
    """
    ns = istio_namespace
    mesh_side = [Need(mesh, "create", SERVICE_ACCOUNT, ns, "token", name=TOKEN_SERVICE_ACCOUNT)]
    if istioctl is not None and istioctl.watches_webhooks:
        mesh_side += [Need(mesh, verb, MUTATING_WEBHOOK_CONFIGURATION, "") for verb in ("list", "watch")]
    if mode is Mode.shared:
        return mesh_side
    common = [Need(external, verb, POD, ns) for verb in ("get", "list", "watch")]
    # kubectl's port-forward is authorized as `create`, the websocket one of the kubernetes client we use as `get`.
    common += [Need(external, verb, POD, ns, "portforward") for verb in ("get", "create")]
    common += mesh_side
    if mode is Mode.local:
        return common
    pod_mode = [Need(external, verb, POD, ns) for verb in ("create", "delete")]
    pod_mode += [Need(external, verb, kind, ns) for kind in (SERVICE_ACCOUNT, ROLE, ROLE_BINDING) for verb in ("create", "patch", "delete")]
    return common + pod_mode


def review_body(need: Need) -> dict[str, object]:
    """The SelfSubjectAccessReview that asks for `need`."""
    attributes = {"namespace": need.namespace, "verb": need.verb, "group": need.kind.group, "resource": need.kind.plural}
    attributes.update({key: value for key, value in (("subresource", need.subresource), ("name", need.name)) if value})
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": attributes}}


def allowed(need: Need) -> bool:
    review = need.cluster.create(SELF_SUBJECT_ACCESS_REVIEW, "", review_body(need))
    return bool((review.get("status") or {}).get("allowed"))


def check(required: Sequence[Need]) -> list[bool]:
    """Whether each right is granted, every review sent at once."""
    return all_of([functools.partial(allowed, need) for need in required])


def refuse_missing(required: Sequence[Need], granted: Sequence[bool]) -> None:
    """Refuse to start, naming every missing right, rather than half-create objects and fail."""
    missing = [need for need, ok in zip(required, granted, strict=True) if not ok]
    if missing:
        raise ForbiddenError(
            "missing RBAC rights: " + "; ".join(need.description for need in missing),
            "ask your cluster admin for them (examples/rbac.yaml), or run `kubectl istio-remote doctor`",
        )
