"""The aggregator's side facing istiod: one gRPC channel per replica, reached through a pluggable dialer.

Each replica's channel goes through a `Relay` that opens the byte stream with a `Dialer` (a TCP
connection to the pod IP, or a Kubernetes port-forward from a laptop) and adds TLS itself; gRPC
Python cannot skip certificate checks as istioctl does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Sequence

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.message import DecodeError

from kubectl_istio_remote.aggregator.load import ReplicaQueue
from kubectl_istio_remote.aggregator.merge import Answer
from kubectl_istio_remote.relay import Dialer, Relay, Target

log = logging.getLogger(__name__)

#: How long a new link tries to connect ahead of the first request; a request still dials on its own afterwards.
WARM_UP_SECONDS = 10.0
ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class UpstreamFailure(Exception):
    """One replica did not give a usable answer; the message names the reason, never the token."""

    def __init__(self, istiod: str, reason: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        super().__init__(f"{istiod}: {reason}")
        self.istiod = istiod
        self.reason = reason
        self.code = code


class IstiodLink:
    """A long-lived channel to one replica, so each request costs one stream, not one connection."""

    def __init__(
        self,
        target: Target,
        dialer: Dialer,
        tls: ssl.SSLContext | None,
        channel_options: Sequence[tuple[str, int | str]],
        max_in_flight: int | None = None,
    ) -> None:
        self.target = target
        #: Our requests waiting for and at this replica: at most `max_in_flight` at it.
        self.queue = ReplicaQueue(max_in_flight)
        self._channel_options = list(channel_options)
        self._relay = Relay(target, dialer, tls)
        self._channel: grpc.aio.Channel | None = None
        self._stream: grpc.aio.StreamStreamMultiCallable | None = None
        self._warming: asyncio.Task | None = None

    async def start(self, connect_ahead: bool = False) -> None:
        address = await self._relay.start()
        options = [*self._channel_options, ("grpc.default_authority", self.target.authority)]
        self._channel = grpc.aio.insecure_channel(address, options=options)
        self._stream = self._channel.stream_stream(
            ADS_METHOD, request_serializer=DiscoveryRequest.SerializeToString, response_deserializer=bytes
        )
        if connect_ahead:
            # Connect now, not at the first request: the dial (a port-forward from a laptop), TLS and
            # HTTP/2 set-up then happen while istioctl is still starting.
            self._warming = asyncio.ensure_future(self._warm(self._channel))

    @staticmethod
    async def _warm(channel: grpc.aio.Channel) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(channel.channel_ready(), WARM_UP_SECONDS)

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
        if self._channel is not None:
            await self._channel.close()
        await self._relay.close()

    async def ask(self, request: DiscoveryRequest, metadata: Sequence[tuple[str, str]], timeout: float) -> Answer:
        """Send `request` on a fresh stream and return the first response of the same type.

        The raw bytes are what the merged answer is made of, so resources are never re-encoded,
        and the parsed copy is reduced to its head at once, so it does not outlive this call.
        """
        assert self._stream is not None, "start() first"
        call = self._stream(metadata=tuple(metadata), timeout=timeout)
        try:
            await call.write(request)
            while True:
                raw = await call.read()
                if raw is grpc.aio.EOF:
                    raise UpstreamFailure(self.target.name, "stream ended before an answer")
                try:
                    response = DiscoveryResponse.FromString(raw)
                except DecodeError:
                    raise UpstreamFailure(self.target.name, "answer is not a DiscoveryResponse", grpc.StatusCode.INTERNAL) from None
                if response.type_url == request.type_url:
                    return Answer.of(self.target.name, raw, response)
        except grpc.aio.AioRpcError as error:
            raise self._failure(error) from None
        finally:
            call.cancel()

    def _failure(self, error: grpc.aio.AioRpcError) -> UpstreamFailure:
        reason = f"{error.code().name}: {error.details()}"
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            reason = "no answer before the deadline (--istiod-timeout)"
        elif error.code() is grpc.StatusCode.UNAVAILABLE and self._relay.last_error:
            reason = f"UNAVAILABLE: {self._relay.last_error}"
        return UpstreamFailure(self.target.name, reason, error.code())


class IstiodPool:
    """The current set of replicas; discovery replaces it, requests read a snapshot of it."""

    def __init__(
        self,
        dialer: Dialer,
        tls: ssl.SSLContext | None,
        channel_options: Sequence[tuple[str, int | str]],
        connect_ahead: bool = False,
        max_in_flight: int | None = None,
    ) -> None:
        self._connect_ahead = connect_ahead
        self._max_in_flight = max_in_flight
        self._dialer = dialer
        self._tls = tls
        self._channel_options = channel_options
        self._links: dict[Target, IstiodLink] = {}
        self._lock = asyncio.Lock()

    def links(self) -> list[IstiodLink]:
        return list(self._links.values())

    async def replace(self, targets: Iterable[Target]) -> None:
        """Open links to new replicas and close links to replicas that are gone."""
        wanted = set(targets)
        async with self._lock:
            for target in [t for t in self._links if t not in wanted]:
                log.info("istiod %s (%s) left", target.name, target.address)
                await self._links.pop(target).close()
            for target in sorted(wanted - set(self._links), key=lambda t: t.name):
                link = IstiodLink(target, self._dialer, self._tls, self._channel_options, self._max_in_flight)
                await link.start(self._connect_ahead)
                self._links[target] = link
                log.info("istiod %s at %s", target.name, target.address)

    async def close(self) -> None:
        await self.replace(())
