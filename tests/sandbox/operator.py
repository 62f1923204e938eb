"""The mesh operator's work in the sandbox: the permanent install, its advertisement, and the mesh users' rights.

Done as an operator does it, with the plugin's `manifest` and the real kubectl: the install in
the external cluster serving a certificate of the operator's own CA, the advertisement
(`manifest --mesh`) in each mesh cluster, and examples/rbac.yaml's mesh-only bindings for
the limited user (`remote-limited`, `remote-2-limited`). The tests and `bench.network` (shared mode over a slow network) use it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from kubectl_istio_remote.deploy.install import NAME
from kubectl_istio_remote.deploy.workload import AGGREGATOR_PORT
from tests.sandbox import containers
from tests.sandbox.clusters import KUBECONFIG, LIMITED_USER, apply
from tests.sandbox.mesh_clusters import CONFIG_CLUSTER, MESH_CLUSTERS, MeshCluster
from tests.sandbox.objects import ISTIO_NAMESPACE
from tests.sandbox.pki import Authority
from tests.sandbox.procs import port_open

READY_SECONDS = 90
EXAMPLE_RBAC = Path(__file__).resolve().parents[2] / "examples" / "rbac.yaml"
ADVERTISEMENT = "istio-remote-aggregator"


def kubectl(context: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The sandbox's kubectl in the istio namespace of `context`."""
    from tests.sandbox import build

    argv = [build.binary("kubectl"), "--kubeconfig", str(KUBECONFIG), "--context", context, "-n", ISTIO_NAMESPACE, *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)


def plugin(*args: str) -> str:
    """`kubectl istio-remote ARGS` as the operator runs it; its stdout."""
    printed = subprocess.run([sys.executable, "-m", "kubectl_istio_remote", *args], capture_output=True, text=True, timeout=60, check=False)
    if printed.returncode != 0:
        raise RuntimeError(f"kubectl istio-remote {' '.join(args)} failed: {printed.stderr.strip()}")
    return printed.stdout


def checked(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(result.args[5:8])} failed: {result.stderr.strip()}")
    return result


