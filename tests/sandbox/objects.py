"""The Kubernetes objects the sandbox writes into its clusters, built alike for every cluster."""

from __future__ import annotations

from kubernetes import client

from tests.sandbox import procs
from tests.sandbox.clusters import api

ISTIO_NAMESPACE = "external-istiod"
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1337,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
    "readOnlyRootFilesystem": True,
}


def namespace_manifest(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def service_account_manifest(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def pod_manifest(name: str, namespace: str, labels: dict[str, str], service_account: str, image: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serviceAccountName": service_account,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": labels["app"], "image": image, "securityContext": RESTRICTED}],
        },
    }


def port_forward(name: str, namespace: str, address: str, ports: tuple[int, ...], owner_uid: str | None = None) -> dict:
    """kwok's PortForward: port-forward to this pod reaches `address` on the same port."""
    owners = [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": owner_uid}] if owner_uid else []
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": owners},
        "spec": {"forwards": [{"ports": [port], "target": {"port": port, "address": address}} for port in ports]},
    }


def wait_pod_ip(context: str, namespace: str, name: str) -> str:
    found: dict[str, str] = {}

    def running() -> bool:
        with api(context) as api_client:
            pod = client.CoreV1Api(api_client).read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running" and pod.status.pod_ip:
            found["ip"] = pod.status.pod_ip
            return True
        return False

    procs.wait_until(f"pod {namespace}/{name} in {context} to run", running, 60)
    return found["ip"]
