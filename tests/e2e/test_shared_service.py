"""The operator's shared aggregator as a service that changes under its users (issue 19, items 3 and 4).

The permanent install (2 replicas, our image under podman, a certificate of the operator's CA),
reached through its Service (tests/sandbox/service_proxy.py stands in for kube-proxy), advertised to
the mesh; mesh users call it without pause while the operator renews its certificate, an istiod
replica is deleted and recreated, one aggregator pod is deleted, and the Deployment's image is
rolled. Every call is counted: none may hang past its deadline or return an answer that silently
lacks a replica's proxies; at most a retryable error (UNAVAILABLE, RESOURCE_EXHAUSTED) is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from kubectl_istio_remote.aggregator.client import Connection, Replies, ask
from kubectl_istio_remote.aggregator.queries import syncz_request
from kubectl_istio_remote.deploy.install import NAME
from kubectl_istio_remote.deploy.workload import AGGREGATOR_PORT
from kubectl_istio_remote.native.render import proxy_statuses
from kubectl_istio_remote.session.token import istioctl_token
from tests.e2e.conftest import Sandbox
from tests.e2e.test_faults import _restore
from tests.e2e.test_manifest_install import kubectl
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.e2e.test_shared_aggregator import MESH_USER, Shared, shared_install
from tests.sandbox import clusters, image, mesh, procs
from tests.sandbox.operator import READY_SECONDS, ready_endpoints, wait_serving

#: A mesh user's call: istioctl has no deadline of its own; ours is what a patient user waits.
CALL_SECONDS = 10.0
#: A call that ends this long after its deadline hung.
HANG_MARGIN_SECONDS = 3.0
WORKERS = 3
RENEWAL_SECONDS = 60
#: What a client may see when a pod goes away under it, or the aggregator is busy: it retries.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@pytest.fixture(scope="module")
def service(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_install(tmp_path_factory.mktemp("operator"), through_service=True) as installed:
        yield installed


def pods(sandbox: Sandbox) -> dict[str, str]:
    """The install's pods now: name -> uid."""
    listed = json.loads(kubectl(sandbox, "get", "pods", "-l", f"app.kubernetes.io/name={NAME}", "-o", "json").stdout)
    return {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in listed["items"] if not pod["metadata"].get("deletionTimestamp")}


def served_serial(address: str, port: int = AGGREGATOR_PORT) -> int:
    """The serial of the certificate a new connection is handed."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(ssl.get_server_certificate((address, port), timeout=5).encode()).serial_number


def mesh_user_session(sandbox: Sandbox) -> subprocess.CompletedProcess[str]:
    """What a mesh user runs: shared mode, the certificate verified against the advertised CA."""
    return sandbox.run("kubectl-istio_remote", "proxy-status", *MESH_USER, "--mode", "shared", "--native")


def test_a_renewed_certificate_is_served_by_the_same_pods_and_mesh_users_never_notice(sandbox: Sandbox, service: Shared) -> None:
    before = mesh_user_session(sandbox)
    assert before.returncode == 0 and listed_proxies(before.stdout) == set(sandbox.proxies), before.stderr
    running = pods(sandbox)
    addresses = ready_endpoints()
    old = {served_serial(address) for address in addresses}
    certificate, key = service.authority.issue("renewed", service.server_name, server=True, dns_names=(service.server_name,))
    renewed = kubectl(
        sandbox, "create", "secret", "tls", f"{NAME}-tls", f"--cert={certificate}", f"--key={key}", "--dry-run=client", "-o", "yaml"
    )
    applied = kubectl(sandbox, "apply", "-f", "-", stdin=renewed.stdout)
    assert applied.returncode == 0, applied.stderr
    from cryptography import x509

    new = x509.load_pem_x509_certificate(certificate.read_bytes()).serial_number
    assert new not in old
    deadline = time.monotonic() + RENEWAL_SECONDS
    while {served_serial(address) for address in addresses} != {new}:
        assert time.monotonic() < deadline, f"the renewed certificate was not served within {RENEWAL_SECONDS} s"
        time.sleep(1)
    assert pods(sandbox) == running, "served by the same pods: no restart"
    host, _, port = service.address.rpartition(":")
    assert served_serial(host, int(port)) == new
    after = mesh_user_session(sandbox)
    assert after.returncode == 0 and listed_proxies(after.stdout) == set(sandbox.proxies), after.stderr


@dataclass
class Outcome:
    started: float
    ended: float
    kind: str  # "answer", "retryable", or "error"
    detail: str = ""
    #: Replicas that answered, and the proxies each sent.
    sources: dict[str, set[str]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


@dataclass
class Load:
    """Mesh users calling the shared aggregator through its Service without pause, each call's outcome kept."""

    connection: Connection
    token: str
    namespace: str
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _call(self) -> Outcome:
        started = time.monotonic()
        connection = dataclasses.replace(self.connection, token=self.token)
        try:
            replies = asyncio.run(ask(connection, [syncz_request(self.namespace)], CALL_SECONDS))
        except grpc.aio.AioRpcError as error:
            kind = "retryable" if error.code() in RETRYABLE else "error"
            return Outcome(started, time.monotonic(), kind, f"{error.code().name}: {error.details()}")
        return Outcome(started, time.monotonic(), "answer", sources=by_replica(replies), failed=replies.failed)

    def _work(self) -> None:
        while not self._stop.is_set():
            self.outcomes.append(self._call())

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(WORKERS)]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(CALL_SECONDS + HANG_MARGIN_SECONDS + 5)

    def counted(self) -> Counter[str]:
        return Counter(outcome.kind for outcome in self.outcomes)


