"""The aggregator's side facing istioctl: an ADS server that fans each request out and merges.

istioctl opens one stream, sends one DiscoveryRequest and reads the first response of its type,
so every request on a stream gets exactly one merged response, and the stream stays open until
the client closes it (closing first can make istioctl read end-of-stream instead of the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from kubectl_istio_remote.aggregator.calls import Calls
from kubectl_istio_remote.aggregator.discovery import TargetSource
from kubectl_istio_remote.aggregator.fanout import AggregationError, FanOut, Merged
from kubectl_istio_remote.aggregator.load import OVERHEAD, Budget, Overloaded
from kubectl_istio_remote.aggregator.metrics import Metrics, PrometheusMetrics, page_class
from kubectl_istio_remote.aggregator.serving import Settings
from kubectl_istio_remote.aggregator.tls import RotatingCertificate
from kubectl_istio_remote.aggregator.trailers import DISAGREE_METADATA_KEY, FAILED_METADATA_KEY, IDENTITY_METADATA_KEY, SOURCES_METADATA_KEY
from kubectl_istio_remote.aggregator.upstream import IstiodPool, UpstreamFailure
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.istio import CLUSTER_ID_METADATA
from kubectl_istio_remote.relay import Dialer, Target, client_tls_context

log = logging.getLogger(__name__)

FORWARDED_METADATA = frozenset({"authorization", CLUSTER_ID_METADATA})
ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def trailing_metadata(
    failures: Sequence[UpstreamFailure], merged: Merged | None = None, disagreements: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    """One `x-istio-remote-failed` entry per failed replica; per answering one its resource count and
    identity; one entry per disagreement."""
    failed = [(FAILED_METADATA_KEY, _printable(str(failure))) for failure in failures]
    sourced = [(SOURCES_METADATA_KEY, _printable(f"{name}={count}")) for name, count in (merged.sources if merged else ())]
    named = [(IDENTITY_METADATA_KEY, _printable(f"{name}={identity}")) for name, identity in (merged.identities if merged else ())]
    return tuple(failed + sourced + named + [(DISAGREE_METADATA_KEY, _printable(text)) for text in disagreements])


def forwarded_metadata(given: Iterable[tuple[str, str | bytes]], cluster_id: str) -> list[tuple[str, str]]:
    """What istiod must see of a caller: its token, and the cluster to review it with (the caller's, else ours)."""
    forwarded = [(key, str(value)) for key, value in given if key in FORWARDED_METADATA]
    if cluster_id and all(key != CLUSTER_ID_METADATA for key, _ in forwarded):
        forwarded.append((CLUSTER_ID_METADATA, cluster_id))
    return forwarded


def _printable(text: str) -> str:
    return "".join(char if " " <= char <= "~" else "?" for char in text)


class AggregatingDiscoveryService:
    """ADS, registered by hand so merged answers go out as the bytes they were merged into."""

    def __init__(self, calls: Calls, metrics: Metrics, cluster_id: str = "") -> None:
        self._calls = calls
        self._metrics = metrics
        self._cluster_id = cluster_id

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            ADS_SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.stream, request_deserializer=bytes, response_serializer=bytes
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.delta, request_deserializer=bytes, response_serializer=bytes
                ),
            },
        )

    async def stream(self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        forwarded = forwarded_metadata(context.invocation_metadata() or (), self._cluster_id)
        node = None
        failures: list[UpstreamFailure] = []
        disagreements: list[str] = []
        async for raw in request_iterator:
            # Decoded here, not by gRPC: its own decoding turns a malformed request (bad UTF-8 in a
            # string field, random bytes) into UNKNOWN and an ERROR traceback in our log per request.
            try:
                request = DiscoveryRequest.FromString(raw)
            except DecodeError as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a DiscoveryRequest: {error}")
            # The node comes on a stream's first request only; every upstream stream needs it,
            # unchanged, because istiod matches it against the caller's token.
            if request.HasField("node"):
                node = request.node
            elif node is not None:
                request.node.CopyFrom(node)
            page = page_class(request)
            self._metrics.in_flight(1)
            try:
                merged, caller = await self._calls.answer(request, forwarded, context.time_remaining())
            except Overloaded as error:
                self._metrics.shed(error.cause)
                self._ended(page, grpc.StatusCode.RESOURCE_EXHAUSTED)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), trailing_metadata=trailing_metadata(failures))
            except AggregationError as error:
                self._ended(page, error.code)
                await context.abort(error.code, str(error), trailing_metadata=trailing_metadata(failures + error.failures))
            except BaseException:
                self._ended(page, grpc.StatusCode.CANCELLED)  # the caller went away
                raise
            failures += merged.failures
            disagreements += [merged.disagreement] if merged.disagreement else []
            context.set_trailing_metadata(trailing_metadata(failures, merged, disagreements))
            try:
                yield merged.raw
            finally:
                caller.done()  # sent, or the caller went away: what the answer held is free
                self._ended(page, grpc.StatusCode.OK)

    def _ended(self, page: str, code: grpc.StatusCode) -> None:
        self._metrics.in_flight(-1)
        self._metrics.request(page, code.name)

    async def delta(self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "DeltaAggregatedResources is not supported: use StreamAggregatedResources (state-of-the-world ADS) as istioctl does",
        )


