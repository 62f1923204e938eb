"""Baseline for the volume benchmark: an ADS relay that forwards bytes from one upstream undecoded.

Usage: python bench/passthrough_relay.py UPSTREAM_HOST:PORT  (prints `listening on HOST:PORT`)
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc

METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


async def main(upstream: str) -> None:
    channel = grpc.aio.insecure_channel(upstream, options=UNLIMITED)
    forward = channel.stream_stream(METHOD, request_serializer=bytes, response_deserializer=bytes)

    async def relay(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for request in requests:
            call = forward()
            await call.write(request)
            yield await call.read()
            call.cancel()

    server = grpc.aio.server(options=UNLIMITED)
    handler = grpc.stream_stream_rpc_method_handler(relay, request_deserializer=bytes, response_serializer=bytes)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "envoy.service.discovery.v3.AggregatedDiscoveryService", {"StreamAggregatedResources": handler}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
