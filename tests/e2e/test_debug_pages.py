"""`istioctl x internal-debug` through the aggregator, with the real istioctl and 3 real istiods: one answer per page."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS


def internal_debug(sandbox: Sandbox, *args: str, mode: str = "local") -> str:
    result = sandbox.run(
        "kubectl-istio_remote", "shell", *CLUSTERS, "--mode", mode, "--", "istioctl", "x", "internal-debug", *args, "--context", "remote"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("mode", ["local", "pod"])
def test_syncz_is_one_document_listing_every_proxy_once_with_its_replica(sandbox: Sandbox, mode: str) -> None:
    entries = json.loads(internal_debug(sandbox, "syncz", mode=mode))
    assert sorted(entry["proxy"] for entry in entries) == sorted(sandbox.proxies), "every sidecar once; our own connections left out"
    replicas = {entry["proxy"]: entry["istiod"] for entry in entries}
    for replica in range(len(sandbox.istiods)):
        assert {replicas[proxy] for proxy in sandbox.proxies_of(replica)} == {f"istiod-{replica}"}


def test_all_is_keyed_by_our_control_plane_id(sandbox: Sandbox) -> None:
    document = json.loads(internal_debug(sandbox, "syncz", "--all"))
    assert list(document) == ["<external>"]
    assert sorted(entry["proxy"] for entry in document["<external>"]) == sorted(sandbox.proxies)


@pytest.mark.parametrize("page", ["connections", "instancesz", "cachez", "telemetryz"])
def test_every_replica_local_page_is_one_document(sandbox: Sandbox, page: str) -> None:
    json.loads(internal_debug(sandbox, page))  # istioctl printed exactly one JSON document


@pytest.mark.parametrize("page", ["configz", "mesh", "registryz", "clusterz", "push_status", "authorizationz", "endpointz", "list"])
def test_a_global_page_is_one_copy_when_the_replicas_agree(sandbox: Sandbox, page: str) -> None:
    document = json.loads(internal_debug(sandbox, page))
    assert not (isinstance(document, dict) and sorted(document) == [f"istiod-{i}" for i in range(len(sandbox.istiods))]), document


def test_client_counts_add_up_across_replicas(sandbox: Sandbox) -> None:
    adsz = json.loads(internal_debug(sandbox, "adsz"))
    assert adsz["totalClients"] == len(adsz["clients"]) == len(sandbox.proxies)
    assert {client["istiod"] for client in adsz["clients"]} == {f"istiod-{i}" for i in range(len(sandbox.istiods))}


def test_a_push_to_every_proxy_reaches_every_replica_and_each_result_is_shown(sandbox: Sandbox) -> None:
    document = json.loads(internal_debug(sandbox, "adsz?push=true"))
    assert sorted(document) == [f"istiod-{i}" for i in range(len(sandbox.istiods))]
    assert all(str(result).startswith("Pushed to") for result in document.values()), document


def test_an_unknown_page_is_istiods_answer_once(sandbox: Sandbox) -> None:
    result = sandbox.run(
        "kubectl-istio_remote",
        "shell",
        *CLUSTERS,
        "--mode",
        "local",
        "--",
        "istioctl",
        "x",
        "internal-debug",
        "nosuchpage",
        "--context",
        "remote",
    )
    assert result.stdout.count("404 page not found") <= 1, result.stdout
