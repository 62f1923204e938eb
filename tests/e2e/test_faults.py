"""Real istiod replicas failing under a running mesh (stopped, paused, replaced by a server that
answers garbage), and several users at once (issue 6).

Every test puts each replica back as it found it, waiting until each sidecar is connected again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.istio import ISTIOD_PORT
from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS, leftovers
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox import clusters, mesh, procs

NATIVE_LOCAL = ["kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "local", "--native"]


def _restore(sandbox: Sandbox) -> None:
    """Restart stopped replicas, resume paused ones, wait for every sidecar to be back."""
    kubeconfig, mesh_config = clusters.context_kubeconfig("remote"), mesh.mesh_config()
    for index, address in enumerate(sandbox.istiods):
        name = f"istiod-{index}"
        if procs.is_running(name):
            os.killpg(procs.recorded_pid(name), signal.SIGCONT)
        else:
            mesh.start_istiod(index, address, kubeconfig, mesh_config)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = sandbox.run(*NATIVE_LOCAL)
        if result.returncode == 0 and listed_proxies(result.stdout) == set(sandbox.proxies) and "warning" not in result.stderr:
            return
        time.sleep(1)
    raise AssertionError("the sandbox's replicas did not come back: " + result.stderr)


class GarbageServer:
    """Takes a stopped replica's address: completes TLS as istiod would, then sends bytes that are not HTTP/2."""

    def __init__(self, address: str) -> None:
        key, certificate = self_signed_pair(["istiod.external-istiod.svc"], [address])
        with tempfile.TemporaryDirectory() as directory:
            paths = [os.path.join(directory, name) for name in ("key.pem", "cert.pem")]
            for path, pem in zip(paths, (key, certificate), strict=False):
                with open(path, "wb") as handle:
                    handle.write(pem)
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.set_alpn_protocols(["h2"])
            self._tls.load_cert_chain(paths[1], paths[0])
        self._listener = socket.create_server((address, ISTIOD_PORT))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            try:
                with self._tls.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"\xff" * 64 + b" this is not an HTTP/2 server preface")
            except OSError:
                pass  # the client gave up first

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()


@contextmanager
def faults(
    sandbox: Sandbox, *, stopped: tuple[int, ...] = (), paused: tuple[int, ...] = (), garbage: tuple[int, ...] = ()
) -> Iterator[None]:
    """Stop replicas (connections refused), pause them (accepted, never answered) or replace them with garbage."""
    impostors = []
    try:
        for index in (*stopped, *garbage):
            procs.stop(f"istiod-{index}")
        for index in paused:
            os.killpg(procs.recorded_pid(f"istiod-{index}"), signal.SIGSTOP)
        impostors = [GarbageServer(sandbox.istiods[index]) for index in garbage]
        yield
    finally:
        for impostor in impostors:
            impostor.close()
        _restore(sandbox)


def test_answer_comes_from_the_healthy_replica_and_names_the_failed_ones(sandbox: Sandbox) -> None:
    with faults(sandbox, stopped=(0,), paused=(1,)):
        started = time.monotonic()
        result = sandbox.run(*NATIVE_LOCAL)
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies_of(2)), result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: istiod")]
    assert any("istiod-0" in line for line in warnings) and any("istiod-1" in line and "deadline" in line for line in warnings), (
        result.stderr
    )
    assert elapsed < 60, f"the paused replica held the answer for {elapsed:.0f} s"


def test_a_replica_answering_garbage_is_named_and_the_others_answer(sandbox: Sandbox) -> None:
    with faults(sandbox, garbage=(1,)):
        result = sandbox.run(*NATIVE_LOCAL)
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies_of(0)) | set(sandbox.proxies_of(2)), result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: istiod")]
    assert len(warnings) == 1 and "istiod-1" in warnings[0], result.stderr
    assert [line for line in result.stderr.splitlines() if "istiod-1" in line] == warnings, "said once"
    assert "Traceback" not in result.stderr


