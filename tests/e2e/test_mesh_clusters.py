"""Two mesh clusters on the same istiods: `remote` (istiod's config cluster) and `remote-2`, registered with istiod by
the real `istioctl create-remote-secret`. A user of either sees the whole mesh, each proxy with its own cluster."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import nothing_left_behind  # noqa: F401  (the autouse check runs here too)
from tests.e2e.test_sandbox_proof import listed_proxies


def clusters_of(table: str) -> dict[str, str]:
    """NAME → CLUSTER of a proxy-status table, istioctl's or ours (both put CLUSTER second)."""
    return {line.split()[0]: line.split()[1] for line in table.splitlines()[1:] if line.strip()}


def every_cluster(sandbox: Sandbox) -> dict[str, str]:
    return {sidecar.name: sidecar.cluster.name for sidecar in sandbox.sidecars}


@pytest.mark.parametrize("native", [[], ["--native"]], ids=["istioctl", "native"])
@pytest.mark.parametrize("mode", ["pod", "local", "auto"])
@pytest.mark.parametrize("context", ["remote", "remote-2"])
def test_proxy_status_from_either_mesh_cluster_lists_both_with_their_cluster(
    sandbox: Sandbox, context: str, mode: str, native: list[str]
) -> None:
    result = sandbox.run(
        "kubectl-istio_remote", "proxy-status", "--context", context, "--external-context", "external", "--mode", mode, *native
    )
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
    assert clusters_of(result.stdout) == every_cluster(sandbox), result.stdout


def test_the_second_clusters_session_names_its_cluster_to_istiod(sandbox: Sandbox) -> None:
    """Read off its injection webhook: without it istiod reviews remote-2's token in remote and refuses it."""
    result = sandbox.run(
        "kubectl-istio_remote", "proxy-status", "--context", "remote-2", "--external-context", "external", "--native", "-v"
    )
    assert result.returncode == 0, result.stderr
    assert "the mesh cluster is Istio cluster remote-2 to istiod" in result.stderr, result.stderr
    refused = sandbox.run(
        "kubectl-istio_remote",
        "proxy-status",
        "--context",
        "remote-2",
        "--external-context",
        "external",
        "--native",
        "--cluster-id",
        "remote",
    )
    assert refused.returncode != 0, refused.stdout
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "UNAUTHENTICATED" in error and "in Istio cluster remote: set --cluster-id" in error, refused.stderr


@pytest.mark.parametrize("native", [[], ["--native"]], ids=["istioctl", "native"])
def test_one_pod_of_the_second_cluster_from_its_own_context(sandbox: Sandbox, native: list[str]) -> None:
    pod = sandbox.proxies_in("remote-2")[-1]
    result = sandbox.run("kubectl-istio_remote", "proxy-status", pod, "--context", "remote-2", "--external-context", "external", *native)
    assert result.returncode == 0, result.stderr
    if native:
        assert clusters_of(result.stdout) == {pod: "remote-2"}, result.stdout
    else:
        assert "Clusters Match" in result.stdout and "Listeners Match" in result.stdout, result.stdout


@pytest.mark.parametrize("native", [[], ["--native"]], ids=["istioctl", "native"])
def test_a_pod_of_the_other_mesh_cluster_is_named_as_such(sandbox: Sandbox, native: list[str]) -> None:
    pod = sandbox.proxies_in("remote-2")[0]
    result = sandbox.run("kubectl-istio_remote", "proxy-status", pod, "--context", "remote", "--external-context", "external", *native)
    assert f"{pod} is a proxy of mesh cluster remote-2, not of context remote's (remote)" in result.stderr, result.stderr
    if not native:
        assert result.returncode != 0 and "--context" in result.stderr, result.stderr


@pytest.mark.parametrize("context", ["remote", "remote-2"])
def test_remote_clusters_shows_both_clusters_from_every_replica(sandbox: Sandbox, context: str) -> None:
    result = sandbox.run("kubectl-istio_remote", "remote-clusters", "--context", context, "--external-context", "external", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {(row["name"], row["secret"], row["status"], row["istiod"]) for row in json.loads(result.stdout)["clusters"]}
    secrets = {"remote": "", "remote-2": "external-istiod/istio-remote-secret-remote-2"}  # the config cluster has none
    assert rows == {(name, secret, "synced", f"istiod-{i}") for name, secret in secrets.items() for i in range(len(sandbox.istiods))}
