"""istioctl's calls to a shared aggregator, passed on with the mesh cluster's Istio cluster ID added.

istiod reviews a token in the cluster its caller names (gRPC metadata `clusterid`), else in its
config cluster. istioctl names none, and the byte relay cannot add a header inside TLS; for a mesh
cluster other than istiod's config cluster this pass-through ends istioctl's gRPC on loopback
(TLS with a certificate made for this run, unverified as istioctl takes it) and passes every call
on, as bytes, over one channel to the aggregator verified as the advertisement says, with the
token and the cluster ID. Status, details and trailers come back unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.istio import CLUSTER_ID_METADATA, MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection

OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]


class ClusterNamingProxy(grpc.GenericRpcHandler):
    def __init__(self, upstream: Connection, cluster_id: str) -> None:
        self._upstream = upstream
        self._cluster_id = cluster_id
        self._stack = contextlib.AsyncExitStack()
        self._channel: grpc.aio.Channel | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> str:
        """Listen on a free loopback port; return HOST:PORT for istioctl."""
        self._channel = await self._stack.enter_async_context(self._upstream.channel())
        key, certificate = self_signed_pair(["localhost"], ["127.0.0.1"])
        self._server = grpc.aio.server(options=OPTIONS)
        self._server.add_generic_rpc_handlers([self])
        port = self._server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, certificate)]))
        await self._server.start()
        return f"127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
        await self._stack.aclose()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        """Every method, unary ones too (the health check): on the wire each is a stream of messages either way."""
        method = str(handler_call_details.method)

        async def pass_on(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            async for response in self._pass_on(method, requests, context):
                yield response

        return grpc.stream_stream_rpc_method_handler(pass_on)

    async def _pass_on(self, method: str, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        assert self._channel is not None
        metadata = [(key, value) for key, value in context.invocation_metadata() or () if key == "authorization"]
        call = self._channel.stream_stream(method)(
            metadata=(*metadata, (CLUSTER_ID_METADATA, self._cluster_id)), timeout=context.time_remaining()
        )

        async def write_all() -> None:
            async for request in requests:
                await call.write(request)
            await call.done_writing()

        writing = asyncio.ensure_future(write_all())
        try:
            async for response in call:
                yield response
            context.set_trailing_metadata(tuple(await call.trailing_metadata() or ()))
        except grpc.aio.AioRpcError as error:
            context.set_trailing_metadata(tuple(error.trailing_metadata() or ()))
            await context.abort(error.code(), error.details() or "")
        finally:
            writing.cancel()
