"""Which cluster istiod takes the mesh cluster for: the Istio cluster ID its tokens are reviewed in.

istiod reviews a token with the API server of the cluster its caller names (gRPC metadata `clusterid`),
else with its config cluster's. A mesh cluster registered with istiod by a remote secret must be named,
or its tokens are refused. Its install says its name where the sidecars learn it: in the injection
webhook's URL (`/inject/cluster/ID/net/NETWORK`, istiodRemote.injectionURL or injectionPath).
"""

from __future__ import annotations

from kubectl_istio_remote.istio import REVISION_LABEL, injection_cluster_id
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.kube.kinds import MUTATING_WEBHOOK_CONFIGURATION
from kubectl_istio_remote.kube.records import items


def injected_cluster_id(mesh: Cluster, revision: str) -> str:
    """The cluster ID the mesh cluster's injection webhooks of this revision name ("" when none names one)."""
    listed = mesh.list_objects(MUTATING_WEBHOOK_CONFIGURATION, labels=f"{REVISION_LABEL}={revision or 'default'}")
    for configuration in items(listed):
        for webhook in configuration.get("webhooks") or []:
            client = webhook.get("clientConfig") or {}
            named = injection_cluster_id(str(client.get("url") or (client.get("service") or {}).get("path") or ""))
            if named:
                return named
    return ""
