"""The aggregator as a Kubernetes workload, shared by pod mode's short-lived pod and the operator's permanent install.

Both run `kubectl-istio_remote serve --discover` as a non-root numeric UID that passes the
`restricted` Pod Security Standard, and need exactly one right: reading istiod's pods.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from kubectl_istio_remote.istio import ISTIOD_PORT
from kubectl_istio_remote.kube.kinds import POD, RBAC_GROUP, ROLE, ROLE_BINDING, SERVICE_ACCOUNT
from kubectl_istio_remote.kube.labels import EXPIRES_ANNOTATION, EXPIRES_FORMAT, MANAGED_BY, SESSION_LABEL, USER_LABEL, label_value

AGGREGATOR_PORT = ISTIOD_PORT
#: The image's non-root user (distroless "nonroot"); numeric so runAsNonRoot can be checked by the kubelet.
RUN_AS_USER = 65532
#: `serve --discover` lists and watches istiod pods; nothing else.
AGGREGATOR_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
NOT_MESHED = {"sidecar.istio.io/inject": "false"}

POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: Idle it needs little; one large config dump is held a few times over while merged (bench/RESULTS.md).
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}


def aggregator_container(image: str, pull_policy: str, args: list[str], **extra: Any) -> dict[str, Any]:
    """The one container; `extra` adds fields such as probes and volume mounts."""
    return {
        "name": "aggregator",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["kubectl-istio_remote"],
        "args": args,
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [{"name": "grpc", "containerPort": AGGREGATOR_PORT, "protocol": "TCP"}],
        "resources": RESOURCES,
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        **extra,
    }


def identity_objects(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The aggregator's ServiceAccount, its Role and their RoleBinding, all named and placed by `metadata`."""
    name, namespace = metadata["name"], metadata["namespace"]
    return {
        "ServiceAccount": SERVICE_ACCOUNT.manifest(metadata),
        "Role": ROLE.manifest(metadata, rules=AGGREGATOR_RULES),
        "RoleBinding": ROLE_BINDING.manifest(
            metadata,
            roleRef={"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        ),
    }


@dataclass(frozen=True)
class SessionPod:
    """Pod mode's aggregator: one session's pod, its identity, and how long it may live."""

    namespace: str
    session_id: str
    user: str
    ttl_seconds: int
    image: str
    pull_policy: str
    pull_secrets: tuple[str, ...]
    args: list[str]

    @property
    def name(self) -> str:
        return f"istio-remote-{self.session_id}"


def session_pod_objects(pod: SessionPod, now: datetime.datetime | None = None) -> dict[str, dict[str, Any]]:
    """The four objects of pod mode by kind, as API dicts. Pure, so the security settings are tested directly."""
    expires = (now or datetime.datetime.now(datetime.timezone.utc)) + datetime.timedelta(seconds=pod.ttl_seconds)
    metadata: dict[str, Any] = {
        "name": pod.name,
        "namespace": pod.namespace,
        "labels": {**MANAGED_BY, SESSION_LABEL: pod.session_id, USER_LABEL: label_value(pod.user)},
        "annotations": {EXPIRES_ANNOTATION: expires.strftime(EXPIRES_FORMAT)},
    }
    body = POD.manifest(
        {**metadata, "annotations": {**metadata["annotations"], **NOT_MESHED}},
        spec={
            "serviceAccountName": pod.name,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": pod.ttl_seconds,
            "terminationGracePeriodSeconds": 5,
            "enableServiceLinks": False,
            "imagePullSecrets": [{"name": secret} for secret in pod.pull_secrets],
            "securityContext": POD_SECURITY_CONTEXT,
            "containers": [aggregator_container(pod.image, pod.pull_policy, pod.args)],
        },
    )
    return {**identity_objects(metadata), "Pod": body}


def session_serve_args(istiod_timeout: float, revision: str, cluster_id: str, verbose: bool) -> list[str]:
    """`serve` as the session pod runs it: on the pod's own loopback, reachable by port-forward only; the
    user's own session passes on the debug pages that change istiod (a shared aggregator does not)."""
    args = [
        "serve",
        "--discover",
        "--listen",
        f"127.0.0.1:{AGGREGATOR_PORT}",
        "--istiod-timeout",
        str(istiod_timeout),
        "--allow-debug-changes",
    ]
    if revision:
        args += ["--revision", revision]
    if cluster_id:
        args += ["--cluster-id", cluster_id]
    return args + (["--verbose"] if verbose else [])
