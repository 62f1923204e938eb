"""The aggregator as a Kubernetes workload, shared by pod mode's short-lived pod and the operator's permanent install.

Both run `kubectl-istio_remote serve --discover` as a non-root numeric UID that passes the
`restricted` Pod Security Standard, and need exactly one right: reading istiod's pods.
"""

from __future__ import annotations

from typing import Any

AGGREGATOR_PORT = 15012
#: istiod's token-authenticated XDS port (secureGRPCAddr).
ISTIOD_PORT = 15012
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
        "ServiceAccount": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        "Role": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata, "rules": AGGREGATOR_RULES},
        "RoleBinding": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    }
