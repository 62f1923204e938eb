"""istiod's HTTP-style debug pages (`istio.io/debug`, `x internal-debug PAGE`) merged into one answer.

Each replica answers with one body; istioctl prints every resource it gets, so N replicas gave N
documents one after another, and nothing said which replica wrote which. Pages differ in what
their answers mean (istio's pilot/pkg/xds/debug.go), so they merge by class:

- replica-local lists (syncz, adsz, connections, instancesz, cachez, telemetryz): one document
  uniting every replica's entries, each list entry marked with its replica, counts added, and the
  aggregator's own connections to istiod left out;
- global state (everything else): one copy when the replicas agree; keyed by replica, and said,
  when they do not, since a replica that disagrees is a finding;
- pages that change istiod (a push to every proxy, a cleared cache, a forced disconnect): every
  replica's result keyed by replica, and only where the aggregator was started to allow them;
- bodies that are not JSON (istiod's "404 page not found", "You must provide a proxyID"): the text
  once when every replica said the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

REPLICA_LOCAL = frozenset({"syncz", "adsz", "connections", "instancesz", "cachez", "telemetryz"})
#: Marks each list entry of a replica-local page with the replica that sent it.
REPLICA_KEY = "istiod"


@dataclass(frozen=True)
class Page:
    """What `x internal-debug` asked for: `adsz?push=true` is page `adsz` with query {"push": ["true"]}."""

    name: str
    query: dict[str, list[str]]

    @classmethod
    def of(cls, resource_name: str) -> Page:
        path, _, query = resource_name.partition("?")
        return cls(path.strip("/"), parse_qs(query, keep_blank_values=True))

    def has(self, key: str) -> bool:
        return any(value for value in self.query.get(key, []))

    @property
    def changes_istiod(self) -> bool:
        return (
            self.name == "force_disconnect" or (self.name == "adsz" and self.has("push")) or (self.name == "cachez" and self.has("clear"))
        )

    @property
    def replica_local(self) -> bool:
        return self.name in REPLICA_LOCAL and not self.has("proxyID")


@dataclass(frozen=True)
class MergedPage:
    body: bytes
    #: Set when the replicas disagreed on a global page: said to the user.
    disagreement: str = ""


def merge_page(page: Page, bodies: Mapping[str, bytes], own_proxy: str) -> MergedPage:
    """One body for `page` from each replica's (by replica name, in merge order); `own_proxy` is our connection's proxy ID."""
    parsed = {replica: _json(body) for replica, body in bodies.items()}
    by_replica = {
        replica: body.decode(errors="replace") if parsed[replica] is _NOT_JSON else parsed[replica] for replica, body in bodies.items()
    }
    if page.changes_istiod:
        return MergedPage(_dump(by_replica))
    if any(value is _NOT_JSON for value in parsed.values()):
        if len(set(bodies.values())) == 1:
            return MergedPage(next(iter(bodies.values())))
        return MergedPage(_dump(by_replica))
    if page.replica_local:
        return MergedPage(_dump(unite(parsed, own_proxy)))
    values = list(parsed.values())
    if all(value == values[0] for value in values):
        return MergedPage(_dump(values[0]))
    names = ", ".join(parsed)
    return MergedPage(_dump(parsed), f"the istiod replicas disagree on {page.name}: answer keyed by replica ({names})")


def unite(values: Mapping[str, Any], own_proxy: str) -> Any:
    """Every replica's entries in one value: lists joined (entries marked), numbers added, equal values once, the rest keyed by replica."""
    present = list(values.values())
    if all(isinstance(value, list) for value in present):
        return [_marked(entry, replica) for replica, value in values.items() for entry in value if not _is_own(entry, own_proxy)]
    if all(isinstance(value, dict) for value in present):
        keys = dict.fromkeys(key for value in present for key in value if key != own_proxy)
        united = {key: unite({replica: value[key] for replica, value in values.items() if key in value}, own_proxy) for key in keys}
        if isinstance(united.get("clients"), list) and isinstance(united.get("totalClients"), int):
            united["totalClients"] = len(united["clients"])  # adsz, connections: our own connections were left out
        return united
    if all(isinstance(value, int) and not isinstance(value, bool) for value in present):
        return sum(present)
    if all(value == present[0] for value in present):
        return present[0]
    return dict(values)


def _marked(entry: Any, replica: str) -> Any:
    return {**entry, REPLICA_KEY: replica} if isinstance(entry, dict) and REPLICA_KEY not in entry else entry


def _is_own(entry: Any, own_proxy: str) -> bool:
    """syncz names a connection by `proxy`, adsz and connections by `connectionId` (the proxy ID and a counter)."""
    if not own_proxy or not isinstance(entry, dict):
        return False
    return entry.get("proxy") == own_proxy or str(entry.get("connectionId", "")).startswith(f"{own_proxy}-")


def proxy_id(node_id: str) -> str:
    """The proxy ID istiod derives from a node ID `type~ip~id~domain`."""
    parts = node_id.split("~")
    return parts[2] if len(parts) == 4 else ""


_NOT_JSON: Any = object()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
