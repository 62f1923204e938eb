"""`serve` in front of real istiod replicas, used by the real istioctl (the aggregator issue)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_sandbox_proof import listed_proxies

PLUGIN = [sys.executable, "-m", "kubectl_istio_remote"]


@contextmanager
def running_serve(sandbox: Sandbox, plaintext: bool, plugin: list[str] = PLUGIN) -> Iterator[tuple[str, list[str]]]:
    """A serve process asking every replica, discovered as pods in the external cluster."""
    argv = [*plugin, "serve", "--context", "external", "--discover", "--namespace", sandbox.istio_namespace]
    argv += ["--plaintext", "--istiod-plaintext", "--istiod-port", "15010"] if plaintext else []
    process = subprocess.Popen(
        argv,
        env=sandbox.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on "), process.stderr.read() if process.poll() is not None else line
        istioctl_flags = ["--plaintext"] if plaintext else []
        yield line.split()[-1], istioctl_flags
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def serve(sandbox: Sandbox) -> Iterator[tuple[str, list[str]]]:
    """istioctl's default transport: TLS and a bearer token, which serve forwards to each istiod."""
    with running_serve(sandbox, plaintext=False) as running:
        yield running


def _istioctl(sandbox: Sandbox, address: str, flags: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "istioctl",
        *args,
        "--context",
        "remote",
        "--istioNamespace",
        sandbox.istio_namespace,
        *flags,
        extra_env={"ISTIOCTL_XDS_ADDRESS": address},
    )


@pytest.mark.parametrize("command", [["proxy-status"], ["x", "proxy-status"]], ids=["proxy-status", "x-proxy-status"])
def test_istioctl_through_serve_lists_every_proxy_of_every_replica(sandbox: Sandbox, serve, command: list[str]) -> None:
    address, flags = serve
    result = _istioctl(sandbox, address, flags, *command, "-v", "1")
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
    # Every proxy's states come through intact from whichever replica holds it (CDS, EDS, LDS, RDS).
    assert all(line.count("SYNCED") == 4 for line in result.stdout.splitlines()[1:]), result.stdout


def test_istioctl_proxy_status_of_one_pod_works_whichever_replica_holds_it(sandbox: Sandbox, serve) -> None:
    address, flags = serve
    for replica in range(len(sandbox.istiods)):
        pod = sandbox.proxies_of(replica)[0]
        result = _istioctl(sandbox, address, flags, "x", "proxy-status", pod)
        assert result.returncode == 0, f"{pod}: {result.stderr}"
        # istioctl compares istiod's config for this proxy with the proxy's own config dump: only the
        # answer of the replica the proxy is connected to matches it.
        assert "Clusters Match" in result.stdout and "Listeners Match" in result.stdout and "Routes Match" in result.stdout, result.stdout


def test_plaintext_istioctl_gets_istiods_own_refusal(sandbox: Sandbox) -> None:
    """istiod serves debug data only to authenticated callers; `--plaintext` carries no token.

    Both hops in plaintext (istioctl -> serve -> istiod:15010) reach every replica, and the user
    sees istiod's own reason and code rather than a partial or empty table.
    """
    with running_serve(sandbox, plaintext=True) as (address, flags):
        result = _istioctl(sandbox, address, flags, "proxy-status")
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr and "authentication required" in result.stderr, result.stderr
    assert all(f"istiod-{i}" in result.stderr for i in range(len(sandbox.istiods))), result.stderr


def test_the_frozen_build_serves_istioctl_every_proxy_of_the_real_istiods(sandbox: Sandbox, archive: Path, tmp_path: Path) -> None:
    """The krew archive's executable, which is also what the image runs: the Kubernetes client's
    list and watch, TLS both ways and the merge work when frozen, against the real peers."""
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="tar")
    with running_serve(sandbox, plaintext=False, plugin=[str(tmp_path / "kubectl-istio_remote")]) as (address, flags):
        result = _istioctl(sandbox, address, flags, "proxy-status")
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
