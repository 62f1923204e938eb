"""serve's certificate from files, renewed under it as the kubelet renews a Secret volume (an atomic `..data` swap).

What an operator notices: a renewed certificate is served to new connections without a restart,
calls in flight finish on their connection, and a broken pair (half written, or a key of another
certificate) keeps the certificate that works and says why in the log, once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path

import pytest

from kubectl_istio_remote.aggregator import tls
from tests.doubles.mesh import Mesh, proxy_ids, replicas, syncz
from tests.sandbox.pki import Authority
from tests.sandbox.volumes import write_atomically

NAME = "aggregator.example"


def served(mesh: Mesh) -> bytes:
    """The certificate a new connection is handed (DER)."""
    assert mesh.connection is not None
    host, _, port = mesh.connection.address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(raw) as wrapped:
        certificate = wrapped.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def der(pem_file: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_file.read_text())


async def until_served(mesh: Mesh, expected: bytes, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while await asyncio.to_thread(served, mesh) != expected:
        assert loop.time() < deadline, "the renewed certificate was not served"
        await asyncio.sleep(0.05)


@pytest.fixture
def issued(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    authority = Authority(tmp_path / "ca")
    return {label: authority.issue(label, NAME, server=True, dns_names=(NAME,)) for label in ("first", "renewed", "third")}


def mount(volume: Path, certificate: Path | bytes, key: Path | bytes) -> None:
    """What the kubelet does when the Secret changes."""
    data = [item if isinstance(item, bytes) else item.read_bytes() for item in (certificate, key)]
    write_atomically(volume, {"tls.crt": data[0], "tls.key": data[1]})


async def test_a_renewed_secret_is_served_to_new_connections_and_calls_in_flight_finish(
    mesh_factory, issued: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls, "ROTATION_POLL_SECONDS", 0.1)
    volume = tmp_path / "volume"
    mount(volume, *issued["first"])
    gate = asyncio.Event()
    mesh = await mesh_factory(replicas(2, gate=gate), serving_files=(str(volume / "tls.crt"), str(volume / "tls.key")))
    assert served(mesh) == der(issued["first"][0])
    in_flight = asyncio.ensure_future(mesh.ask(syncz()))
    await asyncio.sleep(0.3)
    mount(volume, *issued["renewed"])
    await until_served(mesh, der(issued["renewed"][0]))
    gate.set()
    assert sorted(proxy_ids(await in_flight)) == sorted(proxy for istiod in mesh.istiods for proxy in istiod.proxies)


@pytest.mark.parametrize("broken", ["half-written", "another key"])
async def test_a_broken_pair_keeps_the_certificate_served_and_says_why_once(
    mesh_factory,
    issued: dict[str, tuple[Path, Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    monkeypatch.setattr(tls, "ROTATION_POLL_SECONDS", 0.1)
    volume = tmp_path / "volume"
    mount(volume, *issued["first"])
    mesh = await mesh_factory(replicas(1), serving_files=(str(volume / "tls.crt"), str(volume / "tls.key")))
    certificate, key = issued["renewed"]
    if broken == "half-written":
        mount(volume, certificate.read_bytes()[: len(certificate.read_bytes()) // 2], key)
    else:
        mount(volume, certificate, issued["third"][1])
    with caplog.at_level(logging.WARNING, logger="kubectl_istio_remote"):
        await asyncio.sleep(0.6)  # several checks
    assert served(mesh) == der(issued["first"][0])
    kept = [record.getMessage() for record in caplog.records if "kept the serving certificate" in record.getMessage()]
    assert len(kept) == 1, kept
    reason = "holds no PEM certificate" if broken == "half-written" else "is not the key of the certificate"
    assert reason in kept[0] and "valid until" in kept[0]
    mount(volume, *issued["third"])
    await until_served(mesh, der(issued["third"][0]))
    assert proxy_ids(await mesh.ask(syncz())) == mesh.istiods[0].proxies


def test_serve_refuses_a_broken_pair_at_start_in_one_line(issued: dict[str, tuple[Path, Path]]) -> None:
    from tests.cli_runner import run_cli

    certificate, _ = issued["first"]
    _, other_key = issued["third"]
    result = run_cli("serve", "--istiod-address", "127.0.0.1:1", "--tls-cert", str(certificate), "--tls-key", str(other_key))
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: the key in {other_key} is not the key of the certificate in {certificate}; check --tls-cert and --tls-key\n"
    )