def ready_endpoints() -> list[str]:
    """The ready pod IPs the install's Service selects, resolved as the EndpointSlice controller would: the API
    server refuses loopback addresses as endpoints, and every sandbox pod IP is one."""
    service = json.loads(checked(kubectl("external", "get", "service", NAME, "-o", "json")).stdout)
    selector = ",".join(f"{key}={value}" for key, value in service["spec"]["selector"].items())
    listed = json.loads(checked(kubectl("external", "get", "pods", "-l", selector, "-o", "json")).stdout)
    return [
        pod["status"]["podIP"]
        for pod in listed["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])) and pod["status"].get("podIP")
    ]


def wait_serving(replicas: int) -> list[str]:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        addresses = ready_endpoints()
        if len(addresses) == replicas and all(port_open(address, AGGREGATOR_PORT) for address in addresses):
            return addresses
        time.sleep(1)
    raise RuntimeError(f"{NAME} not serving on {replicas} endpoints within {READY_SECONDS} s: {ready_endpoints()}")


@dataclass(frozen=True)
class Installed:
    #: The operator's CA, which signs the serving certificate (and a renewal).
    authority: Authority
    #: The name the serving certificate is issued for (the Service's).
    server_name: str
    #: HOST:PORT of each serving pod.
    pods: list[str]


@contextlib.contextmanager
def permanent_install(directory: Path) -> Iterator[Installed]:
    """`manifest` applied to the external cluster with a certificate of a new CA, its 2 pods serving; removed afterwards."""
    authority = Authority(directory)
    server_name = f"{NAME}.{ISTIO_NAMESPACE}.svc"
    certificate, key = authority.issue("aggregator", server_name, server=True, dns_names=(server_name,))
    install = plugin("manifest", "-n", ISTIO_NAMESPACE)
    try:
        checked(kubectl("external", "create", "secret", "tls", f"{NAME}-tls", f"--cert={certificate}", f"--key={key}"))
        checked(kubectl("external", "apply", "-f", "-", stdin=install))
        checked(kubectl("external", "rollout", "status", f"deployment/{NAME}", f"--timeout={READY_SECONDS}s"))
        yield Installed(authority, server_name, [f"{address}:{AGGREGATOR_PORT}" for address in wait_serving(replicas=2)])
    finally:
        serving = ready_endpoints()
        kubectl("external", "delete", "--cascade=foreground", "--wait=true", "-f", "-", stdin=install)
        kubectl("external", "delete", "secret", f"{NAME}-tls", "--ignore-not-found")
        wait_stopped(serving)


def wait_stopped(addresses: list[str]) -> None:
    """Until the deleted pods' containers have drained and are gone: kwok frees a pod's IP at once, and the next pod
    given it (the next test's install) must not be answered by them; and a test stops every container it started."""
    deadline = time.monotonic() + READY_SECONDS
    prefix = f"pod-{ISTIO_NAMESPACE}-{NAME}-"
    while any(port_open(address, AGGREGATOR_PORT) for address in addresses) or any(n.startswith(prefix) for n in containers.names()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{NAME}'s containers still there ({addresses}) {READY_SECONDS} s after their pods went")
        time.sleep(0.5)


def advertise(cluster: MeshCluster, address: str, ca_file: Path, server_name: str) -> None:
    """The operator's `manifest --mesh`, applied to a mesh cluster: its users now find the aggregator at `address`. A
    cluster other than istiod's config cluster is named (--cluster-id), so istiod reviews its users' tokens there."""
    named = [] if cluster == CONFIG_CLUSTER else ["--cluster-id", cluster.name]
    printed = plugin(
        "manifest", "--mesh", "-i", ISTIO_NAMESPACE, "--address", address, "--ca-file", str(ca_file), "--host", server_name, *named
    )
    checked(kubectl(cluster.name, "apply", "-f", "-", stdin=printed))


@contextlib.contextmanager
def mesh_users(address: str, ca_file: Path, server_name: str) -> Iterator[None]:
    """The advertisement and the limited users' mesh-only rights in every mesh cluster while the block runs; removed
    afterwards."""
    rights = mesh_only_rbac()
    try:
        for cluster in MESH_CLUSTERS:
            apply(cluster.name, rights)
            advertise(cluster, address, ca_file, server_name)
        yield
    finally:
        for cluster in MESH_CLUSTERS:
            kubectl(cluster.name, "delete", "configmap,role,rolebinding", ADVERTISEMENT, "--ignore-not-found")
            for document in rights:
                kubectl(cluster.name, "delete", document["kind"].lower(), document["metadata"]["name"], "--ignore-not-found")


def mesh_only_rbac() -> list[dict]:
    """examples/rbac.yaml's mesh-cluster Role and the mesh-only user's bindings, bound to remote-limited's user."""
    documents = [document for document in yaml.safe_load_all(EXAMPLE_RBAC.read_text()) if document]
    wanted = {("Role", "istio-remote-user"), ("RoleBinding", "istio-remote-mesh-user")}
    wanted |= {("ClusterRole", "istio-remote-istioctl"), ("ClusterRoleBinding", "istio-remote-mesh-istioctl")}
    chosen = [document for document in documents if (document["kind"], document["metadata"]["name"]) in wanted]
    # The Role of that name in the example is the external cluster's first, then the mesh cluster's: keep the mesh one.
    chosen = [d for d in chosen if not (d["kind"] == "Role" and "pods" in json.dumps(d["rules"]))]
    if len(chosen) != len(wanted):
        raise RuntimeError(f"examples/rbac.yaml lacks the mesh-only bindings: {chosen}")
    for document in chosen:
        if "namespace" in document["metadata"]:
            document["metadata"]["namespace"] = ISTIO_NAMESPACE
        if "subjects" in document:
            document["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": LIMITED_USER}]
    return chosen
