"""`version --remote`'s tables from one syncz answer: every replica's build, and the proxies' builds with counts."""

from __future__ import annotations

import json

from kubectl_istio_remote.native import builds
from kubectl_istio_remote.native.render import ProxyStatus
from kubectl_istio_remote.native.syncz import Syncz


def identity(version: str, revision: str = "default") -> str:
    return json.dumps({"Component": "istiod", "ID": "x", "Info": {"version": version, "revision": revision}})


def syncz(identities: dict[str, str], sources: list[tuple[str, int]], proxy_versions: list[str]) -> Syncz:
    statuses = [ProxyStatus(f"p{i}.sample", "sample", "remote", "", version) for i, version in enumerate(proxy_versions)]
    return Syncz(statuses, [], identities, sources)


def test_each_replica_is_one_row_with_its_build_and_proxies() -> None:
    answer = syncz({"istiod-0": identity("1.30.3"), "istiod-1": identity("1.30.3")}, [("istiod-0", 2), ("istiod-1", 1)], ["1.30.3"] * 3)
    assert builds.replicas(answer) == [
        builds.Replica("istiod-0", "1.30.3", "default", 2),
        builds.Replica("istiod-1", "1.30.3", "default", 1),
    ]
    assert builds.data_plane(answer) == [builds.ProxyVersion("1.30.3", 3)]


def test_replicas_on_different_builds_stand_out() -> None:
    answer = syncz(
        {"istiod-0": identity("1.30.3"), "istiod-1": identity("1.29.2", "canary")}, [("istiod-0", 1), ("istiod-1", 1)], ["1.30.3", "1.29.2"]
    )
    text = builds.text(builds.replicas(answer), builds.data_plane(answer))
    assert "the replicas run 2 different versions" in text
    assert text.splitlines()[1:4] == [
        "ISTIOD       VERSION     REVISION     PROXIES",
        "istiod-0     1.30.3      default      1",
        "istiod-1     1.29.2      canary       1",
    ]


def test_a_replica_that_sent_no_identifier_is_unknown_not_missing() -> None:
    answer = syncz({}, [("istiod-0", 0)], [])
    assert builds.replicas(answer) == [builds.Replica("istiod-0", "unknown", "", 0)]


def test_remote_clusters_rows_name_every_replica_that_reads_each_cluster() -> None:
    from kubectl_istio_remote.native import clusterz

    agreed = b'[{"id":"remote","secretName":"","syncStatus":"synced"}]'
    assert [row.istiod for row in clusterz.rows(agreed, ["istiod-1", "istiod-0"])] == ["istiod-0", "istiod-1"]
    split = b'{"istiod-0":[{"id":"remote","secretName":"","syncStatus":"synced"}],"istiod-1":[{"id":"remote","secretName":"","syncStatus":"timeout"}]}'
    assert [(row.istiod, row.status) for row in clusterz.rows(split, ["istiod-0", "istiod-1"])] == [
        ("istiod-0", "synced"),
        ("istiod-1", "timeout"),
    ]
    assert clusterz.table(clusterz.rows(agreed, ["istiod-0"])).splitlines()[0].split() == ["NAME", "SECRET", "STATUS", "ISTIOD"]
