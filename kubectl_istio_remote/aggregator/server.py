"""The aggregator's side facing istioctl: an ADS server that fans each request out and merges.

istioctl opens one stream, sends one DiscoveryRequest and reads the first response of its type,
so every request on a stream gets exactly one merged response, and the stream stays open until
the client closes it (closing first can make istioctl read end-of-stream instead of the answer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from kubectl_istio_remote.aggregator.debug_pages import Page
from kubectl_istio_remote.aggregator.discovery import TargetSource
from kubectl_istio_remote.aggregator.merge import DEBUG, Answer, in_merge_order, merge
from kubectl_istio_remote.aggregator.trailers import DISAGREE_METADATA_KEY, FAILED_METADATA_KEY, IDENTITY_METADATA_KEY, SOURCES_METADATA_KEY
from kubectl_istio_remote.aggregator.upstream import IstiodPool, UpstreamFailure
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.istio import CONTROL_PLANE_ID, ISTIOD_TIMEOUT_SECONDS, MAX_MESSAGE_BYTES
from kubectl_istio_remote.relay import Dialer, client_tls_context

log = logging.getLogger(__name__)

FORWARDED_METADATA = frozenset({"authorization"})
ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
#: istiod refusing the caller is the caller's problem to fix, so keep istiod's own code for it.
CALLER_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT})


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the server, apart from where the istiods are."""

    listen: str = "127.0.0.1:0"
    #: (key PEM, certificate PEM) for TLS towards clients; None serves plaintext.
    serving_pair: tuple[bytes, bytes] | None = None
    istiod_ca_file: str | None = None
    istiod_plaintext: bool = False
    istiod_timeout: float = ISTIOD_TIMEOUT_SECONDS
    require_all: bool = False
    control_plane_id: str = CONTROL_PLANE_ID
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: Pass on debug pages that change istiod (`adsz?push=true`, `cachez?clear=true`, `force_disconnect`):
    #: a user's own session may; a shared aggregator refuses unless its operator allows it.
    allow_debug_changes: bool = False
    #: Connect to each replica when it is found rather than at the first request: worth it where a
    #: connection costs round trips (local mode's port-forwards from a laptop).
    connect_ahead: bool = False

    @property
    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]


