"""`remote-clusters`: istioctl's table of the clusters each istiod replica reads (its `clusterz` page), for every replica.

istioctl gets it by port-forwarding to each istiod pod, which a mesh cluster does not have; through
the aggregator one `clusterz` answer carries it: one copy when the replicas agree (each answering
replica then reads those clusters), keyed by replica when they do not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kubectl_istio_remote.native.render import tabulate

PAGE = "clusterz"


@dataclass(frozen=True)
class RemoteCluster:
    name: str
    secret: str
    status: str
    istiod: str


def rows(body: bytes, replicas: Sequence[str]) -> list[RemoteCluster]:
    """One row per cluster per replica; `replicas` are those that answered, in merge order."""
    document: Any = json.loads(body)
    by_replica = dict.fromkeys(replicas, document) if isinstance(document, list) else document
    found = []
    for replica in sorted(by_replica):
        for entry in by_replica[replica] if isinstance(by_replica[replica], list) else []:
            found.append(
                RemoteCluster(str(entry.get("id", "")), str(entry.get("secretName", "")), str(entry.get("syncStatus", "")), replica)
            )
    return found


def table(found: Sequence[RemoteCluster]) -> str:
    return tabulate([["NAME", "SECRET", "STATUS", "ISTIOD"], *([c.name, c.secret, c.status, c.istiod] for c in found)])


def document(found: Sequence[RemoteCluster], failed: Sequence[str]) -> dict[str, object]:
    return {"clusters": [asdict(cluster) for cluster in found], "failedIstiods": list(failed)}
