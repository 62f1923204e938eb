"""The record one proxy-status answer becomes: every proxy's status, and which replicas answered, failed, and run what."""

from __future__ import annotations

from dataclasses import dataclass

from kubectl_istio_remote.native.render import ProxyStatus


@dataclass(frozen=True)
class Syncz:
    """Every proxy's sync status (or one proxy's), the replicas that did not answer, and what those that did run."""

    statuses: list[ProxyStatus]
    failed: list[str]
    #: Each answering replica's control-plane identifier, by replica name.
    identities: dict[str, str]
    #: (replica, proxies it holds), in merge order.
    sources: list[tuple[str, int]]
    #: The Istio cluster ID the session named to istiod as the mesh cluster's ("": none, istiod's config cluster).
    cluster_id: str = ""