class AggregationError(Exception):
    """No answer can be given; carries the status the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str, failures: Sequence[UpstreamFailure] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.failures = list(failures)


@dataclass(frozen=True)
class Merged:
    """The serialized answer, the replicas that failed, and (name, resource count) of those that answered."""

    raw: bytes
    failures: list[UpstreamFailure]
    sources: list[tuple[str, int]]
    disagreement: str = ""
    #: (istiod, its control-plane identifier) of the replicas that sent one.
    identities: list[tuple[str, str]] = field(default_factory=list)


class FanOut:
    """Asks every replica at once, each under its own deadline, and merges what comes back in time."""

    def __init__(self, pool: IstiodPool, source: TargetSource, settings: Settings) -> None:
        self._pool = pool
        self._source = source
        self._settings = settings

    async def answer(self, request: DiscoveryRequest, metadata: Sequence[tuple[str, str]]) -> Merged:
        links = self._pool.links()
        if not links:
            raise AggregationError(grpc.StatusCode.UNAVAILABLE, f"no istiod found: no {self._source.description}")
        self._check_change(request, len(links))
        results = await asyncio.gather(
            *(link.ask(request, metadata, self._settings.istiod_timeout) for link in links), return_exceptions=True
        )
        answers: list[Answer] = []
        failures: list[UpstreamFailure] = []
        for link, result in zip(links, results, strict=True):
            if isinstance(result, Answer):
                answers.append(result)
            elif isinstance(result, UpstreamFailure):
                failures.append(result)
            elif isinstance(result, Exception):
                failures.append(UpstreamFailure(link.target.name, f"{type(result).__name__}: {result}"))
            else:
                raise result
        for failure in failures:
            log.warning("istiod %s failed %s: %s", failure.istiod, request.type_url, failure.reason)
        if not answers:
            codes = {failure.code for failure in failures}
            code = codes.pop() if len(codes) == 1 and codes <= CALLER_CODES else grpc.StatusCode.UNAVAILABLE
            raise AggregationError(code, "no istiod answered: " + "; ".join(map(str, failures)), failures)
        if failures and self._settings.require_all:
            raise AggregationError(
                grpc.StatusCode.UNAVAILABLE,
                f"{len(failures)} of {len(links)} istiods failed (--require-all): " + "; ".join(map(str, failures)),
                failures,
            )
        sources = [(answer.istiod, answer.resource_count) for answer in in_merge_order(answers)]
        combined = merge(request, answers, self._settings.control_plane_id)
        raw = combined.raw
        if combined.disagreement:
            log.warning(combined.disagreement)
        if len(raw) > self._settings.max_message_bytes:
            # Each answer fits, their sum may not: refused here, gRPC would fail the send with a
            # traceback in our log and a bare "Sent message larger than max" for the user.
            raise AggregationError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the merged answer is {len(raw)} bytes, over --max-message-bytes {self._settings.max_message_bytes}: "
                "raise it, or ask for one proxy",
                failures,
            )
        identities = [
            (answer.istiod, answer.head.control_plane.identifier)
            for answer in in_merge_order(answers)
            if answer.head.control_plane.identifier
        ]
        return Merged(raw, failures, sources, combined.disagreement, identities)

    def _check_change(self, request: DiscoveryRequest, replicas: int) -> None:
        """A debug page that changes istiod (a push to every proxy, a cleared cache) is passed on only where allowed, and logged."""
        if request.type_url != DEBUG or not request.resource_names or not Page.of(request.resource_names[0]).changes_istiod:
            return
        page = request.resource_names[0]
        if not self._settings.allow_debug_changes:
            raise AggregationError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"debug page {page} changes istiod, and this aggregator does not pass such pages on: "
                "its operator can allow them with `serve --allow-debug-changes`",
            )
        log.warning("passing %s, which changes istiod, to %d replicas", page, replicas)


def trailing_metadata(
    failures: Sequence[UpstreamFailure], merged: Merged | None = None, disagreements: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    """One `x-istio-remote-failed` entry per failed replica; per answering one its resource count and
    identity; one entry per disagreement."""
    failed = [(FAILED_METADATA_KEY, _printable(str(failure))) for failure in failures]
    sourced = [(SOURCES_METADATA_KEY, _printable(f"{name}={count}")) for name, count in (merged.sources if merged else ())]
    named = [(IDENTITY_METADATA_KEY, _printable(f"{name}={identity}")) for name, identity in (merged.identities if merged else ())]
    return tuple(failed + sourced + named + [(DISAGREE_METADATA_KEY, _printable(text)) for text in disagreements])


def _printable(text: str) -> str:
    return "".join(char if " " <= char <= "~" else "?" for char in text)


class AggregatingDiscoveryService:
    """ADS, registered by hand so merged answers go out as the bytes they were merged into."""

    def __init__(self, fan_out: FanOut) -> None:
        self._fan_out = fan_out

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
        forwarded = [(key, value) for key, value in context.invocation_metadata() if key in FORWARDED_METADATA]
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
            try:
                merged = await self._fan_out.answer(request, forwarded)
            except AggregationError as error:
                await context.abort(error.code, str(error), trailing_metadata=trailing_metadata(failures + error.failures))
            failures += merged.failures
            disagreements += [merged.disagreement] if merged.disagreement else []
            context.set_trailing_metadata(trailing_metadata(failures, merged, disagreements))
            yield merged.raw

    async def delta(self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "DeltaAggregatedResources is not supported: use StreamAggregatedResources (state-of-the-world ADS) as istioctl does",
        )


class Aggregator:
    """The running server: replicas from a source, reached by a dialer, served on one address."""

    def __init__(self, settings: Settings, source: TargetSource, dialer: Dialer) -> None:
        self.settings = settings
        self._source = source
        tls = None if settings.istiod_plaintext else client_tls_context(settings.istiod_ca_file)
        self._pool = IstiodPool(dialer, tls, settings.channel_options, settings.connect_ahead)
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self.address = ""

    async def start(self) -> str:
        """Bind, find the replicas, then report SERVING; returns the bound HOST:PORT."""
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        server = grpc.aio.server(options=self.settings.channel_options)
        server.add_generic_rpc_handlers([AggregatingDiscoveryService(FanOut(self._pool, self._source, self.settings)).handler()])
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        host = self.settings.listen.rpartition(":")[0]
        if self.settings.serving_pair is None:
            port = server.add_insecure_port(self.settings.listen)
        else:
            port = server.add_secure_port(self.settings.listen, grpc.ssl_server_credentials([self.settings.serving_pair]))
        await server.start()
        self._server = server
        self.address = f"{host}:{port}"
        await self._source.start(self._pool.replace)
        for service in ("", ADS_SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self.address

    async def stop(self, grace: float) -> None:
        """Refuse new streams, give in-flight ones `grace` seconds, then drop every upstream link."""
        await self._health.enter_graceful_shutdown()
        self._source.stop()
        if self._server is not None:
            await self._server.stop(grace)
        await self._pool.close()


SHUTDOWN_GRACE_SECONDS = 5.0


async def serve_until_signalled(aggregator: Aggregator, console: Console) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight requests within the grace period; stdout carries one line."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = await aggregator.start()
    console.data(f"listening on {address}\n")
    await stop.wait()
    log.info("shutting down")
    await aggregator.stop(SHUTDOWN_GRACE_SECONDS)
