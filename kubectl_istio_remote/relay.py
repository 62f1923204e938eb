"""Byte relays on 127.0.0.1: how gRPC reaches what it cannot dial itself.

A relay accepts local connections and joins each to a fresh byte stream from a `Dialer` (a TCP
connection, or a Kubernetes port-forward stream), adding TLS on the far side when asked. grpcio
can neither dial through a port-forward nor skip certificate verification (which istioctl does
towards istiod); a plaintext channel to a relay does both with the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from dataclasses import dataclass
from typing import Protocol

from kubectl_istio_remote.machine import verifying_context

log = logging.getLogger(__name__)

#: Longer than a request's own deadline (--istiod-timeout): a replica that accepts but never answers
#: is reported by that deadline, even when its connection was opened ahead of the request.
CONNECT_TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Target:
    """Something to reach: a name for messages, host and port, the TLS authority, and the pod's namespace if it is one."""

    name: str
    host: str
    port: int
    authority: str = ""
    namespace: str = ""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Dialer(Protocol):
    """Opens a byte stream to a target; TLS, if any, is added on top by the relay."""

    @property
    def last_error(self) -> str:
        """Why a stream it opened ended early, when the far side said so ("" when nothing was said)."""
        ...

    async def open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


class TcpDialer:
    """Dials the target's address directly: pod IPs from inside the cluster, or plain addresses."""

    @property
    def last_error(self) -> str:
        return ""  # a TCP connection that ends says nothing more

    async def open(self, target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(target.host, target.port)


def client_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Client TLS for gRPC: verified against `ca_file` when given, otherwise unverified like istioctl."""
    context = verifying_context(cafile=ca_file) if ca_file else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not ca_file:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context


def verified_tls(ca_pem: str) -> ssl.SSLContext:
    """Client TLS for gRPC, verified against `ca_pem` (PEM; "" for the system's roots) as grpc's own TLS would verify it."""
    context = verifying_context(cadata=ca_pem or None)
    context.set_alpn_protocols(["h2"])
    return context


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, server_hostname: str | None) -> None:
    """TLS over an open stream (a port-forward's, a proxy's), in place: StreamWriter.start_tls, which Python 3.10 lacks."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context, server_hostname=server_hostname)
        return
    # What 3.11's StreamWriter.start_tls does: the loop's start_tls, then the writer and its protocol on the new transport.
    protocol = writer.transport.get_protocol()
    await writer.drain()
    transport = await asyncio.get_running_loop().start_tls(writer.transport, protocol, context, server_hostname=server_hostname)
    writer._transport = transport  # type: ignore[attr-defined]
    protocol._transport = transport  # type: ignore[attr-defined]
    protocol._over_ssl = True  # type: ignore[attr-defined]


class Relay:
    """Listens on 127.0.0.1 and joins every accepted connection to a new stream to `target`."""

    def __init__(self, target: Target, dialer: Dialer, tls: ssl.SSLContext | None = None, port: int = 0, keep_spare: bool = False) -> None:
        self.target = target
        self._dialer = dialer
        self._tls = tls
        self._port = port
        #: Open the next stream as soon as one has worked, so the next connection need not wait for
        #: a dial (a port-forward's websocket costs three round trips to the API server).
        self._keep_spare = keep_spare
        self._spare: asyncio.Future[Stream] | None = None
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()
        #: Why the last connection could not be made, "" once one succeeds: errors name the real cause.
        self.last_error = ""
        self.address = ""

    async def start(self, *, dial_ahead: bool = False, serve_tls: ssl.SSLContext | None = None) -> str:
        """Listen; `dial_ahead`: open the first stream now, its handshakes overlapping whatever runs before it is used.
        `serve_tls`: TLS on the near side too, for a client that sends its token only over TLS (istioctl)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port, ssl=serve_tls)
        if dial_ahead:
            self._spare = asyncio.ensure_future(self._dial())
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.cancel()
            if spare.done() and not spare.cancelled() and spare.exception() is None:
                spare.result()[1].close()

    async def _dial(self) -> Stream:
        remote_reader, remote_writer = await asyncio.wait_for(self._dialer.open(self.target), CONNECT_TIMEOUT_SECONDS)
        if self._tls is not None:
            await asyncio.wait_for(start_tls(remote_writer, self._tls, self.target.authority or None), CONNECT_TIMEOUT_SECONDS)
        return remote_reader, remote_writer

    async def _connect(self) -> Stream:
        """The spare stream if one is ready and still open, else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                reader, writer = await spare
                if not writer.is_closing() and not reader.at_eof():
                    return reader, writer
                writer.close()
            except Exception:  # noqa: BLE001 - a spare that failed is no loss: dial afresh
                pass
        return await self._dial()

    async def _accept(self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter) -> None:
        try:
            remote_reader, remote_writer = await self._connect()
        except Exception as error:  # noqa: BLE001 - any dialer's failure: close this connection, keep the reason
            self.last_error = f"cannot reach {self.target.name}: {str(error).strip() or type(error).__name__}"
            log.debug(self.last_error)
            local_writer.close()
            return
        self.last_error = ""
        if self._keep_spare and self._spare is None:
            self._spare = asyncio.ensure_future(self._dial())
        pipes = [asyncio.create_task(_pipe(local_reader, remote_writer)), asyncio.create_task(_pipe(remote_reader, local_writer))]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes)
        except asyncio.CancelledError:
            pass  # the relay is closing; ending quietly keeps asyncio from logging a cancelled handler
        finally:
            self._pipes.difference_update(pipes)
        self.last_error = self._dialer.last_error or self.last_error


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def free_port() -> int:
    """A free port on 127.0.0.1 for a listener that must be known before it starts (a tunnel's local end)."""
    import portpicker

    return int(portpicker.pick_unused_port())
