"""The pure merging rules: which requests concern one proxy, and the one control-plane identity of many replicas."""

from __future__ import annotations

import json

import pytest
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from kubectl_istio_remote.aggregator.merge import Route, merged_identifier, route_for


@pytest.mark.parametrize(
    ("type_url", "names", "route"),
    [
        ("istio.io/debug/syncz", [], Route.BROADCAST),
        ("istio.io/debug/syncz", ["sleep-0.sample"], Route.BROADCAST),  # istiod ignores the names
        ("istio.io/debug/config_dump", ["sleep-0.sample"], Route.ONE_PROXY),
        ("istio.io/connections", [], Route.BROADCAST),
        ("istio.io/debug", ["configz"], Route.BROADCAST),
        ("istio.io/debug", ["config_dump?proxyID=sleep-0.sample"], Route.ONE_PROXY),
        ("istio.io/debug", ["syncz"], Route.BROADCAST),
    ],
)
def test_route_for_sends_one_proxy_questions_to_its_replica_and_the_rest_to_all(type_url: str, names: list[str], route: Route) -> None:
    assert route_for(DiscoveryRequest(type_url=type_url, resource_names=names)) is route


def identifier(version: str, revision: str = "default", replica: str = "istiod-0") -> str:
    return json.dumps({"Component": "istiod", "ID": replica, "Info": {"version": version, "revision": revision}})


def test_replicas_that_agree_show_one_value_under_our_id() -> None:
    merged = json.loads(merged_identifier([identifier("1.30.3", replica="a"), identifier("1.30.3", replica="b")], "<external>"))
    assert merged == {"Component": "istiod", "ID": "<external>", "Info": {"version": "1.30.3", "revision": "default"}}


def test_a_rollout_in_progress_lists_every_version_instead_of_hiding_it() -> None:
    merged = json.loads(merged_identifier([identifier("1.30.3"), identifier("1.29.2", "canary"), identifier("1.30.3")], "cp"))
    assert merged["ID"] == "cp"
    assert merged["Info"] == {"version": "1.29.2,1.30.3", "revision": "canary,default"}


def test_no_identifier_or_garbage_gives_none() -> None:
    assert merged_identifier(["", "not json", "[1, 2]"], "<external>") == ""
