"""Whatever kubeconfig a user has and whatever an API server answers, a failure is one line, a non-zero exit
code, and no secret: hypothesis writes the kubeconfigs (lists as mappings, numbers as names, files that
are not there, data that is not base64, credentials of every kind beside each other) and the answers
(any status, HTML, truncated or mis-shaped JSON), and the CLI runs in-process as a user runs it.

A secret is a value only a credential holds (token, password, key data): it must not appear in any
output, not even inside a message that quotes the kubeconfig.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli_runner import Result, run_cli
from tests.doubles.serving import serving

SECRET = "S3CRET-7f1c2d"
#: Fails fast: local mode (no pod), the answer printed natively (no istioctl), each request given 2 s.
COMMAND = ("proxy-status", "--native", "--mode", "local", "--request-timeout", "2s", "--timeout", "3", "-i", "istio-system")

#: Values anywhere; the secret only where a credential goes (a context name that happens to be it may be printed).
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12))
anything = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6
)


def servers(url: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(url),
        st.sampled_from(["", "https://", "HTTPS://127.0.0.1:1", "127.0.0.1:99999", "https://[::1", "ftp://x", "https://127.0.0.1:0/x"]),
        anything,
    )


def clusters(url: str) -> st.SearchStrategy[Any]:
    entry = st.fixed_dictionaries(
        {"server": servers(url)},
        optional={
            "certificate-authority": st.sampled_from(["/nonexistent/ca.crt", "relative/ca.crt"]) | anything,
            "certificate-authority-data": st.sampled_from(["not base64!", "TUlJ"]) | anything,
            "insecure-skip-tls-verify": st.booleans() | anything,
            "proxy-url": st.sampled_from(["http://127.0.0.1:1", "socks5://127.0.0.1:1", "gopher://x", ":::"]) | anything,
            "tls-server-name": anything,
        },
    )
    return entry | anything


users = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "token": st.sampled_from([SECRET, SECRET + "\n", f" {SECRET} "]) | anything,
            "tokenFile": st.sampled_from(["/nonexistent/token", "token"]) | anything,
            "username": st.sampled_from(["admin"]) | anything,
            "password": st.just(SECRET),
            "client-certificate-data": st.sampled_from(["not base64!", SECRET]) | anything,
            "client-key-data": st.just(SECRET),
            "client-certificate": st.sampled_from(["/nonexistent/c.crt"]) | anything,
            "as": anything,
            "as-groups": anything,
            "exec": st.fixed_dictionaries(
                {"command": st.sampled_from(["/nonexistent/plugin", "false", "true"]) | anything},
                optional={"apiVersion": anything, "args": anything, "env": anything, "interactiveMode": anything},
            )
            | anything,
            "auth-provider": anything,
        },
    ),
    anything,
)


def documents(url: str) -> st.SearchStrategy[Any]:
    named = st.fixed_dictionaries(
        {
            "clusters": st.lists(st.fixed_dictionaries({"name": st.just("c") | anything, "cluster": clusters(url)}), max_size=2) | anything,
            "users": st.lists(st.fixed_dictionaries({"name": st.just("u") | anything, "user": users}), max_size=2) | anything,
            "contexts": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.just("ctx") | anything,
                        "context": st.fixed_dictionaries({"cluster": st.just("c"), "user": st.just("u")}) | anything,
                    }
                ),
                max_size=2,
            )
            | anything,
            "current-context": st.just("ctx") | anything,
        },
        optional={"apiVersion": anything, "kind": anything, "preferences": anything},
    )
    return named | anything


class Answers:
    """What the stand-in API server answers every request with, set per example."""

    status = 500
    content_type = "application/json"
    body = b"{}"


@contextmanager
def answering() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(Answers.status)
            self.send_header("Content-Type", Answers.content_type)
            self.send_header("Content-Length", str(len(Answers.body)))
            self.end_headers()
            self.wfile.write(Answers.body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server):
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with answering() as address:
        yield address


def assert_one_line_failure(result: Result) -> None:
    output = result.stdout + result.stderr
    assert SECRET not in output, output
    assert "Traceback" not in output, output
    assert result.exit_code != 0, output
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr


def run_with(document: Any, monkeypatch: pytest.MonkeyPatch) -> Result:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config"
        path.write_text(json.dumps(document))
        (Path(directory) / "token").write_bytes(b"\xff\xfe" + SECRET.encode())
        monkeypatch.chdir(directory)
        return run_cli(*COMMAND, "--kubeconfig", str(path))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_kubeconfig_fails_in_one_line_without_its_secrets(url: str, monkeypatch: pytest.MonkeyPatch, data: st.DataObject) -> None:
    Answers.status, Answers.content_type, Answers.body = 403, "application/json", json.dumps({"kind": "Status", "code": 403}).encode()
    assert_one_line_failure(run_with(data.draw(documents(url)), monkeypatch))


bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"<html><body>Sign in</body></html>", b'{"kind": "PodList", "items": 3}', b'{"kind": "Status"', b"[]", b"null"]),
    anything.map(lambda value: json.dumps(value).encode()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503]),
    content_type=st.sampled_from(["application/json", "text/html", ""]),
    body=bodies,
)
def test_any_answer_fails_in_one_line_without_the_token(
    url: str, monkeypatch: pytest.MonkeyPatch, status: int, content_type: str, body: bytes
) -> None:
    Answers.status, Answers.content_type, Answers.body = status, content_type, body
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": url}}],
        "users": [{"name": "u", "user": {"token": SECRET}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    assert_one_line_failure(run_with(document, monkeypatch))
