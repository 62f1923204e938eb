"""Shared mode against stand-ins: the mesh cluster's advertisement (a scripted API server) and an aggregator over fake
istiods serving TLS; the real clusters, the real istiods and istioctl are in tests/e2e/test_shared_aggregator.py."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from kubectl_istio_remote.aggregator.loop import LoopThread
from kubectl_istio_remote.aggregator.queries import fetch
from kubectl_istio_remote.aggregator.serving import Settings
from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.deploy import advertisement
from kubectl_istio_remote.deploy.advertisement import Advertisement
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.session.choice import choose_mode
from kubectl_istio_remote.session.settings import Mode, SessionFlags
from kubectl_istio_remote.session.shared_mode import SharedMode, check_serving
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli
from tests.doubles.apiserver import Answer, Script, apiserver
from tests.doubles.mesh import NAMESPACE, TOKEN, Mesh, free_dead_address, replicas

CONFIGMAP_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{advertisement.CONFIGMAP_NAME}"
NAME = "aggregator.example"
REVIEWS_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
TOKEN_PATH = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default/token"


def configmap(**data: str) -> Answer:
    return Answer(200, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": NAMESPACE}, "data": data})


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "no 'address' key"),
        ({"address": "aggregator.example"}, "'aggregator.example' is not HOST:PORT"),
        ({"address": "a:15012", "ca.crt": "not a certificate"}, "'ca.crt' holds no PEM certificate"),
    ],
)
def test_a_malformed_advertisement_names_its_fault_and_who_fixes_it(data: dict[str, str], problem: str) -> None:
    with pytest.raises(UserError) as raised:
        advertisement.parse({"data": data}, "ConfigMap x/y of context c")
    assert raised.value.one_line() == (
        f"ConfigMap x/y of context c is malformed: {problem}; ask the mesh operator to apply "
        "`kubectl istio-remote manifest --mesh` again, or pass --aggregator HOST:PORT"
    )


def test_the_advertisement_round_trips_through_the_manifest() -> None:
    printed = Advertisement(NAMESPACE, "10.0.0.7:15012", "-----BEGIN CERTIFICATE-----\n...", server_name=NAME, cluster_id="remote-2")
    (configmap_object, *_) = advertisement.objects(printed)
    read = advertisement.parse(configmap_object, "here")
    assert (read.address, read.ca_pem, read.server_name, read.verified_name) == (printed.address, printed.ca_pem, NAME, NAME)
    assert read.cluster_id == "remote-2"
    assert Advertisement(NAMESPACE, "10.0.0.7:15012").verified_name == "10.0.0.7"


@pytest.fixture
def mesh_cluster(tmp_path: Path) -> Iterator[tuple[object, Script]]:
    with apiserver(tmp_path, "mesh") as pinned:
        yield pinned


def choose(mesh_cluster: tuple[object, Script], mode: Mode, **flags: object) -> tuple[Mode, Advertisement | None, str, str]:
    cluster, _ = mesh_cluster
    stderr = io.StringIO()
    chosen = choose_mode(SessionFlags(mode=mode, istio_namespace=NAMESPACE, **flags), cluster, cluster, Console(stderr=stderr))  # type: ignore[arg-type]
    return (*chosen, stderr.getvalue())


def test_auto_takes_the_advertised_aggregator_and_says_so(mesh_cluster: tuple[object, Script]) -> None:
    _, script = mesh_cluster
    script.on("GET", CONFIGMAP_PATH, configmap(address="10.0.0.7:15012"))
    mode, shared, namespace, said = choose(mesh_cluster, Mode.auto)
    assert (mode, namespace) == (Mode.shared, NAMESPACE)
    assert shared is not None and shared.address == "10.0.0.7:15012"
    assert said == (
        f"using the shared aggregator at 10.0.0.7:15012, advertised by ConfigMap {NAMESPACE}/istio-remote-aggregator "
        "of context mesh (--mode shared)\n"
    )
    assert [(method, path) for method, path, _ in script.requests] == [("GET", CONFIGMAP_PATH)]


@pytest.mark.parametrize(("answer", "why"), [(Answer.refusal(404, "not found"), "not found"), (Answer.refusal(403, "no"), "not readable")])
def test_auto_falls_back_to_pod_mode_and_says_why(mesh_cluster: tuple[object, Script], answer: Answer, why: str) -> None:
    mesh_cluster[1].on("GET", CONFIGMAP_PATH, answer)
    mode, shared, _, said = choose(mesh_cluster, Mode.auto)
    assert (mode, shared) == (Mode.pod, None)
    assert (
        said
        == f"no shared aggregator advertised (ConfigMap istio-remote-aggregator in namespace {NAMESPACE} of context mesh {why}): "
        + ("running the aggregator in a pod (--mode pod)\n")
    )


def test_shared_mode_without_an_advertisement_says_what_to_ask_for(mesh_cluster: tuple[object, Script]) -> None:
    mesh_cluster[1].on("GET", CONFIGMAP_PATH, Answer.refusal(404, "not found"))
    with pytest.raises(UserError) as raised:
        choose(mesh_cluster, Mode.shared)
    assert raised.value.one_line().startswith(
        f"no shared aggregator is advertised: ConfigMap istio-remote-aggregator in namespace {NAMESPACE} of context mesh not found; "
        "ask the mesh operator to apply `kubectl istio-remote manifest --mesh`"
    )


def test_a_malformed_advertisement_is_an_error_in_auto_mode_too(mesh_cluster: tuple[object, Script]) -> None:
    mesh_cluster[1].on("GET", CONFIGMAP_PATH, configmap(address="nowhere"))
    with pytest.raises(UserError, match="is malformed: 'nowhere' is not HOST:PORT"):
        choose(mesh_cluster, Mode.auto)


def test_without_a_namespace_the_usual_istio_namespaces_are_asked_at_once(mesh_cluster: tuple[object, Script]) -> None:
    cluster, script = mesh_cluster
    script.on("GET", "/api/v1/namespaces/external-istiod/configmaps/istio-remote-aggregator", configmap(address="10.0.0.7:15012"))
    mode, shared, namespace = choose_mode(SessionFlags(mode=Mode.shared), cluster, cluster, Console(stderr=io.StringIO()))  # type: ignore[arg-type]
    assert (mode, namespace) == (Mode.shared, "external-istiod") and shared is not None
    assert sorted(path for _, path, _ in script.requests) == [
        "/api/v1/namespaces/external-istiod/configmaps/istio-remote-aggregator",
        "/api/v1/namespaces/istio-system/configmaps/istio-remote-aggregator",
    ]


def test_aggregator_flag_needs_no_cluster_at_all(mesh_cluster: tuple[object, Script]) -> None:
    mode, shared, _, said = choose(mesh_cluster, Mode.auto, aggregator="10.0.0.9:443")
    assert mode is Mode.shared and shared is not None and shared.source == "--aggregator"
    assert said == "using the shared aggregator at 10.0.0.9:443 (--aggregator)\n"
    assert mesh_cluster[1].requests == []


@pytest.fixture
def serve() -> Iterator[Callable[[Sequence[str]], tuple[Mesh, bytes]]]:
    """Starts three fake replicas behind an aggregator whose certificate names aggregator.example and `ip_addresses`;
    each call returns (mesh, that certificate); all are stopped after the test."""
    loop = LoopThread()
    started: list[Mesh] = []

    def start(ip_addresses: Sequence[str]) -> tuple[Mesh, bytes]:
        pair = self_signed_pair([NAME], ip_addresses)
        mesh = Mesh(replicas(3), Settings(serving_pair=pair, istiod_plaintext=True))
        started.append(mesh)
        loop.run(mesh.start(), 30)
        return mesh, pair[1]

    try:
        yield start
    finally:
        for mesh in started:
            loop.run(mesh.stop(), 30)


def shared_at(mesh: Mesh, ca: bytes, server_name: str = "") -> Advertisement:
    assert mesh.connection is not None
    return Advertisement(NAMESPACE, mesh.connection.address, ca.decode(), server_name, source="the test")


def test_the_certificate_is_verified_for_the_advertised_name(serve: Callable[[Sequence[str]], tuple[Mesh, bytes]]) -> None:
    mesh, ca = serve([])
    loop = LoopThread()
    check_serving(loop, shared_at(mesh, ca, server_name=NAME), 5)
    with pytest.raises(UserError) as mismatch:
        check_serving(loop, shared_at(mesh, ca), 5)
    _, other_ca = self_signed_pair([NAME], [])
    with pytest.raises(UserError) as unknown_ca:
        check_serving(loop, shared_at(mesh, other_ca, server_name=NAME), 5)
    address = shared_at(mesh, ca).address
    assert str(mismatch.value).startswith(
        f"the shared aggregator at {address} (the test) presented a certificate that does not verify against the advertised CA "
        f"for '127.0.0.1': IP address mismatch"
    ), mismatch.value
    assert "the operator's fix: the ConfigMap's ca.crt must be the CA" in str(mismatch.value)
    assert "does not verify against the advertised CA for 'aggregator.example'" in str(unknown_ca.value), unknown_ca.value


def test_an_unreachable_aggregator_is_one_line_with_the_operators_fix() -> None:
    address = free_dead_address()
    loop = LoopThread()
    with pytest.raises(UserError) as raised:
        check_serving(loop, Advertisement(NAMESPACE, address, source="the test"), 5)
    assert raised.value.exit_status == ExitStatus.UNAVAILABLE
    assert raised.value.one_line() == (
        f"the shared aggregator at {address} (the test) is unreachable: Connection refused; the operator's fix: the ConfigMap's "
        "address must reach the aggregator's Service (manifest --expose); tell the mesh operator (`kubectl istio-remote doctor` "
        "shows what is wrong), or use --mode pod with rights in the control-plane cluster"
    )


def test_proxy_status_through_a_shared_aggregator_asks_the_mesh_cluster_for_a_token_and_nothing_else(
    serve: Callable[[Sequence[str]], tuple[Mesh, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mesh user's whole native run: a token asked for (its refusal is the rights check); nothing else asked, nothing
    made; every proxy shown."""
    mesh, ca = serve(["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(ca)
    monkeypatch.setenv("PATH", os.defpath)
    with apiserver(tmp_path, "mesh") as (cluster, script):
        script.on("POST", REVIEWS_PATH, Answer(201, {"status": {"allowed": True}}))
        script.on("POST", TOKEN_PATH, Answer(201, {"status": {"token": "mesh-token"}}))
        address = shared_at(mesh, ca).address
        flags = [
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-i",
            NAMESPACE,
            "--aggregator",
            address,
            "--aggregator-ca",
            str(tmp_path / "ca.pem"),
        ]
        result = run_cli("proxy-status", *flags, "-o", "json")
    assert result.exit_code == ExitStatus.SUCCESS, result.stderr
    listed = {status["name"]: status["istiod"] for status in json.loads(result.stdout)["proxies"]}
    assert listed == {proxy: istiod.name for istiod in mesh.istiods for proxy in istiod.proxies}  # the ISTIOD column per replica
    assert {(method, path.split("?")[0]) for method, path, _ in script.requests} == {("POST", TOKEN_PATH)}


def test_a_native_run_starts_on_the_aggregator_the_last_run_found_only_if_it_is_still_advertised(
    serve: Callable[[Sequence[str]], tuple[Mesh, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second run opens its connection to the remembered aggregator while the advertisement is read; when the operator
    moved it, the old one gets no request and the new one answers."""
    first, first_ca = serve(["127.0.0.1"])
    moved, moved_ca = serve(["127.0.0.1"])

    def served(mesh: Mesh) -> int:
        return sum(len(istiod.seen_requests) for istiod in mesh.istiods)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ahead = "is the one of the last run: its connection was opened ahead"
    with apiserver(tmp_path, "mesh") as (cluster, script):
        script.on("POST", REVIEWS_PATH, Answer(201, {"status": {"allowed": True}}))
        script.on("POST", TOKEN_PATH, Answer(201, {"status": {"token": "mesh-token"}}))

        def proxy_status(mesh: Mesh, ca: bytes) -> tuple[set[str], str]:
            script.on("GET", CONFIGMAP_PATH, configmap(address=shared_at(mesh, ca).address, **{"ca.crt": ca.decode()}))
            result = run_cli("proxy-status", "--native", "-v", "-o", "json", "-i", NAMESPACE, "--kubeconfig", str(cluster.kubeconfig))
            assert result.exit_code == ExitStatus.SUCCESS, result.stderr
            return {status["istiod"] for status in json.loads(result.stdout)["proxies"]}, result.stderr

        every = {istiod.name for istiod in first.istiods}
        answered, said = proxy_status(first, first_ca)
        assert answered == every and ahead not in said
        answered, said = proxy_status(first, first_ca)
        assert answered == every and f"{shared_at(first, first_ca).address} {ahead}" in said
        before = served(first)
        answered, said = proxy_status(moved, moved_ca)
        assert answered == every and ahead not in said
        assert served(first) == before and served(moved) == len(moved.istiods)
        _, said = proxy_status(moved, moved_ca)
        assert f"{shared_at(moved, moved_ca).address} {ahead}" in said


@pytest.mark.parametrize("cluster_id", ["", "remote-2"], ids=["config cluster", "named cluster"])
def test_istioctl_reaches_the_shared_aggregator_only_through_a_relay_that_verifies_it(
    serve: Callable[[Sequence[str]], tuple[Mesh, bytes]], cluster_id: str
) -> None:
    """istioctl is run with ISTIOCTL_INSECURE (it takes no CA of ours): its TLS ends at our relay on 127.0.0.1, and
    what goes on is TLS verified against the advertised CA and name. A token reaches no server that fails it. For a
    mesh cluster istiod must be told of, istioctl's gRPC ends there instead, passed on with the cluster's ID and
    everything the aggregator answers (here: which replica holds each proxy) coming back."""
    mesh, ca = serve([])
    _, other_ca = self_signed_pair([NAME], [])
    io = LoopThread()
    verified = SharedMode(shared_at(mesh, ca, server_name=NAME), io, checked=False, relayed=True, cluster_id=cluster_id)
    connection = verified.open(time.monotonic() + 10)
    assert connection.address.startswith("127.0.0.1:") and connection.tls and not connection.verify
    syncz = fetch(connection, TOKEN, NAMESPACE, None, 10)
    assert {status.istiod for status in syncz.statuses} == {istiod.name for istiod in mesh.istiods}
    seen = [istiod.seen_metadata[-1] for istiod in mesh.istiods]
    assert all(metadata["authorization"] == f"Bearer {TOKEN}" for metadata in seen)
    assert [metadata.get("clusterid", "") for metadata in seen] == [cluster_id] * len(seen)
    verified.close(time.monotonic() + 5, lambda: False)
    asked = sum(len(istiod.seen_requests) for istiod in mesh.istiods)
    impostor = SharedMode(shared_at(mesh, other_ca, server_name=NAME), io, checked=False, relayed=True, cluster_id=cluster_id)
    with pytest.raises(UserError):
        fetch(impostor.open(time.monotonic() + 10), TOKEN, NAMESPACE, None, 10)
    impostor.close(time.monotonic() + 5, lambda: False)
    assert sum(len(istiod.seen_requests) for istiod in mesh.istiods) == asked


def test_the_cluster_naming_pass_through_carries_the_health_check_and_istiods_refusal(
    serve: Callable[[Sequence[str]], tuple[Mesh, bytes]],
) -> None:
    mesh, ca = serve([])
    for istiod in mesh.istiods:
        istiod.behaviour = "refuse"
    io = LoopThread()
    session = SharedMode(shared_at(mesh, ca, server_name=NAME), io, checked=True, relayed=True, cluster_id="remote-2")
    connection = session.open(time.monotonic() + 10)  # the health check went through it
    with pytest.raises(UserError) as refused:
        fetch(connection, TOKEN, NAMESPACE, None, 10)
    assert refused.value.one_line().startswith("istiod answered UNAUTHENTICATED: ")
    session.close(time.monotonic() + 5, lambda: False)
