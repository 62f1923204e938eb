"""What a kubeconfig makes a client send, recorded: a TLS stand-in API server, proxies in front of it, an exec plugin.

For the kubectl-oracle suite (tests/test_kubectl_oracle.py): the real kubectl and the plugin are
pointed at the same stand-ins with the same kubeconfig, and what each sent is compared. The API
server answers every request with an empty object (or a scripted status); it records method,
path, the headers that carry identity, and the client certificate's name. The proxies (http
CONNECT and absolute-URI, socks5) send every connection to the API server whatever its target,
and record the target and the credentials they were given.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import socketserver
import ssl
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.doubles.serving import serving
from tests.sandbox.pki import Authority

#: Names the stand-in's certificate is valid for: loopback, and names a proxy is used for (never resolved).
SERVER_NAMES = ("localhost", "apiserver.example", "kubernetes.internal")
SERVER_IPS = ("127.0.0.1", "198.51.100.7")
#: Headers that say who the request is from; compared between kubectl and the plugin.
IDENTITY_HEADERS = ("authorization", "impersonate-user", "impersonate-group", "impersonate-uid")


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    #: Identity headers (lowercased names, every value in order), and Impersonate-Extra-* ones.
    identity: tuple[tuple[str, str], ...]
    #: The client certificate's common name ("" without one).
    client: str


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Recorder:
    """A TLS API server on 127.0.0.1; `reply(seen)` may answer a request otherwise than `200 {}`."""

    authority: Authority
    seen: list[Seen] = field(default_factory=list)
    reply: Callable[[Seen], Reply | None] = lambda seen: None
    port: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[Recorder]:
        certificate, key = _server_pair(self.authority)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        context.load_verify_locations(self.authority.cert_path)
        context.verify_mode = ssl.CERT_OPTIONAL
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                client = next((value for entry in (peer or {}).get("subject", ()) for key, value in entry if key == "commonName"), "")
                identity = tuple(
                    sorted(
                        ((name.lower(), value) for name, value in self.headers.items()),
                        key=lambda header: header[0],  # by name only: repeated headers keep their order
                    )
                )
                identity = tuple(item for item in identity if item[0] in IDENTITY_HEADERS or item[0].startswith("impersonate-extra-"))
                seen = Seen(self.command, self.path, identity, client)
                recorder.seen.append(seen)
                status, headers, body = recorder.reply(seen) or (200, {"Content-Type": "application/json"}, b"{}")
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_port
        with serving(server):
            yield self


def _server_pair(authority: Authority) -> tuple[Path, Path]:
    """The stand-in's serving pair, for every name and address a case dials."""
    return authority.issue("apiserver", "apiserver.example", server=True, dns_names=SERVER_NAMES, ip_addresses=SERVER_IPS)


@dataclass
class Proxy:
    """An http proxy (CONNECT, and absolute-URI requests for http:// servers) or a socks5 one, leading to `upstream`."""

    kind: str
    upstream: int
    #: "user:password" it requires, "" to let everyone through.
    required: str = ""
    #: The target each connection asked for (host:port) and the credentials it gave ("" without).
    targets: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)
    port: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[Proxy]:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                connection: socket.socket = self.request
                connection.settimeout(10)
                if proxy.kind == "socks5":
                    proxy._socks(connection)
                else:
                    proxy._http(connection)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        with serving(server):
            yield self

    @property
    def url(self) -> str:
        auth = f"{self.required}@" if self.required else ""
        return f"{'socks5' if self.kind == 'socks5' else 'http'}://{auth}127.0.0.1:{self.port}"

    def _http(self, connection: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = connection.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}
        given = headers.get("proxy-authorization", "")
        self.targets.append(target if method == "CONNECT" else target.split("/")[2])
        self.credentials.append(base64.b64decode(given.split(" ", 1)[1]).decode() if given.startswith("Basic ") else given)
        if self.required and self.credentials[-1] != self.required:
            connection.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        if method == "CONNECT":
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            rest = head.split(b"\r\n\r\n", 1)[1]
        else:  # http:// through the proxy: the request as the server would have it
            path = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
            rest = head.replace(target.encode(), path.encode(), 1)
        if rest:
            upstream.sendall(rest)
        _pipe(connection, upstream)

    def _socks(self, connection: socket.socket) -> None:
        greeting = connection.recv(2)
        methods = connection.recv(greeting[1]) if len(greeting) == 2 else b""
        if b"\x02" in methods:
            connection.sendall(b"\x05\x02")
            auth = connection.recv(2)
            user = connection.recv(auth[1])
            password = connection.recv(connection.recv(1)[0])
            self.credentials.append(f"{user.decode()}:{password.decode()}")
            connection.sendall(b"\x01\x00")
        else:
            connection.sendall(b"\x05\x00")
            self.credentials.append("")
        request = connection.recv(4)
        if len(request) < 4:
            return
        if request[3] == 3:
            host = connection.recv(connection.recv(1)[0]).decode()
        elif request[3] == 1:
            host = socket.inet_ntoa(connection.recv(4))
        else:
            host = socket.inet_ntop(socket.AF_INET6, connection.recv(16))
        port = struct.unpack("!H", connection.recv(2))[0]
        self.targets.append(f"{host}:{port}")
        upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        connection.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", self.upstream))
        _pipe(connection, upstream)


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Bytes both ways until either side closes (bounded: each wait ends within 10 s of silence)."""
    try:
        while True:
            readable, _, _ = select.select([one, other], [], [], 10)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (other if source is one else one).sendall(data)
    except OSError:
        return
    finally:
        one.close()
        other.close()


EXEC_PLUGIN = """#!{python}
import json, os, sys
record, answers = os.environ["RECORD"], json.load(open(os.environ["ANSWERS"]))
with open(record, "a") as log:
    log.write(os.environ.get("KUBERNETES_EXEC_INFO", "") + "\\n")
count = sum(1 for _ in open(record))
answer = answers[min(count, len(answers)) - 1]
sys.stderr.write(answer.pop("stderr", ""))
if answer.pop("fail", False):
    sys.exit(1)
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": answer}}))
"""


@dataclass(frozen=True)
class ExecPlugin:
    """A credential plugin: its nth run answers the nth of `answers` (the last repeating); every run's
    KUBERNETES_EXEC_INFO is kept."""

    directory: Path

    def install(self, answers: list[dict]) -> dict:
        """Write the plugin; the kubeconfig user's `exec` entry that runs it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        script = self.directory / "credential-plugin"
        script.write_text(EXEC_PLUGIN.format(python=sys.executable))
        script.chmod(0o755)
        (self.directory / "answers.json").write_text(json.dumps(answers))
        (self.directory / "runs").write_text("")
        env = [
            {"name": "RECORD", "value": str(self.directory / "runs")},
            {"name": "ANSWERS", "value": str(self.directory / "answers.json")},
        ]
        return {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script), "env": env, "interactiveMode": "Never"}

    def runs(self) -> list[dict]:
        return [json.loads(line) if line.strip() else {} for line in (self.directory / "runs").read_text().splitlines()]
