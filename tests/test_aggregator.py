"""The aggregator against in-process istiod stand-ins speaking the real ADS/CSDS protos."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import grpc
import pytest
from envoy.admin.v3 import config_dump_shared_pb2 as config_dump_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from tests.doubles.istiod import CONFIG_DUMP, DEBUG, NOT_CONNECTED, SYNCZ
from tests.doubles.mesh import AUTHORITY, NAMESPACE, TOKEN, config_dump, proxy_ids, replicas, syncz


async def test_syncz_lists_every_proxy_of_every_replica(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(5, proxies_each=3))
    replies = await mesh.ask(syncz())
    expected = sorted(p for istiod in mesh.istiods for p in istiod.proxies)
    assert sorted(proxy_ids(replies)) == expected
    assert len(proxy_ids(replies)) == 15
    identity = json.loads(replies.responses[0].control_plane.identifier)
    assert identity["ID"] == "<external>" and identity["Component"] == "istiod"
    assert identity["Info"]["version"] == "1.30.3"
    assert replies.failed == []
    assert replies.sources == [(f"istiod-{i}", 3) for i in range(5)], "our client can tell which replica holds which proxy"


async def test_control_plane_id_is_configurable(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2), control_plane_id="prod-external")
    identity = json.loads((await mesh.ask(syncz())).responses[0].control_plane.identifier)
    assert identity["ID"] == "prod-external"


async def test_mixed_versions_are_shown_not_hidden(mesh_factory) -> None:
    istiods = replicas(3)
    istiods[1].version = "1.29.2"
    mesh = await mesh_factory(istiods)
    info = json.loads((await mesh.ask(syncz())).responses[0].control_plane.identifier)["Info"]
    assert info["version"] == "1.29.2,1.30.3"
    assert info["status"] == "Clean"


async def test_config_dump_comes_from_the_replica_holding_the_proxy(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(4))
    for holder in mesh.istiods:
        proxy = holder.proxies[1]
        response = (await mesh.ask(config_dump(proxy))).responses[0]
        assert response.type_url == CONFIG_DUMP
        dump = config_dump_pb2.ClustersConfigDump()
        assert response.resources[0].Unpack(dump)
        assert dump.version_info == f"{holder.name}/{proxy}"
    asked = [sum(1 for r in istiod.seen_requests if r.type_url == CONFIG_DUMP) for istiod in mesh.istiods]
    assert asked == [4, 4, 4, 4], "every replica is asked at once, not only the first"


async def test_config_dump_of_unknown_proxy_is_empty_like_istiod(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3))
    response = (await mesh.ask(config_dump("ghost.sample"))).responses[0]
    assert response.type_url == CONFIG_DUMP and list(response.resources) == []


async def test_one_proxy_debug_pages_route_to_the_holder_and_syncz_naming_one_is_everyones(mesh_factory) -> None:
    """istiod ignores the names on syncz and answers with all it holds: the first answer would be a replica's proxies,
    not the one asked for, so every replica is asked and the caller picks."""
    mesh = await mesh_factory(replicas(3))
    target = mesh.istiods[2].proxies[0]
    assert sorted(proxy_ids(await mesh.ask(syncz(target)))) == sorted(p for istiod in mesh.istiods for p in istiod.proxies)

    debug = DiscoveryRequest(type_url=DEBUG, resource_names=[f"config_dump?proxyID={target}"])
    page = json.loads((await mesh.ask(debug)).responses[0].resources[0].value)
    assert page == {"istiod": "istiod-2", "proxy": target}

    missing = DiscoveryRequest(type_url=DEBUG, resource_names=["config_dump?proxyID=ghost.sample"])
    assert (await mesh.ask(missing)).responses[0].resources[0].value == NOT_CONNECTED.encode()


def debug(page: str) -> DiscoveryRequest:
    """`istioctl x internal-debug PAGE`: the node istioctl sends (proxy ID istioctl.external-istiod)."""
    request = syncz()
    request.type_url, request.resource_names[:] = DEBUG, [page]
    return request


def one_document(replies) -> object:
    """The one resource of the one response, parsed: what istioctl prints as one JSON document."""
    (response,) = replies.responses
    (resource,) = response.resources
    return json.loads(resource.value)


async def test_a_replica_local_page_is_one_list_of_every_replicas_entries_each_marked(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3))
    entries = one_document(await mesh.ask(debug("syncz")))
    assert sorted((entry["proxy"], entry["istiod"]) for entry in entries) == sorted(
        (proxy, istiod.name) for istiod in mesh.istiods for proxy in istiod.proxies
    ), "every proxy once, with its replica; the aggregator's own connections are not proxies"


async def test_client_lists_add_their_counts_without_our_own_connections(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2, proxies_each=3))
    adsz = one_document(await mesh.ask(debug("adsz")))
    assert adsz["totalClients"] == 6 == len(adsz["clients"])
    assert {client["istiod"] for client in adsz["clients"]} == {"istiod-0", "istiod-1"}


async def test_a_global_page_the_replicas_agree_on_is_one_copy(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3))
    replies = await mesh.ask(debug("configz"))
    assert one_document(replies) == [{"kind": "VirtualService", "name": "reviews"}]
    assert replies.disagreements == []


async def test_replicas_that_disagree_are_shown_side_by_side_and_said(mesh_factory, caplog) -> None:
    caplog.set_level(logging.WARNING)
    istiods = replicas(3)
    istiods[1].configz = [{"kind": "VirtualService", "name": "reviews-stale"}]
    mesh = await mesh_factory(istiods)
    replies = await mesh.ask(debug("configz"))
    document = one_document(replies)
    assert sorted(document) == ["istiod-0", "istiod-1", "istiod-2"]
    assert document["istiod-1"] == [{"kind": "VirtualService", "name": "reviews-stale"}]
    assert replies.disagreements == ["the istiod replicas disagree on configz: answer keyed by replica (istiod-0, istiod-1, istiod-2)"]
    assert any("disagree on configz" in record.getMessage() for record in caplog.records)


async def test_an_unknown_page_is_istiods_text_once(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3))
    (response,) = (await mesh.ask(debug("nosuchpage"))).responses
    assert [resource.value for resource in response.resources] == [b"404 page not found\n"]


async def test_every_debug_answer_carries_our_control_plane_id_for_all(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2), control_plane_id="<external>")
    for page in ("configz", "syncz", "config_dump?proxyID=app-1-0.sample"):
        (response,) = (await mesh.ask(debug(page))).responses
        assert json.loads(response.control_plane.identifier)["ID"] == "<external>", page


async def test_a_page_that_changes_istiod_is_refused_unless_allowed(mesh_factory) -> None:
    refusing = await mesh_factory(replicas(2))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await refusing.ask(debug("adsz?push=true"))
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "serve --allow-debug-changes" in raised.value.details()
    assert not any(request.type_url == DEBUG for istiod in refusing.istiods for request in istiod.seen_requests)


async def test_an_allowed_change_reaches_every_replica_and_each_result_is_shown(mesh_factory, caplog) -> None:
    caplog.set_level(logging.WARNING)
    mesh = await mesh_factory(replicas(2), allow_debug_changes=True)
    assert one_document(await mesh.ask(debug("adsz?push=true"))) == {
        "istiod-0": "Pushed to 3 servers\n",
        "istiod-1": "Pushed to 3 servers\n",
    }
    assert any("passing adsz?push=true, which changes istiod, to 2 replicas" in record.getMessage() for record in caplog.records)


async def test_faulty_replicas_do_not_hide_the_healthy_ones(mesh_factory, caplog) -> None:
    caplog.set_level(logging.WARNING)
    istiods = replicas(4)
    istiods[1].behaviour = "hang"
    istiods[2].behaviour = "garbage"
    mesh = await mesh_factory(istiods, dead=1, istiod_timeout=1.0)
    started = time.monotonic()
    replies = await mesh.ask(syncz())
    elapsed = time.monotonic() - started
    assert sorted(proxy_ids(replies)) == sorted(istiods[0].proxies + istiods[3].proxies)
    failed = {entry.split(":")[0]: entry for entry in replies.failed}
    assert set(failed) == {"istiod-1", "istiod-2", "dead-0"}
    assert "deadline" in failed["istiod-1"]
    assert elapsed < 10, "the answer must not wait beyond the per-istiod deadline"
    for name in failed:
        assert name in caplog.text


async def test_require_all_refuses_a_partial_answer(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2), dead=1, require_all=True)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.ask(syncz())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "dead-0" in raised.value.details() and "--require-all" in raised.value.details()


async def test_no_replica_answering_is_unavailable_with_every_reason(mesh_factory) -> None:
    istiods = replicas(1, behaviour="garbage")
    mesh = await mesh_factory(istiods, dead=2)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.ask(syncz())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    for name in ("istiod-0", "dead-0", "dead-1"):
        assert name in raised.value.details()


async def test_istiod_refusing_the_caller_keeps_its_code(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3, behaviour="refuse"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.ask(syncz())
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "authentication required" in raised.value.details()


async def test_token_is_forwarded_unchanged_and_never_logged(mesh_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    istiods = replicas(3)
    istiods[0].behaviour = "refuse"
    mesh = await mesh_factory(istiods)
    await mesh.ask(syncz())
    for istiod in mesh.istiods:
        assert istiod.seen_metadata[-1]["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text

    await mesh.ask(syncz(), token=None)
    for istiod in mesh.istiods:
        assert "authorization" not in istiod.seen_metadata[-1]


async def test_cluster_id_reaches_istiod_so_it_reviews_the_token_in_that_mesh_cluster(mesh_factory) -> None:
    """A mesh cluster registered by a remote secret is named in `clusterid`; without it istiod reviews the token in its
    config cluster and refuses a remote-2 user's token."""
    mesh = await mesh_factory(replicas(2), cluster_id="remote-2")
    await mesh.ask(syncz())
    assert [istiod.seen_metadata[-1]["clusterid"] for istiod in mesh.istiods] == ["remote-2", "remote-2"]
    await mesh.ask(syncz(), cluster_id="remote-3")
    assert [istiod.seen_metadata[-1]["clusterid"] for istiod in mesh.istiods] == ["remote-3", "remote-3"], "the caller's own wins"


