"""What the aggregator counts: nothing in a session, Prometheus metrics where `serve --metrics-listen` asks for them.

Operators watch every control-plane component with Prometheus (istiod serves its metrics on
15014); a shared aggregator is one. prometheus_client writes the exposition format and the
process collector (CPU, memory, open files); it is imported only by a `serve` that exposes
metrics, so a session's own aggregator pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubectl_istio_remote.istio import DEBUG_TYPE

if TYPE_CHECKING:
    from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

PREFIX = "istio_remote"
#: Seconds: from istiod's quick pages to a 10 000-proxy syncz through a busy replica.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def page_class(request: DiscoveryRequest) -> str:
    """A request's kind, few enough to be a label: syncz, syncz-proxy, config-dump, debug-local, debug-global, debug-proxy, ..."""
    from kubectl_istio_remote.aggregator.debug_pages import Page

    names = list(request.resource_names)
    if request.type_url == DEBUG_TYPE:
        if not names:
            return "debug-global"
        page = Page.of(names[0])
        if page.changes_istiod:
            return "debug-change"
        if page.has("proxyID"):
            return "debug-proxy"
        return "debug-local" if page.replica_local else "debug-global"
    kind = request.type_url.rsplit("/", 1)[-1] if request.type_url.startswith("istio.io/debug/") else "other"
    kind = kind.replace("_", "-") if kind in ("syncz", "config_dump") else "other"
    return f"{kind}-proxy" if kind == "syncz" and names else kind


class Metrics:
    """Counts nothing: what a session's aggregator uses. `PrometheusMetrics` counts the same calls."""

    def request(self, page: str, code: str) -> None:
        """A call ended with this gRPC code."""

    def shed(self, cause: str) -> None:
        """A call was refused with RESOURCE_EXHAUSTED: `memory` or `queue`."""

    def coalesced(self) -> None:
        """A call shared the fan-out of an identical one in flight."""

    def in_flight(self, change: int) -> None:
        """Calls being answered now, up or down."""

    def replica(self, replica: str, outcome: str, seconds: float) -> None:
        """One request to one replica: `ok`, or the gRPC code it failed with."""

    def replicas(self, names: list[str]) -> None:
        """The replicas known now (discovery's current set)."""

    def merged(self, size: int) -> None:
        """Bytes of one merged answer."""

    def memory(self, used: int, limit: int | None) -> None:
        """Bytes the budget counts now, and its limit."""


class PrometheusMetrics(Metrics):
    """The metrics, in a registry of their own with the process collector, served by `serve_on`."""

    def __init__(self) -> None:
        import prometheus_client as prometheus

        self.registry = prometheus.CollectorRegistry()
        self._prometheus = prometheus
        prometheus.ProcessCollector(registry=self.registry)
        prometheus.PlatformCollector(registry=self.registry)
        made: dict[str, Any] = {"registry": self.registry}
        self._requests = prometheus.Counter(
            f"{PREFIX}_requests", "Calls answered, by page class and gRPC code.", ["page_class", "code"], **made
        )
        self._shed = prometheus.Counter(
            f"{PREFIX}_shed_requests", "Calls refused as busy (RESOURCE_EXHAUSTED), by cause.", ["cause"], **made
        )
        self._coalesced = prometheus.Counter(f"{PREFIX}_coalesced_requests", "Calls that shared an identical call's fan-out.", **made)
        self._in_flight = prometheus.Gauge(f"{PREFIX}_requests_in_flight", "Calls being answered now.", **made)
        self._replica_requests = prometheus.Counter(
            f"{PREFIX}_replica_requests", "Requests to each istiod replica, by outcome (ok or gRPC code).", ["replica", "outcome"], **made
        )
        self._replica_seconds = prometheus.Histogram(
            f"{PREFIX}_replica_request_duration_seconds",
            "Time each istiod replica took to answer, its queue wait excluded.",
            ["replica"],
            buckets=LATENCY_BUCKETS,
            **made,
        )
        self._replicas = prometheus.Gauge(f"{PREFIX}_replicas", "istiod replicas known (discovered or given).", **made)
        self._merged = prometheus.Counter(f"{PREFIX}_merged_bytes", "Bytes of merged answers sent.", **made)
        self._memory = prometheus.Gauge(f"{PREFIX}_memory_budget_used_bytes", "Bytes of answers the memory budget counts now.", **made)
        self._limit = prometheus.Gauge(f"{PREFIX}_memory_budget_bytes", "The memory budget (0: unbounded).", **made)
        #: The outcomes seen of each replica: the labels to remove when it leaves.
        self._outcomes: dict[str, set[str]] = {}

    def serve_on(self, listen: str) -> str:
        """Serve /metrics on HOST:PORT (port 0 picks one) in a thread; returns the bound HOST:PORT."""
        host, _, port = listen.rpartition(":")
        server, _ = self._prometheus.start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)
        self._server = server
        return f"{host}:{server.server_port}"

    def stop(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def request(self, page: str, code: str) -> None:
        self._requests.labels(page, code).inc()

    def shed(self, cause: str) -> None:
        self._shed.labels(cause).inc()

    def coalesced(self) -> None:
        self._coalesced.inc()

    def in_flight(self, change: int) -> None:
        self._in_flight.inc(change)

    def replica(self, replica: str, outcome: str, seconds: float) -> None:
        self._replica_requests.labels(replica, outcome).inc()
        self._outcomes.setdefault(replica, set()).add(outcome)
        if outcome == "ok":
            self._replica_seconds.labels(replica).observe(seconds)

    def replicas(self, names: list[str]) -> None:
        """Series of replicas that left are removed: over a year of rollouts, pod names would pile up."""
        self._replicas.set(len(names))
        for gone in set(self._outcomes) - set(names):
            outcomes = self._outcomes.pop(gone)
            for outcome in outcomes:
                self._replica_requests.remove(gone, outcome)
            if "ok" in outcomes:  # latency is observed for answers only
                self._replica_seconds.remove(gone)

    def merged(self, size: int) -> None:
        self._merged.inc(size)

    def memory(self, used: int, limit: int | None) -> None:
        self._memory.set(used)
        self._limit.set(limit or 0)
