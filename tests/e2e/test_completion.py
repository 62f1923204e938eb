"""Completion values that need a cluster: namespaces, asked of the cluster the flag refers to."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Sandbox


def test_kubectl_completes_istio_namespaces_from_the_external_cluster(sandbox: Sandbox, tmp_path: Path) -> None:
    installed = sandbox.run("kubectl-istio_remote", "completion", "install", "--dir", str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    env = {"PATH": f"{tmp_path}:{sandbox.env['PATH']}"}

    def complete(*words: str) -> list[str]:
        result = sandbox.run("kubectl", "__complete", "istio-remote", *words, extra_env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    # external-istiod exists in both clusters; `sample` only in the mesh cluster.
    istio_namespaces = complete("proxy-status", "--context", "remote", "--external-context", "external", "-i", "")
    assert "external-istiod" in istio_namespaces and "sample" not in istio_namespaces
    assert istio_namespaces[-1] == ":4"
    assert "sample" in complete("proxy-status", "--context", "remote", "-n", "sa")
