"""The plugin across a slow link (toxiproxy adding 100 ms of round trip in front of both API servers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS, leftovers
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox import latency

RTT_MS = 100


@pytest.fixture
def slow(sandbox: Sandbox) -> Iterator[dict[str, object]]:
    yield latency.set_round_trip(RTT_MS)
    latency.set_round_trip(0)


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_every_proxy_is_listed_across_a_slow_link_and_nothing_is_left(sandbox: Sandbox, slow: dict[str, object], mode: str) -> None:
    env = {"KUBECONFIG": str(slow["kubeconfig"])}
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", mode, extra_env=env)
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
    assert leftovers(sandbox) == []


def test_the_api_servers_audit_log_names_the_plugin_as_the_caller(sandbox: Sandbox, slow: dict[str, object]) -> None:
    """Operators reading an audit log see which requests were ours (and serve's, from its pod)."""
    log = Path(dict(slow["audit_logs"])["external"])  # type: ignore[call-overload]
    offset = log.stat().st_size
    result = sandbox.run(
        "kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "pod", "--native", extra_env={"KUBECONFIG": str(slow["kubeconfig"])}
    )
    assert result.returncode == 0, result.stderr
    with log.open("rb") as handle:
        handle.seek(offset)
        agents = {json.loads(line).get("userAgent", "").split("/")[0] for line in handle if line.strip()}
    assert {"kubectl-istio-remote", "kubectl-istio-remote-serve"} <= agents, agents