def test_all_replicas_down_is_one_clear_unavailable_error(sandbox: Sandbox) -> None:
    with faults(sandbox, stopped=(0, 1, 2)):
        result = sandbox.run(*NATIVE_LOCAL)
    assert result.returncode == ExitStatus.UNAVAILABLE, result.stdout + result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and all(f"istiod-{i}" in error[0] for i in range(3)), result.stderr
    assert leftovers(sandbox) == []


def test_five_sessions_at_once_each_answer_and_leave_nothing(sandbox: Sandbox) -> None:
    runs = [
        subprocess.Popen(
            ["kubectl-istio_remote", "proxy-status", *CLUSTERS, "--native", "--mode", "pod"],
            env=sandbox.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outputs = [run.communicate(timeout=180) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=False):
        assert run.returncode == 0, stderr
        assert listed_proxies(stdout) == set(sandbox.proxies), stdout
    pods = {line.split()[2] for _, stderr in outputs for line in stderr.splitlines() if line.startswith("creating pod")}
    assert len(pods) == 5  # five distinct session names
    assert leftovers(sandbox) == []


def test_a_replica_on_another_mesh_config_is_shown_beside_the_others_and_said(sandbox: Sandbox, tmp_path: Path) -> None:
    """A split control plane is what internal-debug is for: `mesh` keyed by replica, and a warning naming the page."""
    drifted = tmp_path / "mesh-drifted.yaml"
    config = yaml.safe_load(mesh.mesh_config().read_text())
    drifted.write_text(yaml.safe_dump({**config, "defaultConfig": {**config["defaultConfig"], "concurrency": 7}}))
    procs.stop("istiod-1")
    mesh.start_istiod(1, sandbox.istiods[1], clusters.context_kubeconfig("remote"), drifted)
    try:
        procs.wait_until("istiod-1", lambda: procs.port_open(sandbox.istiods[1], ISTIOD_PORT), 60, process="istiod-1")
        argv = [
            "kubectl-istio_remote",
            "shell",
            *CLUSTERS,
            "--mode",
            "local",
            "--",
            "istioctl",
            "x",
            "internal-debug",
            "mesh",
            "--context",
            "remote",
        ]
        result = sandbox.run(*argv)
    finally:
        procs.stop("istiod-1")
        _restore(sandbox)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert sorted(document) == ["istiod-0", "istiod-1", "istiod-2"], result.stdout
    assert document["istiod-1"]["defaultConfig"]["concurrency"] == 7
    assert "concurrency" not in document["istiod-0"]["defaultConfig"]
    assert "warning: the istiod replicas disagree on mesh: answer keyed by replica (istiod-0, istiod-1, istiod-2)" in result.stderr


def test_version_remote_names_a_failed_replica_and_shows_the_others(sandbox: Sandbox) -> None:
    with faults(sandbox, stopped=(0,)):
        result = sandbox.run("kubectl-istio_remote", "version", "--remote", *CLUSTERS, "--mode", "local", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(row["name"] for row in report["controlPlane"]) == ["istiod-1", "istiod-2"]
    assert [failure.split(":")[0] for failure in report["failedIstiods"]] == ["istiod-0"]
    assert [line for line in result.stderr.splitlines() if line.startswith("warning: istiod istiod-0")], result.stderr


def test_remote_clusters_names_a_failed_replica_and_lists_the_others(sandbox: Sandbox) -> None:
    with faults(sandbox, stopped=(2,)):
        result = sandbox.run("kubectl-istio_remote", "remote-clusters", *CLUSTERS, "--mode", "local", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {row["istiod"] for row in document["clusters"]} == {"istiod-0", "istiod-1"}
    assert [failure.split(":")[0] for failure in document["failedIstiods"]] == ["istiod-2"]
    assert [line for line in result.stderr.splitlines() if line.startswith("warning: istiod istiod-2")], result.stderr
