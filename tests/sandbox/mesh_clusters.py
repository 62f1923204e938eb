"""The mesh clusters of the external control plane, installed as Istio's remote profile installs them.

The first, `remote`, is istiod's config cluster (--kubeconfig, --clusterID); the others are
registered with istiod by the real `istioctl create-remote-secret`. Each has the injection webhook
the remote profile renders (`/inject/cluster/<ID>/net/<NETWORK>`): that is where the plugin reads
which Istio cluster a mesh cluster is. Nothing calls the webhook: no namespace here enables
injection, the sidecars are started by hand.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.sandbox import build, procs
from tests.sandbox.clusters import KUBECONFIG, apply
from tests.sandbox.objects import ISTIO_NAMESPACE, namespace_manifest, service_account_manifest
from tests.sandbox.paths import STATE

NETWORK = "network1"
ISTIOD_WEBHOOK_URL = f"https://istiod.{ISTIO_NAMESPACE}.svc:15017"


@dataclass(frozen=True)
class MeshCluster:
    """A mesh cluster: its context, which is also its Istio cluster ID, and the namespace of its sleep pods."""

    name: str
    namespace: str


#: No proxy ID may contain another: istiod finds a proxy's connection by substring (debug.go, getProxyConnection), so
#: a config dump of `sleep-0.sample` could be `sleep-0.sample-2`'s.
MESH_CLUSTERS = (MeshCluster("remote", "sample"), MeshCluster("remote-2", "demo"))
CONFIG_CLUSTER = MESH_CLUSTERS[0]


def _istioctl(*args: str) -> str:
    printed = subprocess.run(
        [build.binary("istioctl"), *args],
        env={"KUBECONFIG": str(KUBECONFIG), "HOME": str(STATE)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if printed.returncode != 0:
        raise procs.SandboxError(f"istioctl {' '.join(args[:3])} failed: {printed.stderr.strip()}")
    return printed.stdout


def istio_module() -> Path:
    return Path(json.loads(build.go_module_info("istio.io/istio", build.ISTIO_PSEUDO_VERSION))["Dir"])


def _injection_webhooks(cluster: MeshCluster) -> list[dict]:
    """The MutatingWebhookConfiguration(s) the remote profile renders for this cluster, by the real istioctl."""
    rendered = _istioctl(
        "manifest",
        "generate",
        "--set",
        "profile=remote",
        "--set",
        f"values.global.istioNamespace={ISTIO_NAMESPACE}",
        "--set",
        f"values.istiodRemote.injectionURL={ISTIOD_WEBHOOK_URL}/inject/cluster/{cluster.name}/net/{NETWORK}",
    )
    webhooks = [doc for doc in yaml.safe_load_all(rendered) if doc and doc.get("kind") == "MutatingWebhookConfiguration"]
    if not webhooks:
        raise procs.SandboxError("istioctl manifest generate --set profile=remote rendered no MutatingWebhookConfiguration")
    return webhooks


def install(cluster: MeshCluster) -> None:
    """What istiod needs in a mesh cluster: the Istio CRDs, the namespaces, the injection webhook, and a Service
    giving sidecars routes."""
    crds = [doc for doc in yaml.safe_load_all((istio_module() / "manifests/charts/base/files/crd-all.gen.yaml").read_text()) if doc]
    apply(cluster.name, crds)
    apply(
        cluster.name,
        [
            namespace_manifest(ISTIO_NAMESPACE),
            namespace_manifest(cluster.namespace),
            service_account_manifest("default", ISTIO_NAMESPACE),
            service_account_manifest("sleep", cluster.namespace),
            *_injection_webhooks(cluster),
            # An HTTP service gives every sidecar a route configuration too (RDS), as in a real mesh.
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "sleep", "namespace": cluster.namespace},
                "spec": {"selector": {"app": "sleep"}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
            },
        ],
    )


def register(cluster: MeshCluster) -> None:
    """`istioctl create-remote-secret` for a mesh cluster, applied where istiod reads its configuration."""
    printed = _istioctl("create-remote-secret", "--context", cluster.name, "--name", cluster.name, "-i", ISTIO_NAMESPACE)
    apply(CONFIG_CLUSTER.name, [doc for doc in yaml.safe_load_all(printed) if doc])


def wait_registered(addresses: list[str]) -> None:
    """Every replica has synced every mesh cluster (istiod's clusterz debug page, on its HTTP port)."""
    wanted = {cluster.name for cluster in MESH_CLUSTERS}

    def synced(address: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{address}:8080/debug/clusterz", timeout=2) as response:
                listed = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return wanted <= {entry.get("id") for entry in listed if entry.get("syncStatus") == "synced"}

    for address in addresses:
        procs.wait_until(f"istiod at {address} to sync {', '.join(sorted(wanted))}", lambda a=address: synced(a), 120)
