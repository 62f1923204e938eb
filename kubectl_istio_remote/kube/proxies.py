"""Which proxy a connection to an API server goes through, decided once per cluster, as client-go decides it.

A cluster's `proxy-url` is used for every connection (NO_PROXY does not apply to it; http, https
and socks5, as client-go allows). Otherwise Go's rules for the environment
(golang.org/x/net/http/httpproxy): `https_proxy`/`HTTPS_PROXY` for an https server, `http_proxy`/
`HTTP_PROXY` for an http one (lower case first), never for localhost or a loopback address, and
not for a host NO_PROXY names: `*`, an IP, a CIDR, a domain (`example.com` and `.example.com`
and `*.example.com` match its subdomains, the first one itself too), each optionally with a port.
ALL_PROXY is not Go's: it is ignored. Requests and port-forwards share the decision.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.machine import verifying_context

SCHEMES = ("http", "https", "socks5")
ENV_SCHEMES = (*SCHEMES, "socks5h")
DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
CONNECT_REPLY_BYTES = 65536


class ProxyError(OSError):
    """The proxy refused the tunnel, or is not one: said with the proxy's address, never its credentials."""


@dataclass(frozen=True)
class Route:
    """Direct, or through one proxy (its URL, credentials included, kept out of every message)."""

    proxy: str | None = None
    #: Where the proxy came from, for messages: "proxy-url" or "HTTPS_PROXY".
    source: str = ""

    @property
    def described(self) -> str:
        """The proxy without its credentials ("" when direct)."""
        if not self.proxy:
            return ""
        url = urlsplit(self.proxy)
        return f"{url.scheme}://{url.hostname}:{url.port or DEFAULT_PORTS[url.scheme]}"

    def open(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP stream to host:port, through the proxy if there is one."""
        if not self.proxy:
            return socket.create_connection((host, port), timeout=timeout)
        url = urlsplit(self.proxy)
        if url.scheme in ("socks5", "socks5h"):
            from python_socks import ProxyError as SocksError
            from python_socks.sync import Proxy

            try:
                tunnel = Proxy.from_url(self.proxy, rdns=True).connect(host, port, timeout=timeout)
            except SocksError as error:
                raise ProxyError(f"the proxy {self.described} ({self.source}) refused the connection: {error}") from None
            return tunnel
        return self._connect_tunnel(url, host, port, timeout)

    def _connect_tunnel(self, url: SplitResult, host: str, port: int, timeout: float) -> socket.socket:
        """HTTP CONNECT, over TLS to the proxy for an https:// one, with the URL's credentials as Basic."""
        raw = socket.create_connection((url.hostname or "", url.port or DEFAULT_PORTS[url.scheme]), timeout=timeout)
        connection: socket.socket = raw
        try:
            if url.scheme == "https":
                connection = verifying_context().wrap_socket(raw, server_hostname=url.hostname)
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
            if url.username is not None:
                secret = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
                lines.append(f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}")
            connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = connection.recv(1)  # byte by byte: what follows the reply is the server's, not ours to read
                if not chunk or len(reply) > CONNECT_REPLY_BYTES:
                    raise ProxyError(f"the proxy {self.described} ({self.source}) closed the connection before answering CONNECT")
                reply += chunk
            status = reply.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if len(status) < 2 or status[1] != "200":
                raise ProxyError(f"the proxy {self.described} ({self.source}) refused the tunnel: {' '.join(status[1:])}")
        except BaseException:
            connection.close()
            raise
        return connection


def route(server: SplitResult, proxy_url: str | None, environ: Mapping[str, str] = os.environ) -> Route:
    """How connections to `server` go: its cluster's proxy-url, else the environment's proxy unless it does not apply."""
    if proxy_url:
        parsed = urlsplit(proxy_url)
        if parsed.scheme not in SCHEMES or not parsed.hostname:
            raise UserError(
                f"invalid 'proxy-url' {proxy_url!r}: unsupported scheme {parsed.scheme!r}, must be http, https, or socks5",
                "fix the cluster's proxy-url in your kubeconfig",
            )
        return Route(proxy_url, "proxy-url")
    scheme = server.scheme
    names = ("https_proxy", "HTTPS_PROXY") if scheme == "https" else ("http_proxy", "HTTP_PROXY")
    source, configured = next(((name, environ[name]) for name in names if environ.get(name)), ("", ""))
    if not configured or not _use_proxy(server.hostname or "", server.port or DEFAULT_PORTS[scheme], environ):
        return Route()
    parsed = urlsplit(configured if "://" in configured else f"http://{configured}")
    if parsed.scheme not in ENV_SCHEMES or not parsed.hostname:
        raise UserError(f"{source} {configured!r} is not a proxy URL Go can use (http, https, socks5)", f"fix {source}, or unset it")
    return Route(parsed.geturl(), source)


def _use_proxy(host: str, port: int, environ: Mapping[str, str]) -> bool:
    host = host.lower().strip("[]")
    if host == "localhost":
        return False
    address = _address(host)
    if address is not None and address.is_loopback:
        return False
    for entry in (environ.get("no_proxy") or environ.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return False
        if "/" in entry:
            if address is not None and _in_network(address, entry):
                return False
            continue
        name, wanted_port = _split_port(entry)
        if not name or wanted_port not in ("", str(port)):
            continue
        entry_address = _address(name)
        if entry_address is not None:
            if address is not None and entry_address == address:
                return False
        elif address is None and _domain_matches(name, host):
            return False
    return True


def _in_network(address: ipaddress.IPv4Address | ipaddress.IPv6Address, cidr: str) -> bool:
    try:
        return address in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _domain_matches(entry: str, host: str) -> bool:
    """`foo.com` matches foo.com and its subdomains; `.foo.com` and `*.foo.com` only its subdomains."""
    if entry.startswith("*."):
        entry = entry[1:]
    if entry.startswith("."):
        return host.endswith(entry)
    return host == entry or host.endswith("." + entry)


def _split_port(entry: str) -> tuple[str, str]:
    """(host, port) of `host:port`, `[v6]:port`, or a bare host or IPv6 address (port "")."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest.removeprefix(":")
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, port
    return entry, ""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
