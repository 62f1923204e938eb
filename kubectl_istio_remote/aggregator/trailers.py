"""What the aggregator says beside its merged answer, in gRPC trailers: the server writes them, our own client reads them.

istioctl sees one control plane and ignores them; the native commands use them to name each
proxy's replica, the replicas that failed, each replica's build, and pages the replicas disagree on.
"""

from __future__ import annotations

#: "istiod: reason" per replica that failed a request on the stream.
FAILED_METADATA_KEY = "x-istio-remote-failed"
#: "istiod=count" per replica, in merge order, for the last merged answer on the stream: lets our
#: own client show which replica each proxy is connected to (istioctl sees one control plane).
SOURCES_METADATA_KEY = "x-istio-remote-sources"
#: "istiod=<its control-plane identifier JSON>" per answering replica: which build each one runs.
IDENTITY_METADATA_KEY = "x-istio-remote-control-plane"
#: The replicas answered a global debug page differently; the answer is keyed by replica.
DISAGREE_METADATA_KEY = "x-istio-remote-disagree"