class Aggregator:
    """The running server: replicas from a source, reached by a dialer, served on one address."""

    def __init__(self, settings: Settings, source: TargetSource, dialer: Dialer, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self._source = source
        self.metrics = metrics or (PrometheusMetrics() if settings.metrics_listen else Metrics())
        tls = None if settings.istiod_plaintext else client_tls_context(settings.istiod_ca_file)
        self._pool = IstiodPool(dialer, tls, settings.channel_options, settings.connect_ahead, settings.istiod_max_in_flight)
        self.budget = Budget(None if settings.max_memory is None else settings.max_memory // OVERHEAD, observer=self.metrics.memory)
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self._certificate = RotatingCertificate(*settings.serving_files) if settings.serving_files else None
        self._rotation: asyncio.Task | None = None
        self.address = ""
        #: Where /metrics is served ("" without --metrics-listen).
        self.metrics_address = ""

    async def start(self) -> str:
        """Find the replicas, then listen and report SERVING; returns the bound HOST:PORT.

        Listening only once istiod is known makes an open port mean "ready": a Service routes calls to a
        pod whose port accepts (a tcpSocket readiness probe), and they must not meet an empty fan-out.
        """
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        server = grpc.aio.server(options=self.settings.channel_options)
        fan_out = FanOut(self._pool, self._source, self.settings, self.metrics)
        calls = Calls(fan_out, self.budget, self.metrics, self.settings.max_queue_seconds)
        server.add_generic_rpc_handlers([AggregatingDiscoveryService(calls, self.metrics, self.settings.cluster_id).handler()])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        host = self.settings.listen.rpartition(":")[0]
        if self._certificate is not None:
            port = server.add_secure_port(self.settings.listen, self._certificate.credentials())
            self._rotation = asyncio.ensure_future(self._certificate.follow())
        elif self.settings.serving_pair is not None:
            port = server.add_secure_port(self.settings.listen, grpc.ssl_server_credentials([self.settings.serving_pair]))
        else:
            port = server.add_insecure_port(self.settings.listen)
        await self._source.start(self._replace)
        await server.start()
        self._server = server
        self.address = f"{host}:{port}"
        self.metrics.memory(0, self.budget.limit)
        if self.settings.metrics_listen and isinstance(self.metrics, PrometheusMetrics):
            self.metrics_address = self.metrics.serve_on(self.settings.metrics_listen)
            log.info("metrics on http://%s/metrics", self.metrics_address)
        for service in ("", ADS_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self.address

    async def _replace(self, targets: Iterable[Target]) -> None:
        wanted = list(targets)
        await self._pool.replace(wanted)
        self.metrics.replicas([target.name for target in wanted])

    async def drain(self) -> None:
        """Say NOT_SERVING to health checks while still answering: the caller is about to stop."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new streams, give in-flight ones `grace` seconds, then drop every upstream link."""
        await self._health.enter_graceful_shutdown()
        self._source.stop()
        if self._rotation is not None:
            self._rotation.cancel()
        if self._server is not None:
            await self._server.stop(grace)
        await self._pool.close()
        if isinstance(self.metrics, PrometheusMetrics):
            self.metrics.stop()


SHUTDOWN_GRACE_SECONDS = 5.0
#: After SIGTERM, new calls are still answered this long (health NOT_SERVING): a Service takes a moment to stop
#: sending connections to a terminating pod, and those must not be refused. Within the pod's 30 s grace period.
DRAIN_SECONDS = 5.0


async def serve_until_signalled(
    aggregator: Aggregator, console: Console, drain: float = DRAIN_SECONDS, started: Callable[[], None] = lambda: None
) -> None:
    """Run until SIGTERM or SIGINT; then answer new calls for `drain` seconds more (a second signal cuts that short) and
    finish those in flight within the grace period; stdout carries one line, and `started` runs once it is out."""
    import signal

    stop, now = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: now.set() if stop.is_set() else stop.set())
    address = await aggregator.start()
    console.data(f"listening on {address}\n")
    started()
    await stop.wait()
    log.info("shutting down: answering new calls %.0f s more", drain)
    await aggregator.drain()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(now.wait(), drain)
    await aggregator.stop(SHUTDOWN_GRACE_SECONDS)
