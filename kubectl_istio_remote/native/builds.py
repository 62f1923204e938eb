"""`version --remote`: which build every istiod replica runs, and which the proxies run, from one syncz answer."""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from kubectl_istio_remote.native.render import tabulate
from kubectl_istio_remote.native.syncz import Syncz


@dataclass(frozen=True)
class Replica:
    name: str
    version: str
    revision: str
    proxies: int


@dataclass(frozen=True)
class ProxyVersion:
    version: str
    proxies: int


def replicas(syncz: Syncz) -> list[Replica]:
    """One row per answering replica, from the control-plane identifier it sent with its syncz answer."""
    rows = []
    for name, count in syncz.sources:
        info = _info(syncz.identities.get(name, ""))
        rows.append(Replica(name, str(info.get("version") or "unknown"), str(info.get("revision") or ""), count))
    return rows


def data_plane(syncz: Syncz) -> list[ProxyVersion]:
    counts = collections.Counter(status.version or "unknown" for status in syncz.statuses)
    return [ProxyVersion(version, count) for version, count in sorted(counts.items())]


def _info(identifier: str) -> dict[str, object]:
    try:
        parsed = json.loads(identifier) if identifier else {}
    except ValueError:
        return {}
    info = parsed.get("Info") if isinstance(parsed, dict) else None
    return info if isinstance(info, dict) else {}


def text(rows: Sequence[Replica], proxies: Sequence[ProxyVersion]) -> str:
    """Two tables; replicas on different builds stand out as different VERSION values in one column."""
    lines = [
        "control plane:",
        tabulate([["ISTIOD", "VERSION", "REVISION", "PROXIES"], *([r.name, r.version, r.revision, str(r.proxies)] for r in rows)]),
    ]
    if len({row.version for row in rows}) > 1:
        lines.append(f"the replicas run {len({row.version for row in rows})} different versions\n")
    lines += ["data plane:", tabulate([["VERSION", "PROXIES"], *([p.version, str(p.proxies)] for p in proxies)])]
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def document(rows: Sequence[Replica], proxies: Sequence[ProxyVersion], failed: Sequence[str]) -> dict[str, object]:
    return {"controlPlane": [asdict(row) for row in rows], "dataPlane": [asdict(proxy) for proxy in proxies], "failedIstiods": list(failed)}
