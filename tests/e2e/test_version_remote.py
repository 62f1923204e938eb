"""`version --remote` against the real istiods: every replica's build, and the proxies'."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS
from tests.sandbox.mesh_clusters import MESH_CLUSTERS


@pytest.mark.parametrize("mode", ["local", "pod"])
def test_every_replica_is_named_with_its_version_and_proxies(sandbox: Sandbox, mode: str) -> None:
    result = sandbox.run("kubectl-istio_remote", "version", "--remote", *CLUSTERS, "--mode", mode, "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["controlPlane"]}
    assert sorted(rows) == [f"istiod-{i}" for i in range(len(sandbox.istiods))]
    assert {row["version"] for row in rows.values()} == {"1.31-dev"}
    assert all(rows[f"istiod-{i}"]["proxies"] == len(sandbox.proxies_of(i)) for i in range(len(sandbox.istiods)))
    assert sum(row["proxies"] for row in report["dataPlane"]) == len(sandbox.proxies)
    assert report["failedIstiods"] == []


def test_the_text_form_has_both_tables(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "version", "--remote", *CLUSTERS, "--mode", "local")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("kubectl-istio-remote ")
    control = lines.index("control plane:")
    assert lines[control + 1].split() == ["ISTIOD", "VERSION", "REVISION", "PROXIES"]
    assert [line.split()[0] for line in lines[control + 2 : control + 5]] == ["istiod-0", "istiod-1", "istiod-2"]
    assert "data plane:" in lines


def test_remote_clusters_lists_what_every_replica_reads(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "remote-clusters", *CLUSTERS, "--mode", "local", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    read = {(row["istiod"], row["name"], row["status"]) for row in document["clusters"]}
    every = {(f"istiod-{i}", cluster.name, "synced") for i in range(len(sandbox.istiods)) for cluster in MESH_CLUSTERS}
    assert read == every, "every replica reads both mesh clusters"
