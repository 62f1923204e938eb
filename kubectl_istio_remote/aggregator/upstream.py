"""The aggregator's side facing istiod: one gRPC channel per replica, reached through a pluggable dialer.

Each replica gets a small relay on 127.0.0.1 that the gRPC channel connects to in plaintext; the
relay opens the byte stream with a `Dialer` (a TCP connection to the pod IP, or a Kubernetes
port-forward from a laptop) and adds TLS itself. grpcio cannot skip certificate verification,
which istioctl does by default against istiod, and it cannot dial through a port-forward; the
relay does both with the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.message import DecodeError

from kubectl_istio_remote.aggregator.merge import Answer

log = logging.getLogger(__name__)

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
CONNECT_TIMEOUT_SECONDS = 5.0
RELAY_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class IstiodTarget:
    """Where one istiod replica is: its name (pod name or address), host, port and TLS authority."""

    name: str
    host: str
    port: int
    authority: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Dialer(Protocol):
    """Opens a byte stream to an istiod replica; TLS, if any, is added on top by the caller."""

    async def open(self, target: IstiodTarget) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


class TcpDialer:
    """Dials the replica's address directly: pod IPs from inside the cluster, or plain addresses."""

    async def open(self, target: IstiodTarget) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(target.host, target.port)


def istiod_authority(namespace: str, revision: str = "") -> str:
    """The DNS name in istiod's serving certificate, as istioctl expects it."""
    service = f"istiod-{revision}" if revision and revision != "default" else "istiod"
    return f"{service}.{namespace}.svc"


def client_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS towards istiod: verified against `ca_file` when given, otherwise unverified like istioctl."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not ca_file:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


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
        target: IstiodTarget,
        dialer: Dialer,
        tls: ssl.SSLContext | None,
        channel_options: Sequence[tuple[str, int | str]],
    ) -> None:
        self.target = target
        self._dialer = dialer
        self._tls = tls
        self._channel_options = list(channel_options)
        self._relay: asyncio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stream: grpc.aio.StreamStreamMultiCallable | None = None
        self._last_dial_error = ""
        self._pipes: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._relay = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._relay.sockets[0].getsockname()[1]
        options = [*self._channel_options, ("grpc.default_authority", self.target.authority)]
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
        self._stream = self._channel.stream_stream(
            ADS_METHOD, request_serializer=DiscoveryRequest.SerializeToString, response_deserializer=bytes
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        if self._relay is not None:
            self._relay.close()
        for pipe in list(self._pipes):
            pipe.cancel()

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
        elif error.code() is grpc.StatusCode.UNAVAILABLE and self._last_dial_error:
            reason = f"UNAVAILABLE: {self._last_dial_error}"
        return UpstreamFailure(self.target.name, reason, error.code())

    async def _accept(self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter) -> None:
        try:
            remote_reader, remote_writer = await asyncio.wait_for(self._dialer.open(self.target), CONNECT_TIMEOUT_SECONDS)
            if self._tls is not None:
                await asyncio.wait_for(
                    remote_writer.start_tls(self._tls, server_hostname=self.target.authority), CONNECT_TIMEOUT_SECONDS
                )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as error:
            self._last_dial_error = f"cannot reach {self.target.address}: {error or type(error).__name__}"
            log.debug("%s: %s", self.target.name, self._last_dial_error)
            local_writer.close()
            return
        self._last_dial_error = ""
        pipes = [asyncio.create_task(_pipe(local_reader, remote_writer)), asyncio.create_task(_pipe(remote_reader, local_writer))]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes)
        except asyncio.CancelledError:
            pass  # the link is closing; ending quietly keeps asyncio from logging a cancelled handler
        finally:
            self._pipes.difference_update(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(RELAY_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


class IstiodPool:
    """The current set of replicas; discovery replaces it, requests read a snapshot of it."""

    def __init__(self, dialer: Dialer, tls: ssl.SSLContext | None, channel_options: Sequence[tuple[str, int | str]]) -> None:
        self._dialer = dialer
        self._tls = tls
        self._channel_options = channel_options
        self._links: dict[IstiodTarget, IstiodLink] = {}
        self._lock = asyncio.Lock()

    def links(self) -> list[IstiodLink]:
        return list(self._links.values())

    async def replace(self, targets: Iterable[IstiodTarget]) -> None:
        """Open links to new replicas and close links to replicas that are gone."""
        wanted = set(targets)
        async with self._lock:
            for target in [t for t in self._links if t not in wanted]:
                log.info("istiod %s (%s) left", target.name, target.address)
                await self._links.pop(target).close()
            for target in sorted(wanted - set(self._links), key=lambda t: t.name):
                link = IstiodLink(target, self._dialer, self._tls, self._channel_options)
                await link.start()
                self._links[target] = link
                log.info("istiod %s at %s", target.name, target.address)

    async def close(self) -> None:
        await self.replace(())