async def test_without_a_cluster_id_istiod_is_sent_none(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2))
    await mesh.ask(syncz())
    assert all("clusterid" not in istiod.seen_metadata[-1] for istiod in mesh.istiods)


async def test_node_of_the_first_request_reaches_istiod_on_every_request(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(2))
    second = DiscoveryRequest(type_url=CONFIG_DUMP, resource_names=[mesh.istiods[1].proxies[0]])
    replies = await mesh.ask(syncz(), second)
    assert [r.type_url for r in replies.responses] == [SYNCZ, CONFIG_DUMP]
    assert len(replies.responses[1].resources) == 1
    for istiod in mesh.istiods:
        assert {r.node.id for r in istiod.seen_requests} == {syncz().node.id}
        assert all(r.node.metadata["NAMESPACE"] == NAMESPACE for r in istiod.seen_requests)


async def test_tls_on_both_sides_without_and_with_verification(mesh_factory) -> None:
    istiod_pair = self_signed_pair([AUTHORITY], [])
    serving_pair = self_signed_pair(["localhost", AUTHORITY], ["127.0.0.1"])
    unverified = await mesh_factory(replicas(2, serving_pair=istiod_pair), istiod_plaintext=False, serving_pair=serving_pair)
    assert len(proxy_ids(await unverified.ask(syncz()))) == 4

    with_ca = _write_temp(istiod_pair[1])
    verified = await mesh_factory(replicas(2, serving_pair=istiod_pair), istiod_plaintext=False, istiod_ca_file=with_ca)
    assert len(proxy_ids(await verified.ask(syncz()))) == 4

    wrong_ca = _write_temp(self_signed_pair([AUTHORITY], [])[1])
    refused = await mesh_factory(replicas(1, serving_pair=istiod_pair), istiod_plaintext=False, istiod_ca_file=wrong_ca)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await refused.ask(syncz())
    assert "CERTIFICATE_VERIFY_FAILED" in raised.value.details()


