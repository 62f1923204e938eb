"""Native proxy-status output, compared with what istioctl 1.27+ prints for the same answer."""

from __future__ import annotations

import datetime
import json

import yaml
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2

from kubectl_istio_remote.native import render

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.timezone.utc)
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
WDS = "type.googleapis.com/istio.workload.Address"


def client_config(name: str, statuses: dict[str, int], age_seconds: int = 125) -> any_pb2.Any:
    config = csds_pb2.ClientConfig()
    config.node.id = name
    config.node.metadata.update({"CLUSTER_ID": "remote", "NAMESPACE": name.split(".")[1], "ISTIO_VERSION": "1.30.3"})
    for type_url, status in statuses.items():
        generic = config.generic_xds_configs.add(type_url=type_url, config_status=status)
        if status != csds_pb2.NOT_SENT:
            generic.last_updated.FromDatetime(NOW - datetime.timedelta(seconds=age_seconds))
    packed = any_pb2.Any()
    packed.Pack(config)
    return packed


def response() -> DiscoveryResponse:
    synced = {CDS: csds_pb2.SYNCED, LDS: csds_pb2.SYNCED, EDS: csds_pb2.SYNCED, RDS: csds_pb2.STALE}
    return DiscoveryResponse(
        resources=[
            client_config("reviews-v1-7d9.sample", synced),
            client_config("productpage-5f8.sample", {CDS: csds_pb2.SYNCED, LDS: csds_pb2.NOT_SENT}),
            client_config("ztunnel-abc.istio-system", {WDS: csds_pb2.SYNCED}, age_seconds=4000),
        ]
    )


def statuses() -> list[render.ProxyStatus]:
    return render.proxy_statuses(response(), [("istiod-a", 2), ("istiod-b", 1)], "<external>")


def test_table_matches_istioctl_layout_and_names_the_holding_replica() -> None:
    assert render.table(statuses(), wide=False, now=NOW) == (
        "NAME                         CLUSTER     ISTIOD       VERSION     SUBSCRIBED TYPES\n"
        "productpage-5f8.sample       remote      istiod-a     1.30.3      2 (CDS,LDS)\n"
        "reviews-v1-7d9.sample        remote      istiod-a     1.30.3      4 (CDS,LDS,EDS,RDS)\n"
        "ztunnel-abc.istio-system     remote      istiod-b     1.30.3      1 (WDS)\n"
    )


def test_wide_table_has_one_column_per_type_with_status_and_age() -> None:
    lines = render.table(statuses(), wide=True, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "CLUSTER", "CDS", "ECDS", "EDS", "LDS", "RDS", "WDS", "ISTIOD", "VERSION"]
    reviews = lines[2]
    assert "SYNCED (2m5s)" in reviews and "STALE (2m5s)" in reviews and "IGNORED" in reviews
    assert "NOT SENT" in lines[1]
    assert "SYNCED (66m)" in lines[3]


def test_json_and_yaml_carry_the_same_document_with_failed_replicas() -> None:
    document = render.as_document(statuses(), ["istiod-c: no answer before the deadline (--istiod-timeout)"])
    as_json = json.loads(render.dump(document, "json"))
    assert as_json == yaml.safe_load(render.dump(document, "yaml"))
    assert [proxy["name"] for proxy in as_json["proxies"]] == [
        "productpage-5f8.sample",
        "reviews-v1-7d9.sample",
        "ztunnel-abc.istio-system",
    ]
    assert as_json["proxies"][1]["xds"]["RDS"]["status"] == "STALE"
    assert as_json["proxies"][1]["istiod"] == "istiod-a"
    assert as_json["failedIstiods"][0].startswith("istiod-c")


def test_human_duration_follows_kubernetes() -> None:
    cases = {
        5: "5s",
        119: "119s",
        125: "2m5s",
        600: "10m",
        3 * 3600 + 20 * 60: "3h20m",
        10 * 3600: "10h",
        53 * 3600: "2d5h",
        30 * 86400: "30d",
    }
    for seconds, text in cases.items():
        assert render.human_duration(datetime.timedelta(seconds=seconds)) == text
