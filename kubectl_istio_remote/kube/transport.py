"""One API server's HTTP: kept-alive connections, the credential on each request, the port-forward websocket.

The standard library's http.client and ssl carry the requests, websocket-client the port-forward's
websocket; both take their connections from `Endpoint.route` (the proxy decided once for the
cluster) and the same TLS. As Go's http.Client under client-go: a request on a kept-alive
connection the server had closed is sent again only when nothing of it can have reached the server
or it is a GET; a redirect to the same server is followed (up to 10); a 401 has an exec plugin run
again for the next request. The official Kubernetes client's transport would do the same work,
but its package imports pydantic, urllib3, requests and oauthlib before it sends anything: 0.25 s
of CPU, a third of a command (bench/RESULTS.md, issue 11).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from kubectl_istio_remote.kube.kubeconfig import Endpoint

if TYPE_CHECKING:
    from websocket import WebSocket

Timeout = float | tuple[float, float | None]
Headers = list[tuple[str, str | bytes]]
#: Idle connections kept per API server: as many as the widest concurrent round (the pre-flight's reviews).
IDLE_CONNECTIONS = 24
#: A kept-alive connection the server has closed meanwhile fails like this.
STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.BadStatusLine)
#: Sent again after a stale connection even if the server may have read them (Go's isReplayable).
REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MOST_REDIRECTS = 10

log = logging.getLogger(__name__)


class RedirectError(OSError):
    """A redirect the plugin does not follow: to another server (it would carry the credential there), or too many."""


class _Connection(http.client.HTTPConnection):
    """HTTP(S) over a stream the route opens (direct or through the proxy), TLS checked for the endpoint's server name."""

    def __init__(self, endpoint: Endpoint, host: str, port: int, secure: bool, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._endpoint, self._secure = endpoint, secure
        #: The TLS context it was made with: a plugin's renewed client certificate retires it.
        self.tls: ssl.SSLContext | None = endpoint.tls() if secure else None

    def connect(self) -> None:
        self.sock = open_stream(self._endpoint, self.host, self.port, self._secure, self.timeout, self.tls)


def open_stream(endpoint: Endpoint, host: str, port: int, secure: bool, timeout: float | None, tls: ssl.SSLContext | None) -> socket.socket:
    """A connected stream to the API server: through the route, then TLS when `secure`."""
    raw = endpoint.route.open(host, port, timeout or 30.0)
    if not secure:
        return raw
    try:
        return (tls or endpoint.tls()).wrap_socket(raw, server_hostname=endpoint.server_name or host)
    except BaseException:
        raw.close()
        raise


class Transport:
    """Requests to one API server, thread-safe: each takes an idle connection or opens one, and gives it back."""

    def __init__(self, endpoint: Endpoint, user_agent: str) -> None:
        self.endpoint = endpoint
        self.user_agent = user_agent
        url = urlsplit(endpoint.server)
        self._secure = url.scheme == "https"
        self._host, self._port = url.hostname or "", url.port or (443 if self._secure else 80)
        self._netloc, self._prefix = url.netloc, url.path.rstrip("/")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        #: The API server's warnings already said.
        self._warned: set[str] = set()

    @property
    def host(self) -> str:
        return self.endpoint.server

    def headers(self, extra: dict[str, str] | None = None) -> Headers:
        """Every header of a request, in order: Impersonate-Group may come several times, so pairs, not a dict."""
        authorization = self.endpoint.credential.authorization()
        sent: Headers = [("User-Agent", self.user_agent), *([("Authorization", authorization)] if authorization else [])]
        return [*sent, *self.endpoint.impersonation, *(extra or {}).items()]

    def request(
        self, method: str, path: str, query: Sequence[tuple[str, str]], headers: dict[str, str], body: bytes | None, timeout: Timeout
    ) -> tuple[int, str, bytes]:
        """Status, reason and body, redirects on the same server followed; OSError or http.client.HTTPException when no answer came."""
        target = self._target(path, query)
        for _ in range(MOST_REDIRECTS + 1):
            sent = self.headers(headers)
            status, reason, data, location = self._once(method, target, sent, body, self._timeout(timeout))
            if status == 401:
                self.endpoint.credential.unauthorized(dict(sent).get("Authorization"))  # type: ignore[arg-type]
            if status not in REDIRECTS or not location:
                return status, reason, data
            target = self._redirected(location)
            if status in (301, 302, 303) and method != "HEAD":
                method, body = "GET", None
        raise RedirectError(f"the API server redirected more than {MOST_REDIRECTS} times")

    def _once(self, method: str, target: str, headers: Headers, body: bytes | None, timeout: Timeout) -> tuple[int, str, bytes, str | None]:
        connection, reused = self._take(timeout)
        try:
            return self._exchange(connection, method, target, headers, body)
        except _NothingSent:
            pass  # a connection the server closed meanwhile: nothing of the request reached it
        except STALE:
            if not reused or method not in REPLAYABLE:
                raise
        connection, _ = self._take(timeout, fresh=True)
        return self._exchange(connection, method, target, headers, body)

    def _exchange(
        self, connection: _Connection, method: str, target: str, headers: Headers, body: bytes | None
    ) -> tuple[int, str, bytes, str | None]:
        """One request and its whole answer; the connection is kept for the next request, or closed."""
        try:
            try:
                _send(connection, method, target, headers, body)
            except STALE as error:
                raise _NothingSent() from error
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        self._say_warnings(response.msg.get_all("Warning") or [])
        self._give(connection, response)
        return response.status, response.reason, data, response.getheader("Location")

    def _say_warnings(self, headers: list[str]) -> None:
        """The API server's warnings (a deprecated API, a PodSecurity violation), each once, as kubectl prints them."""
        for header in headers:
            for text in WARNING_VALUE.findall(header):
                text = re.sub(r"\\(.)", r"\1", text)
                if text not in self._warned:
                    self._warned.add(text)
                    log.warning("%s", text)

    def _redirected(self, location: str) -> str:
        """The path of a redirect on the same server; another server would be handed the credential, so it is not followed."""
        url = urlsplit(location)
        if url.netloc and (url.hostname, url.port or self._port) != (self._host, self._port):
            raise RedirectError(f"the API server redirected to another server ({url.scheme}://{url.netloc}): not followed")
        return (url.path or "/") + (f"?{url.query}" if url.query else "")

    def _timeout(self, timeout: Timeout) -> Timeout:
        return self.endpoint.request_seconds or timeout

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
        """A connected websocket (a port-forward's): the same route, TLS, server name and credential as the requests."""
        import websocket

        stream = open_stream(self.endpoint, self._host, self._port, self._secure, timeout, None)
        options: dict[str, object] = {"subprotocols": subprotocols, "timeout": timeout, "suppress_origin": True, "socket": stream}
        options["header"] = [f"{name}: {value.decode('latin-1') if isinstance(value, bytes) else value}" for name, value in self.headers()]
        socket_ = websocket.WebSocket(skip_utf8_validation=True)
        url = f"{'wss' if self._secure else 'ws'}://{self._netloc}{self._target(path, query)}"
        try:
            socket_.connect(url, **options)
        except BaseException:
            stream.close()
            raise
        assert socket_.sock is not None
        socket_.sock.settimeout(None)
        return socket_

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _target(self, path: str, query: Sequence[tuple[str, str]]) -> str:
        return quote(self._prefix + path) + (f"?{urlencode(list(query))}" if query else "")

    def _take(self, timeout: Timeout, *, fresh: bool = False) -> tuple[_Connection, bool]:
        connect_seconds, read_seconds = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        current = self.endpoint.tls() if self._secure else None
        with self._lock:
            if current is not None and any(idle.tls is not current for idle in self._idle):
                retired = [idle for idle in self._idle if idle.tls is not current]  # an exec plugin renewed the client certificate
                self._idle = [idle for idle in self._idle if idle.tls is current]
                for connection in retired:
                    connection.close()
            idle = None if fresh or not self._idle else self._idle.pop()
        connection = idle or _Connection(self.endpoint, self._host, self._port, self._secure, connect_seconds)
        if idle is None:
            connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read_seconds)
        return connection, idle is not None

    def _give(self, connection: _Connection, response: http.client.HTTPResponse) -> None:
        with self._lock:
            if not response.will_close and len(self._idle) < IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()


class _NothingSent(Exception):
    """The request could not be written at all: safe to send again on a new connection, whatever its method."""


def _send(connection: http.client.HTTPConnection, method: str, target: str, headers: Headers, body: bytes | None) -> None:
    """A request with every header line as given (http.client's `request` takes a dict, one line per name)."""
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in [*headers, *([("Content-Length", str(len(body)))] if body is not None else [])]:
        connection.putheader(name, value)
    connection.endheaders(body)


#: RFC 7234's warning-value, as the API server writes it: `299 - "text"` (client-go's ParseWarningHeaders).
WARNING_VALUE = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')
