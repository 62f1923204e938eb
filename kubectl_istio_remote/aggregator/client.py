"""A one-request ADS client, as istioctl's, that also reads the aggregator's list of failed replicas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from kubectl_istio_remote.aggregator.server import FAILED_METADATA_KEY


@dataclass(frozen=True)
class Replies:
    """One response per request sent, and "istiod: reason" for every replica that failed one of them."""

    responses: list[DiscoveryResponse]
    failed: list[str]


@dataclass(frozen=True)
class Connection:
    """How to reach an aggregator: plaintext, or TLS trusting `root_certificates` for `server_name`."""

    address: str
    root_certificates: bytes | None = None
    server_name: str = "localhost"
    token: str | None = None

    def channel(self) -> grpc.aio.Channel:
        options = [("grpc.max_receive_message_length", -1)]
        if self.root_certificates is None:
            return grpc.aio.insecure_channel(self.address, options=options)
        credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificates)
        return grpc.aio.secure_channel(
            self.address, credentials, options=[*options, ("grpc.ssl_target_name_override", self.server_name)]
        )


async def ask(connection: Connection, requests: Sequence[DiscoveryRequest], timeout: float = 30.0) -> Replies:
    """Send `requests` on one stream and half-close it, so the server ends it and its trailers arrive."""
    metadata = (("authorization", f"Bearer {connection.token}"),) if connection.token else ()
    async with connection.channel() as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(metadata=metadata, timeout=timeout)
        for request in requests:
            await call.write(request)
        await call.done_writing()
        responses = []
        while (response := await call.read()) is not grpc.aio.EOF:
            responses.append(response)
        failed = [value for key, value in (await call.trailing_metadata() or ()) if key == FAILED_METADATA_KEY]
    return Replies(responses, failed)
