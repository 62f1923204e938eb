"""The kubeconfig read as kubectl reads it: merged files, relative paths, exec plugins, TLS, proxies."""

from __future__ import annotations

import base64
import json
import select
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.kube.api_errors import UnreachableError
from kubectl_istio_remote.kube.cluster import Cluster, pin_clusters, transport_for
from kubectl_istio_remote.kube.kinds import POD
from kubectl_istio_remote.kube.overrides import ConnectionFlags
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli
from tests.doubles.apiserver import Answer, Script, stand_in

PODS = POD.path("ns")


def write_kubeconfig(
    path: Path,
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, tuple[str, str]],
    current: str = "",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster} for name, cluster in clusters.items()],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": cluster, "user": user}} for name, (cluster, user) in contexts.items()],
        **({"current-context": current} if current else {}),
    }
    path.write_text(json.dumps(document))
    return path


def pods_script() -> Script:
    script = Script()
    script.on("GET", PODS, Answer(200, {"kind": "PodList", "items": []}))
    return script


def test_kubeconfig_files_merge_as_kubectl_merges_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG's first file wins each name and sets the current context; a missing file is skipped; tokenFile is relative to its file."""
    script = pods_script()
    with stand_in(script) as url:
        (tmp_path / "a" / "token").parent.mkdir()
        (tmp_path / "a" / "token").write_text("from-a\n")
        first = write_kubeconfig(tmp_path / "a" / "config", {"c": {"server": url}}, {"u": {"tokenFile": "token"}}, {"a": ("c", "u")}, "a")
        second = write_kubeconfig(
            tmp_path / "b" / "config",
            {"c": {"server": "http://127.0.0.1:9"}},
            {"u2": {"token": "from-b"}},
            {"a": ("c", "u2"), "b": ("c", "u2")},
            "b",
        )
        monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
        mesh, external = pin_clusters(ConnectionFlags(), "b")
        mesh.list_objects(POD, "ns")
        external.list_objects(POD, "ns")
    assert (mesh.context, external.context) == ("a", "b")
    assert script.credentials == ["Bearer from-a", "Bearer from-b"]


def test_an_exec_plugins_token_is_sent_and_asked_for_again_once_it_expires(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    count, info = tmp_path / "count", tmp_path / "info.json"
    plugin.write_text(
        "#!/bin/sh\n"
        f"n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}\n"
        f'echo "$KUBERNETES_EXEC_INFO" > {info}\n'
        'if [ "$n" = 1 ]; then expires=2000-01-01T00:00:00Z; else expires=2999-01-01T00:00:00Z; fi\n'
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        '"status":{"token":"t%s","expirationTimestamp":"%s"}}\' "$n" "$expires"\n'
    )
    plugin.chmod(0o755)
    script = pods_script()
    with stand_in(script) as url:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "./plugin",
                "provideClusterInfo": True,
                "interactiveMode": "Never",
            }
        }
        path = write_kubeconfig(tmp_path / "config", {"c": {"server": url}}, {"u": user}, {"cloud": ("c", "u")}, "cloud")
        cluster = Cluster("cloud", str(path), transport_for(str(path)))
        for _ in range(2):
            cluster.list_objects(POD, "ns")
        sent_info = json.loads(info.read_text())
    assert script.credentials == ["Bearer t2", "Bearer t2"], "the expired first token is never sent"
    assert count.read_text().strip() == "2"
    assert sent_info["spec"] == {"interactive": False, "cluster": {"server": url}}


def test_a_credential_plugin_that_is_not_installed_says_how_to_install_it(tmp_path: Path) -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "mycloud-login",
            "interactiveMode": "IfAvailable",
            "installHint": "Install mycloud:\n  https://mycloud.example/cli",
        }
    }
    path = write_kubeconfig(tmp_path / "config", {"c": {"server": "http://127.0.0.1:9"}}, {"u": user}, {"cloud": ("c", "u")}, "cloud")
    result = run_cli("proxy-status", "--kubeconfig", str(path), "-i", "istio-system")
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.splitlines() == [
        "error: the credential plugin of context cloud failed: cannot run mycloud-login: No such file or directory; "
        "Install mycloud: https://mycloud.example/cli"
    ]


def server_tls(certificate: bytes, key: bytes, client_authority: bytes | None = None) -> ssl.SSLContext:
    """A server's TLS with this pair; with `client_authority`, clients must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile() as pair:
        pair.write(key + certificate)
        pair.flush()
        context.load_cert_chain(pair.name)
    if client_authority is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_authority.decode())
    return context


def test_tls_checks_the_server_for_its_tls_server_name_and_presents_the_client_certificate(tmp_path: Path) -> None:
    server_key, server_certificate = self_signed_pair(["kube.internal"], [])
    client_key, client_certificate = self_signed_pair(["limited-user"], [])

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    script = pods_script()
    with stand_in(script, server_tls(server_certificate, server_key, client_certificate)) as url:
        authority = {"server": url, "certificate-authority-data": b64(server_certificate)}
        path = write_kubeconfig(
            tmp_path / "config",
            {"named": {**authority, "tls-server-name": "kube.internal"}, "unnamed": authority},
            {"u": {"client-certificate-data": b64(client_certificate), "client-key-data": b64(client_key)}},
            {"named": ("named", "u"), "unnamed": ("unnamed", "u")},
        )
        assert Cluster("named", str(path), transport_for(str(path), "named")).list_objects(POD, "ns")["kind"] == "PodList"
        with pytest.raises(UnreachableError, match="certificate verify failed: IP address mismatch"):
            Cluster("unnamed", str(path), transport_for(str(path), "unnamed")).list_objects(POD, "ns")
    assert len(script.requests) == 1


@contextmanager
def connect_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP CONNECT proxy on 127.0.0.1 that records each tunnel's target."""
    targets: list[str] = []

    class Tunnel(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                head += self.request.recv(4096) or b"\r\n\r\n"
            target = head.split()[1].decode()
            targets.append(target)
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                for _ in range(10_000):
                    readable, _, _ = select.select([self.request, upstream], [], [], 10)
                    chunks = [(sock, sock.recv(65536)) for sock in readable]
                    if not readable or any(not data for _, data in chunks):
                        return
                    for sock, data in chunks:
                        (upstream if sock is self.request else self.request).sendall(data)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", targets
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_requests_go_through_the_clusters_proxy_url(tmp_path: Path) -> None:
    script = pods_script()
    with stand_in(script) as url, connect_proxy() as (proxy, targets):
        path = write_kubeconfig(
            tmp_path / "config", {"c": {"server": url, "proxy-url": proxy}}, {"u": {"token": "t"}}, {"x": ("c", "u")}, "x"
        )
        Cluster("x", str(path), transport_for(str(path))).list_objects(POD, "ns")
    assert targets == [url.removeprefix("http://")]
    assert len(script.requests) == 1


def test_a_legacy_oidc_auth_provider_sends_its_id_token_through_the_official_loader(tmp_path: Path) -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    id_token = f"{part({'alg': 'none'})}.{part({'iss': 'https://issuer.example', 'exp': 32503680000})}.signature"
    provider = {"name": "oidc", "config": {"client-id": "kubectl", "id-token": id_token, "idp-issuer-url": "https://issuer.example"}}
    script = pods_script()
    with stand_in(script) as url:
        path = write_kubeconfig(tmp_path / "config", {"c": {"server": url}}, {"u": {"auth-provider": provider}}, {"x": ("c", "u")}, "x")
        Cluster("x", str(path), transport_for(str(path))).list_objects(POD, "ns")
    assert script.credentials == [f"Bearer {id_token}"]