async def test_plaintext_client_cannot_talk_to_tls_istiod_setting_mismatch_is_named(mesh_factory) -> None:
    istiod_pair = self_signed_pair([AUTHORITY], [])
    mesh = await mesh_factory(replicas(1, serving_pair=istiod_pair), istiod_plaintext=True, istiod_timeout=2.0)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.ask(syncz())
    assert "istiod-0" in raised.value.details()


async def test_answers_larger_than_grpc_default_limit(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(3, proxies_each=12_000))
    replies = await mesh.ask(syncz())
    assert replies.responses[0].ByteSize() > 4 * 1024 * 1024
    assert len(proxy_ids(replies)) == 36_000


async def test_delta_ads_is_refused_with_the_supported_api(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(1))
    async with mesh.connection.channel() as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "StreamAggregatedResources" in raised.value.details()


async def test_health_reports_serving(mesh_factory) -> None:
    mesh = await mesh_factory(replicas(1))
    async with mesh.connection.channel() as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_stream_stays_open_after_the_answer_like_istiod(mesh_factory) -> None:
    """istioctl never half-closes; ending the stream early could make it read EOF instead of the answer."""
    mesh = await mesh_factory(replicas(2))
    async with mesh.connection.channel() as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await call.write(syncz())
        assert (await call.read()).type_url == SYNCZ
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call.read(), 0.5)
        call.cancel()


def _write_temp(data: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
        handle.write(data)
    return handle.name
