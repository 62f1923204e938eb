"""One declaration per Kubernetes kind the plugin creates, reads, reviews or deletes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def manifest(self, metadata: dict[str, Any], **body: Any) -> dict[str, Any]:
        """An object of this kind, as written to a cluster or printed for `kubectl apply`."""
        return {"apiVersion": self.api_version, "kind": self.name, "metadata": metadata, **body}

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """The REST path of the collection, or of one object (and its subresource)."""
        parts = ["/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


POD = Kind("Pod", "pods")
SERVICE_ACCOUNT = Kind("ServiceAccount", "serviceaccounts")
ROLE = Kind("Role", "roles", RBAC_GROUP)
ROLE_BINDING = Kind("RoleBinding", "rolebindings", RBAC_GROUP)
CONFIG_MAP = Kind("ConfigMap", "configmaps")
NAMESPACE = Kind("Namespace", "namespaces", namespaced=False)
MUTATING_WEBHOOK_CONFIGURATION = Kind(
    "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", namespaced=False
)
SELF_SUBJECT_ACCESS_REVIEW = Kind("SelfSubjectAccessReview", "selfsubjectaccessreviews", "authorization.k8s.io", namespaced=False)
SERVICE = Kind("Service", "services")
DEPLOYMENT = Kind("Deployment", "deployments", "apps")
POD_DISRUPTION_BUDGET = Kind("PodDisruptionBudget", "poddisruptionbudgets", "policy")
NETWORK_POLICY = Kind("NetworkPolicy", "networkpolicies", "networking.k8s.io")
CERTIFICATE = Kind("Certificate", "certificates", "cert-manager.io")
SERVICE_MONITOR = Kind("ServiceMonitor", "servicemonitors", "monitoring.coreos.com")
GATEWAY = Kind("Gateway", "gateways", "networking.istio.io")
VIRTUAL_SERVICE = Kind("VirtualService", "virtualservices", "networking.istio.io")
SELF_SUBJECT_REVIEW = Kind("SelfSubjectReview", "selfsubjectreviews", "authentication.k8s.io", namespaced=False)

#: What a pod-mode session creates, dependents first: the order in which teardown and cleanup delete.
SESSION_KINDS = (POD, ROLE_BINDING, ROLE, SERVICE_ACCOUNT)
BY_NAME = {kind.name: kind for kind in SESSION_KINDS}
