"""A one-request ADS client, as istioctl's, that also reads what the aggregator says in its trailers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from kubectl_istio_remote.aggregator.trailers import DISAGREE_METADATA_KEY, FAILED_METADATA_KEY, IDENTITY_METADATA_KEY, SOURCES_METADATA_KEY
from kubectl_istio_remote.istio import CLUSTER_ID_METADATA
from kubectl_istio_remote.relay import Relay, Target, TcpDialer, client_tls_context


@dataclass(frozen=True)
class Replies:
    """One response per request sent, every replica that failed, and which replica sent which resources."""

    responses: list[DiscoveryResponse]
    #: "istiod: reason" for every replica that failed a request.
    failed: list[str]
    #: (istiod, resource count) in the order of the last merged response's resources.
    sources: list[tuple[str, int]]
    #: Global debug pages the replicas answered differently (each answer then keyed by replica).
    disagreements: list[str] = field(default_factory=list)
    #: Each answering replica's control-plane identifier (JSON: Component, ID, Info with version and revision).
    identities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """How to reach an aggregator: plaintext, TLS verified (against `root_certificates`, else the system's roots), or TLS
    unverified (a session's aggregator, whose certificate is made in memory at its start)."""

    address: str
    tls: bool = True
    root_certificates: bytes | None = None
    #: The name verified against the certificate, and sent as SNI.
    server_name: str = "localhost"
    token: str | None = None
    #: Verify against the system's roots when `root_certificates` is None (a publicly signed shared aggregator).
    verify: bool = False
    #: The mesh cluster's Istio cluster ID, sent with the token ("": istiod's config cluster, or the aggregator's default).
    cluster_id: str = ""

    @contextlib.asynccontextmanager
    async def channel(self) -> AsyncIterator[grpc.aio.Channel]:
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        relay = None
        if not self.tls:
            channel = grpc.aio.insecure_channel(self.address, options=options)
        elif self.root_certificates is not None or self.verify:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificates)
            channel = grpc.aio.secure_channel(
                self.address, credentials, options=[*options, ("grpc.ssl_target_name_override", self.server_name)]
            )
        else:  # unverified, as istioctl
            host, _, port = self.address.rpartition(":")
            relay = Relay(Target(self.address, host, int(port), self.server_name), TcpDialer(), client_tls_context(None))
            channel = grpc.aio.insecure_channel(await relay.start(), options=options)
        try:
            async with channel:
                yield channel
        finally:
            if relay is not None:
                await relay.close()


async def ask(connection: Connection, requests: Sequence[DiscoveryRequest], timeout: float = 30.0) -> Replies:
    """Send `requests` on one stream and half-close it, so the server ends it and its trailers arrive."""
    metadata = [("authorization", f"Bearer {connection.token}")] if connection.token else []
    metadata += [(CLUSTER_ID_METADATA, connection.cluster_id)] if connection.cluster_id else []
    async with connection.channel() as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(metadata=tuple(metadata), timeout=timeout)
        for request in requests:
            await call.write(request)
        await call.done_writing()
        responses = []
        while (response := await call.read()) is not grpc.aio.EOF:
            responses.append(response)
        trailers = list(await call.trailing_metadata() or ())
    failed = [value for key, value in trailers if key == FAILED_METADATA_KEY]
    sources = [value.rpartition("=") for key, value in trailers if key == SOURCES_METADATA_KEY]
    disagreements = [value for key, value in trailers if key == DISAGREE_METADATA_KEY]
    identities = dict(value.split("=", 1) for key, value in trailers if key == IDENTITY_METADATA_KEY)
    return Replies(responses, failed, [(name, int(count)) for name, _, count in sources], disagreements, identities)


async def check_health(connection: Connection, timeout: float) -> bool:
    """True when the server's health service reports SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with connection.channel() as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    return reply.status == health_pb2.HealthCheckResponse.SERVING
