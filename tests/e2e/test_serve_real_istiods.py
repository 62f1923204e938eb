"""`serve` in front of real istiod replicas, used by the real istioctl (the aggregator issue)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_sandbox_proof import listed_proxies


@pytest.fixture(scope="module", params=["tls", "plaintext"])
def serve(request: pytest.FixtureRequest, sandbox: Sandbox) -> Iterator[tuple[str, list[str]]]:
    """A serve process asking every replica, discovered as pods in the external cluster."""
    plaintext = request.param == "plaintext"
    argv = [sys.executable, "-m", "kubectl_istio_remote", "serve", "--context", "external", "--discover", "--namespace", sandbox.istio_namespace]
    argv += ["--plaintext", "--istiod-plaintext", "--istiod-port", "15010"] if plaintext else []
    process = subprocess.Popen(
        argv, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on "), process.stderr.read() if process.poll() is not None else line
        istioctl_flags = ["--plaintext"] if plaintext else []
        yield line.split()[-1], istioctl_flags
    finally:
        process.terminate()
        process.wait(timeout=10)


def _istioctl(sandbox: Sandbox, address: str, flags: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return sandbox.run(
        "istioctl", *args, "--context", "remote", "--istioNamespace", sandbox.istio_namespace, *flags,
        extra_env={"ISTIOCTL_XDS_ADDRESS": address},
    )


@pytest.mark.parametrize("command", [["proxy-status"], ["x", "proxy-status"]], ids=["proxy-status", "x-proxy-status"])
def test_istioctl_through_serve_lists_every_proxy_of_every_replica(sandbox: Sandbox, serve, command: list[str]) -> None:
    address, flags = serve
    result = _istioctl(sandbox, address, flags, *command)
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
    assert "SYNCED" in result.stdout


def test_istioctl_proxy_status_of_one_pod_works_whichever_replica_holds_it(sandbox: Sandbox, serve) -> None:
    address, flags = serve
    for replica in range(len(sandbox.istiods)):
        pod = sandbox.proxies_of(replica)[0]
        result = _istioctl(sandbox, address, flags, "x", "proxy-status", pod)
        assert result.returncode == 0, f"{pod}: {result.stderr}"
        # istioctl compares istiod's config with the proxy's own; it can only do that with the right replica's answer.
        assert "Clusters Match" in result.stdout or "Listeners Match" in result.stdout, result.stdout