def by_replica(replies: Replies) -> dict[str, set[str]]:
    statuses = proxy_statuses(replies.responses[0], replies.sources, fallback_istiod="?")
    found: dict[str, set[str]] = {name: set() for name, _ in replies.sources}
    for status in statuses:
        found.setdefault(status.istiod, set()).add(status.name)
    return found


@pytest.fixture
def load(sandbox: Sandbox, service: Shared) -> Load:
    token = istioctl_token(clusters.pinned("remote-limited"), sandbox.istio_namespace)
    connection = Connection(service.address, root_certificates=service.ca_file.read_bytes(), server_name=service.server_name, verify=True)
    return Load(connection, token, sandbox.istio_namespace)


def check(sandbox: Sandbox, load: Load, replica_away: tuple[float, float] | None = None) -> None:
    """No call hung; every answer holds each answering replica's proxies, and every replica that was up answered or was
    named; `replica_away` is when istiod-1 was away (stopped, deleted, its proxies not yet back)."""
    assert load.outcomes, "the load ran"
    failures = Counter(outcome.detail[:120] for outcome in load.outcomes if outcome.kind != "answer").most_common(3)
    print(f"calls: {dict(load.counted())}, failures: {failures}")  # tests/RELIABILITY.md's table (run with -s)
    hung = [outcome for outcome in load.outcomes if outcome.ended - outcome.started > CALL_SECONDS + HANG_MARGIN_SECONDS]
    assert not hung, hung[:3]
    errors = [outcome.detail for outcome in load.outcomes if outcome.kind == "error"]
    assert not errors, errors[:3]
    for outcome in (o for o in load.outcomes if o.kind == "answer"):
        overlaps = replica_away is not None and outcome.started < replica_away[1] and outcome.ended > replica_away[0]
        named = {failure.split(":")[0] for failure in outcome.failed}
        for index, replica in enumerate(f"istiod-{i}" for i in range(len(sandbox.istiods))):
            if overlaps and index == 1:
                continue  # away, or back while its sidecars reconnect: the truth of the mesh at that moment
            assert replica in outcome.sources or replica in named, f"{replica} silently missing: {outcome}"
            if replica in outcome.sources:
                assert outcome.sources[replica] == set(sandbox.proxies_of(index)), f"{replica}'s proxies incomplete: {outcome}"


def test_an_istiod_replica_deleted_and_recreated_under_load(sandbox: Sandbox, service: Shared, load: Load) -> None:
    istiod = json.loads(kubectl(sandbox, "get", "pod", "istiod-1", "-o", "json").stdout)
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        istiod["metadata"].pop(key, None)
    istiod.pop("status")
    try:
        with load.running():
            time.sleep(3)
            away = time.monotonic()
            procs.stop("istiod-1")
            assert kubectl(sandbox, "delete", "pod", "istiod-1", "--wait=true").returncode == 0
            time.sleep(3)
            recreate_istiod(sandbox, istiod)
            _restore(sandbox)  # starts istiod-1 again, waits for its sidecars
            back = time.monotonic()
            time.sleep(3)
    finally:
        if kubectl(sandbox, "get", "pod", "istiod-1").returncode != 0:
            recreate_istiod(sandbox, istiod)
        _restore(sandbox)
    check(sandbox, load, (away, back))
    session = mesh_user_session(sandbox)
    assert session.returncode == 0 and listed_proxies(session.stdout) == set(sandbox.proxies), session.stderr


def recreate_istiod(sandbox: Sandbox, istiod: dict) -> None:
    """The replica's pod again, as its ReplicaSet would make it. kwok may give it another address, as a real cluster
    would: istiod then runs there, its sidecars reconnect there, and the sandbox's list of replicas says so."""
    recreated = kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(istiod))
    assert recreated.returncode == 0, recreated.stderr
    address = mesh.wait_pod_ip("external", sandbox.istio_namespace, "istiod-1")
    if address != sandbox.istiods[1]:
        mesh.move_istiod(1, address, [sidecar for sidecar in sandbox.sidecars if sidecar.replica == 1])
        sandbox.istiods[1] = address


def test_an_aggregator_pod_deleted_under_load(sandbox: Sandbox, service: Shared, load: Load) -> None:
    victim = sorted(pods(sandbox))[0]
    assert service.service is not None
    with load.running():
        time.sleep(3)
        assert set(service.service.endpoints) <= set(service.service.sent), "both pods took calls before one went"
        assert kubectl(sandbox, "delete", "pod", victim, "--wait=false").returncode == 0
        wait_serving(replicas=2)
        time.sleep(3)
    check(sandbox, load)
    assert victim not in pods(sandbox)
    counted = load.counted()
    assert counted["answer"] > 10 * max(1, counted["retryable"]), counted


def test_the_deployments_image_rolled_under_load(sandbox: Sandbox, service: Shared, load: Load) -> None:
    rolled = image.publish("rolled")
    before = pods(sandbox)
    with load.running():
        time.sleep(3)
        changed = kubectl(sandbox, "set", "image", f"deployment/{NAME}", f"aggregator={rolled}")
        assert changed.returncode == 0, changed.stderr
        rollout = kubectl(sandbox, "rollout", "status", f"deployment/{NAME}", f"--timeout={READY_SECONDS}s")
        assert rollout.returncode == 0, rollout.stderr
        wait_serving(replicas=2)
        time.sleep(3)
    check(sandbox, load)
    after = json.loads(kubectl(sandbox, "get", "pods", "-l", f"app.kubernetes.io/name={NAME}", "-o", "json").stdout)["items"]
    assert not set(before) & set(pods(sandbox)), "every pod replaced"
    assert {pod["spec"]["containers"][0]["image"] for pod in after if not pod["metadata"].get("deletionTimestamp")} == {rolled}
    counted = load.counted()
    assert counted["answer"] > 10 * max(1, counted["retryable"]), counted
