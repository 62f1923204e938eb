"""One API server's HTTP: kept-alive connections, the credential on each request, the port-forward websocket.

The standard library's http.client and ssl carry the requests, websocket-client the port-forward's
websocket. The official Kubernetes client's transport would do the same work, but its package
imports pydantic, urllib3, requests and oauthlib before it sends anything: 0.25 s of CPU, a third
of a command (bench/RESULTS.md, issue 11).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.kube.kubeconfig import Endpoint

if TYPE_CHECKING:
    from websocket import WebSocket

Timeout = float | tuple[float, float | None]
#: Idle connections kept per API server: as many as the widest concurrent round (the pre-flight's reviews).
IDLE_CONNECTIONS = 24
#: A kept-alive connection the server has closed meanwhile fails like this; the request is sent once more on a new one.
STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.BadStatusLine)


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS that checks the certificate for the kubeconfig's tls-server-name when it has one."""

    def __init__(self, host: str, port: int, *, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


class Transport:
    """Requests to one API server, thread-safe: each takes an idle connection or opens one, and gives it back."""

    def __init__(self, endpoint: Endpoint, user_agent: str) -> None:
        self.endpoint = endpoint
        self.user_agent = user_agent
        url = urlsplit(endpoint.server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise UserError(f"the server {endpoint.server!r} is not an http(s) URL", "check the cluster's server in your kubeconfig")
        self._secure = url.scheme == "https"
        self._host, self._port = url.hostname, url.port or (443 if self._secure else 80)
        self._netloc, self._prefix = url.netloc, url.path.rstrip("/")
        self._proxy = _proxy(endpoint.proxy, url.scheme, url.hostname)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.endpoint.server

    def headers(self, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """Every header of a request, in order: Impersonate-Group may come several times, so pairs, not a dict."""
        authorization = self.endpoint.credential.authorization()
        sent = [("User-Agent", self.user_agent), *([("Authorization", authorization)] if authorization else [])]
        return [*sent, *self.endpoint.impersonation, *(extra or {}).items()]

    def request(
        self, method: str, path: str, query: Sequence[tuple[str, str]], headers: dict[str, str], body: bytes | None, timeout: Timeout
    ) -> tuple[int, str, bytes]:
        """Status, reason and body; OSError or http.client.HTTPException when no answer came."""
        target, sent = self._target(path, query), self.headers(headers)
        connection, reused = self._take(timeout)
        try:
            return self._exchange(connection, method, target, sent, body)
        except STALE:
            if not reused:
                raise
        connection, _ = self._take(timeout, fresh=True)
        return self._exchange(connection, method, target, sent, body)

    def _exchange(
        self, connection: http.client.HTTPConnection, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, str, bytes]:
        """One request and its whole answer; the connection is kept for the next request, or closed."""
        try:
            _send(connection, method, target, headers, body)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        self._give(connection, response)
        return response.status, response.reason, data

    @contextlib.contextmanager
    def stream(
        self, path: str, query: Sequence[tuple[str, str]], headers: dict[str, str], timeout: Timeout
    ) -> Iterator[http.client.HTTPResponse]:
        """A GET whose body is read as it comes (a watch); its connection is closed afterwards."""
        connection, _ = self._take(timeout, fresh=True)
        try:
            _send(connection, "GET", self._target(path, query), self.headers(headers), None)
            yield connection.getresponse()
        finally:
            connection.close()

    def websocket(self, path: str, query: Sequence[tuple[str, str]], subprotocols: list[str], timeout: float) -> WebSocket:
        """A connected websocket (a port-forward's): the same TLS, server name, proxy and credential as the requests."""
        import websocket

        sslopt = {"context": self.endpoint.tls, "server_hostname": self.endpoint.server_name or self._host} if self._secure else {}
        options: dict[str, object] = {"subprotocols": subprotocols, "timeout": timeout, "suppress_origin": True}
        options["header"] = [f"{name}: {value}" for name, value in self.headers()]
        if self._proxy:
            options.update(http_proxy_host=self._proxy[0], http_proxy_port=self._proxy[1], proxy_type="http")
        socket = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True)
        url = f"{'wss' if self._secure else 'ws'}://{self._netloc}{self._target(path, query)}"
        socket.connect(url, **options)
        assert socket.sock is not None
        socket.sock.settimeout(None)
        return socket

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _target(self, path: str, query: Sequence[tuple[str, str]]) -> str:
        return quote(self._prefix + path) + (f"?{urlencode(list(query))}" if query else "")

    def _take(self, timeout: Timeout, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        connect_seconds, read_seconds = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        with self._lock:
            connection = None if fresh or not self._idle else self._idle.pop()
        reused = connection is not None
        if connection is None:
            connection = self._open(connect_seconds)
            connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read_seconds)
        return connection, reused

    def _open(self, connect_seconds: float) -> http.client.HTTPConnection:
        host, port = self._proxy or (self._host, self._port)
        connection: http.client.HTTPConnection
        if self._secure:
            assert self.endpoint.tls is not None
            name = self.endpoint.server_name or self._host
            connection = _TLSConnection(host, port, server_name=name, context=self.endpoint.tls, timeout=connect_seconds)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_seconds)
        if self._proxy:
            connection.set_tunnel(self._host, self._port)
        return connection

    def _give(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        with self._lock:
            if not response.will_close and len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()


def _send(connection: http.client.HTTPConnection, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None) -> None:
    """A request with every header line as given (http.client's `request` takes a dict, one line per name)."""
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in [*headers, *([("Content-Length", str(len(body)))] if body is not None else [])]:
        connection.putheader(name, value)
    connection.endheaders(body)


def _proxy(configured: str | None, scheme: str, host: str) -> tuple[str, int] | None:
    """The kubeconfig's proxy-url, else HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names the host, as kubectl does."""
    if not configured and any(name.lower() in (f"{scheme}_proxy", "all_proxy") for name in os.environ):
        import urllib.request

        if not urllib.request.proxy_bypass(host):
            proxies = urllib.request.getproxies_environment()
            configured = proxies.get(scheme) or proxies.get("all")
    if not configured:
        return None
    url = urlsplit(configured if "://" in configured else f"http://{configured}")
    if url.scheme != "http" or not url.hostname:
        raise UserError(
            f"proxy {configured!r} is not supported: only http proxies are", "set proxy-url (or HTTPS_PROXY) to an http:// proxy"
        )
    return url.hostname, url.port or 80
