"""A stand-in kube-apiserver on 127.0.0.1 (plain HTTP) that answers from a script: for fast unit tests of our
Kubernetes adapter. Each (method, path) gets the next of its scripted answers, the last one repeating; a
scripted path may hold `*` for a name not known in advance (a session's pod), and a query (`?*labelSelector=*`) to
answer one list apart from another; every request is recorded.
The real kube-apiserver is what the sandbox runs.
"""

from __future__ import annotations

import fnmatch
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubectl_istio_remote.kube.cluster import Cluster, transport_for
from tests.doubles.serving import serving


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    #: Extra response headers, in order (a header may come twice, as the API server's Warning does).
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def refusal(cls, status: int, message: str) -> Answer:
        return cls(status, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": status})


@dataclass
class Script:
    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    #: The Authorization header of each request, in order.
    credentials: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.answers[(method, path)] = list(answers)

    def sent(self, method: str, pattern: str = "*") -> list[str]:
        """The paths (without query) of the requests of `method` matching `pattern`, in order."""
        with self.lock:
            paths = [path.split("?")[0] for verb, path, _ in self.requests if verb == method]
        return [path for path in paths if fnmatch.fnmatchcase(path, pattern)]

    def next(self, method: str, path: str, body: Any, credential: str) -> Answer:
        with self.lock:
            self.requests.append((method, path, body))
            self.credentials.append(credential)
            bare = path.split("?")[0]
            queue = next(
                (
                    queue
                    for (verb, pattern), queue in sorted(self.answers.items(), key=lambda item: "?" not in item[0][1])
                    if verb == method and fnmatch.fnmatchcase(path if "?" in pattern else bare, pattern)
                ),
                None,
            )
            if not queue:
                return Answer.refusal(404, f"no script for {method} {path}")
            return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            answer = script.next(self.command, self.path, body, self.headers.get("Authorization", ""))
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    #: A client that reconnects at once (a watch the stand-in ends after one event) must not meet a full backlog.
    request_queue_size = 128
    daemon_threads = True


@contextmanager
def stand_in(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A scripted API server on a free 127.0.0.1 port, over TLS when given a context; yields its URL."""
    server = _Server(("127.0.0.1", 0), _handler(script))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"


@contextmanager
def apiserver(tmp_path: Path, context: str = "stand-in") -> Iterator[tuple[Cluster, Script]]:
    """A Cluster pinned to a scripted API server, and the script; the server is stopped afterwards."""
    script = Script()
    with stand_in(script) as url:
        kubeconfig = tmp_path / f"{context}.kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": url}}],
                    "users": [{"name": "u", "user": {"token": "stand-in-token"}}],
                    "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                    "current-context": context,
                }
            )
        )
        yield Cluster(context, str(kubeconfig), transport_for(str(kubeconfig), context)), script
