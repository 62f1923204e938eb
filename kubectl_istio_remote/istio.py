"""Istio's own facts the plugin relies on, and the plugin's timeouts: each defined once.

Kept free of imports so the CLI's option defaults can name them without slowing `--help`.
"""

from __future__ import annotations

#: The label istioctl selects istiod pods by.
ISTIOD_LABEL = "app=istiod"
REVISION_LABEL = "istio.io/rev"
#: Where istioctl looks for istiod when nothing says otherwise.
DEFAULT_NAMESPACE = "istio-system"
#: istiod's token-authenticated XDS port (secureGRPCAddr); the aggregator serves istioctl on the same.
ISTIOD_PORT = 15012
#: The control-plane ID the aggregator answers with: istioctl's ISTIOD column shows it.
CONTROL_PLANE_ID = "<external>"
#: istioctl asks for a token of this service account in the istio namespace; istiod lets it see every proxy.
TOKEN_SERVICE_ACCOUNT = "default"
#: The gRPC metadata istiod takes a caller's Istio cluster ID from, to review its token with that cluster's API server
#: (security/pkg/server/ca/authenticate/kubeauth; pilot-agent sends it). Absent: istiod's own config cluster.
CLUSTER_ID_METADATA = "clusterid"
#: A remote cluster's injection webhook names its cluster ID in its URL or path (istiodRemote.injectionURL/injectionPath).
INJECTION_CLUSTER_PATH = "/inject/cluster/"
#: istiod's debug type: HTTP-style pages (`syncz`, `adsz?push=true`, ...) named as its one resource.
DEBUG_TYPE = "istio.io/debug"
#: Every proxy's sync status; istiod ignores resource names on it (statusgen's debugSyncz).
SYNCZ_TYPE = f"{DEBUG_TYPE}/syncz"
#: The largest gRPC message the aggregator sends or receives (`serve --max-message-bytes`).
MAX_MESSAGE_BYTES = 512 * 1024 * 1024

#: Seconds to get a session ready, and to retry removal while the API server does not answer.
SESSION_TIMEOUT_SECONDS = 120.0
#: Seconds after which pod mode's pod ends itself, even if the plugin is killed.
POD_TTL_SECONDS = 900
#: Seconds each istiod replica has to answer one request.
ISTIOD_TIMEOUT_SECONDS = 10.0
#: Seconds one ordinary API request may take.
API_REQUEST_SECONDS = 15.0


def istiod_selector(revision: str = "", label: str = ISTIOD_LABEL) -> str:
    """The label selector istioctl uses for istiod pods (`app=istiod`, plus the revision when given)."""
    return f"{label},{REVISION_LABEL}={revision}" if revision else label


def injection_cluster_id(url_or_path: str) -> str:
    """The cluster ID in an injection webhook's `/inject/cluster/ID/net/NETWORK` ("" when it names none)."""
    _, found, rest = url_or_path.partition(INJECTION_CLUSTER_PATH)
    return rest.split("/", 1)[0] if found else ""


def istiod_authority(namespace: str, revision: str = "") -> str:
    """The DNS name in istiod's serving certificate, as istioctl expects it."""
    service = f"istiod-{revision}" if revision and revision != "default" else "istiod"
    return f"{service}.{namespace}.svc"
