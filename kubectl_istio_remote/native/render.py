"""Native proxy-status output: istioctl's table (istioctl/pkg/writer/pilot/status.go, 1.27+), JSON and YAML.

Unlike istioctl through an aggregator, the ISTIOD column names the replica each proxy is
connected to, read from the aggregator's `x-istio-remote-sources` trailer.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse
from envoy.service.status.v3 import csds_pb2

SHORT_TYPES = {
    "type.googleapis.com/envoy.config.cluster.v3.Cluster": "CDS",
    "type.googleapis.com/envoy.config.listener.v3.Listener": "LDS",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "RDS",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment": "EDS",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret": "SDS",
    "type.googleapis.com/istio.networking.nds.v1.NameTable": "NDS",
    "type.googleapis.com/istio.mesh.v1alpha1.ProxyConfig": "PCDS",
    "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig": "ECDS",
    "type.googleapis.com/istio.workload.Address": "WDS",
    "type.googleapis.com/istio.workload.Workload": "WDS",
    "type.googleapis.com/istio.security.Authorization": "WADS",
}
LEADING_TYPES = ("CDS", "LDS", "EDS", "RDS")
WIDE_TYPES = ("CDS", "LDS", "EDS", "RDS", "ECDS")
#: The deprecated per-type field of istiod 1.20–1.22, by oneof name.
LEGACY_CONFIG_TYPES = {
    "listener_config": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "cluster_config": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "route_config": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "endpoint_config": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
}
TAB_PADDING = 5


def short_type(type_url: str) -> str:
    return SHORT_TYPES.get(type_url, type_url)


@dataclass
class XdsStatus:
    status: str
    last_updated: str | None = None


@dataclass
class ProxyStatus:
    name: str
    namespace: str
    cluster: str
    istiod: str
    version: str
    #: By full type URL.
    xds: dict[str, XdsStatus] = field(default_factory=dict)


def proxy_statuses(response: DiscoveryResponse, sources: Sequence[tuple[str, int]], fallback_istiod: str) -> list[ProxyStatus]:
    """One entry per ClientConfig, attributed to the replica that sent it, sorted by name as istioctl does."""
    istiods = [name for name, count in sources for _ in range(count)]
    statuses = []
    for index, resource in enumerate(response.resources):
        config = csds_pb2.ClientConfig()
        if not resource.Unpack(config):
            continue
        text = functools.partial(_metadata_text, config.node.metadata.fields)
        status = ProxyStatus(
            name=config.node.id,
            namespace=text("NAMESPACE"),
            cluster=text("CLUSTER_ID"),
            istiod=istiods[index] if index < len(istiods) else fallback_istiod,
            version=text("ISTIO_VERSION"),
        )
        for generic in config.generic_xds_configs:
            updated = generic.last_updated.ToDatetime(datetime.timezone.utc) if generic.HasField("last_updated") else None
            status.xds[generic.type_url] = XdsStatus(
                csds_pb2.ConfigStatus.Name(generic.config_status), updated.isoformat() if updated else None
            )
        for legacy in config.xds_config:
            which = legacy.WhichOneof("per_xds_config")
            if which in LEGACY_CONFIG_TYPES:
                status.xds[LEGACY_CONFIG_TYPES[which]] = XdsStatus(csds_pb2.ConfigStatus.Name(legacy.status))
        statuses.append(status)
    return sorted(statuses, key=lambda status: status.name)


def _metadata_text(fields: Any, key: str) -> str:
    return str(fields[key].string_value) if key in fields else ""


def status_text(xds: XdsStatus | None, now: datetime.datetime) -> str:
    if xds is None or xds.status == "UNKNOWN":
        return "IGNORED"
    if xds.status == "NOT_SENT":
        return "NOT SENT"
    if xds.last_updated is None:
        return xds.status
    age = now - datetime.datetime.fromisoformat(xds.last_updated)
    return f"{xds.status} ({human_duration(age)})"


def human_duration(age: datetime.timedelta) -> str:
    """Kubernetes' duration.HumanDuration, which istioctl uses for ages."""
    seconds = int(age.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = round(seconds / 60) // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def subscribed(status: ProxyStatus, now: datetime.datetime) -> str:
    """`4 (CDS,LDS,EDS,RDS)`: the types the proxy watches, well-known ones first."""
    watched = [url for url, xds in status.xds.items() if status_text(xds, now) != "IGNORED"]
    names = [short_type(url) for url in watched]
    ordered = [name for name in LEADING_TYPES if name in names]
    ordered += [short_type(url) for url in sorted(watched) if short_type(url) not in LEADING_TYPES]
    return f"{len(ordered)} ({','.join(ordered)})" if ordered else "0"


def table(statuses: Sequence[ProxyStatus], wide: bool, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not wide:
        header = ["NAME", "CLUSTER", "ISTIOD", "VERSION", "SUBSCRIBED TYPES"]
        rows = [[s.name, s.cluster, s.istiod, s.version, subscribed(s, now)] for s in statuses]
        return tabulate([header, *rows])
    by_short = {short: url for url, short in SHORT_TYPES.items() if short in WIDE_TYPES}
    urls = sorted({url for s in statuses for url in s.xds} | set(by_short.values()))
    header = ["NAME", "CLUSTER", *(short_type(url) for url in urls), "ISTIOD", "VERSION"]
    rows = [[s.name, s.cluster, *(status_text(s.xds.get(url), now) for url in urls), s.istiod, s.version] for s in statuses]
    return tabulate([header, *rows])


def tabulate(lines: Iterable[Sequence[str]]) -> str:
    """Go's tabwriter as istioctl configures it: columns padded by 5 spaces, the last one not padded."""
    lines = [list(line) for line in lines]
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]) - 1)]
    return (
        "\n".join("".join(cell.ljust(width + TAB_PADDING) for cell, width in zip(line, widths, strict=False)) + line[-1] for line in lines)
        + "\n"
    )


def as_document(statuses: Sequence[ProxyStatus], failed: Sequence[str]) -> dict:
    """The JSON/YAML form: stable keys, short type names, and the replicas that did not answer."""
    proxies = []
    for status in statuses:
        entry = asdict(status)
        entry["xds"] = {short_type(url): asdict(xds) for url, xds in status.xds.items()}
        proxies.append(entry)
    return {"proxies": proxies, "failedIstiods": list(failed)}


def dump(document: dict, output: str) -> str:
    if output == "yaml":
        import yaml

        return yaml.safe_dump(document, sort_keys=False)
    return json.dumps(document, indent=2) + "\n"
