"""The mesh user without access to the control plane, as the two people involved work in the sandbox.

The operator installs the permanent aggregator in the external cluster (`manifest`, with a serving
certificate from their own CA) and advertises it in the remote cluster (`manifest --mesh`). The mesh
user is `remote-limited`: no right at all in external; in remote only the token of examples/rbac.yaml's
mesh-only binding and the advertisement every authenticated user may read. The real kube-apiservers,
the real istiods and the real istioctl; the API servers' audit logs show what the user asked for.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubectl_istio_remote.deploy.install import NAME
from kubectl_istio_remote.deploy.workload import AGGREGATOR_PORT
from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import Sandbox
from tests.e2e.test_faults import faults
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox import operator
from tests.sandbox.clusters import LIMITED_USER, audit_log
from tests.sandbox.mesh import ISTIO_NAMESPACE
from tests.sandbox.pki import Authority
from tests.sandbox.service_proxy import ServiceProxy

MESH_USER = ["--context", "remote-limited"]
#: What a mesh user may ask of the mesh cluster: read the advertisement, review their rights, get istioctl's token;
#: istioctl 1.28+ also lists and watches the webhooks. Nothing that creates, changes or removes an object.
MESH_USER_REQUESTS = {
    ("get", "configmaps", ""),
    ("create", "selfsubjectaccessreviews", ""),
    ("create", "serviceaccounts", "token"),
    ("list", "mutatingwebhookconfigurations", ""),
    ("watch", "mutatingwebhookconfigurations", ""),
}


@dataclass(frozen=True)
class Shared:
    address: str
    ca_file: Path
    server_name: str
    #: The operator's CA: a renewal is issued by it too.
    authority: Authority
    #: The Service's address for the mesh users, when they reach the install through it (else a pod's IP).
    service: ServiceProxy | None = None


def remote_admin(sandbox: Sandbox, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", "--context", "remote", "-n", sandbox.istio_namespace, *args]
    return subprocess.run(argv, input=stdin, env=sandbox.env, capture_output=True, text=True, timeout=60, check=False)


def advertise(sandbox: Sandbox, *args: str) -> None:
    """The operator's `manifest --mesh ARGS`, applied to the remote cluster."""
    printed = sandbox.run("kubectl-istio_remote", "manifest", "--mesh", "-i", sandbox.istio_namespace, *args)
    assert printed.returncode == 0, printed.stderr
    applied = remote_admin(sandbox, "apply", "-f", "-", stdin=printed.stdout)
    assert applied.returncode == 0, applied.stderr


@contextmanager
def shared_install(directory: Path, *, through_service: bool = False) -> Iterator[Shared]:
    """The operator's side (tests/sandbox/operator.py): the permanent install, advertised to the mesh at a pod's address
    (or the Service's, with `through_service`), and remote-limited's mesh-only rights. All removed afterwards."""
    with operator.permanent_install(directory) as installed, contextlib.ExitStack() as service:
        proxy = service.enter_context(ServiceProxy("external", ISTIO_NAMESPACE, NAME, AGGREGATOR_PORT)) if through_service else None
        address = proxy.address if proxy else installed.pods[0]
        with operator.mesh_users(address, installed.authority.cert_path, installed.server_name):
            yield Shared(address, installed.authority.cert_path, installed.server_name, installed.authority, proxy)


@pytest.fixture(scope="module")
def shared(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """Once for the module, in the running sandbox."""
    with shared_install(tmp_path_factory.mktemp("operator")) as installed:
        yield installed


@contextmanager
def requests_of_the_mesh_user() -> Iterator[dict[str, set[tuple[str, str, str]]]]:
    """What remote-limited's user asked of each API server while the block ran, as (verb, resource, subresource)."""
    asked: dict[str, set[tuple[str, str, str]]] = {}
    since = datetime.datetime.now(datetime.timezone.utc)
    yield asked
    for cluster in ("external", "remote"):
        asked[cluster] = set()
        for line in audit_log(cluster).read_text().splitlines():
            event = json.loads(line)
            when = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            if event["user"]["username"] == LIMITED_USER and when >= since:
                ref = event.get("objectRef") or {}
                asked[cluster].add((event["verb"], ref.get("resource", ""), ref.get("subresource", "")))


def every_way_of(sandbox: Sandbox, user: list[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """A mesh user's proxy-status in auto and shared mode, through istioctl and natively, and istioctl in a shell."""
    return {
        "auto, istioctl": sandbox.run("kubectl-istio_remote", "proxy-status", *user),
        "auto, native": sandbox.run("kubectl-istio_remote", "proxy-status", *user, "--native"),
        "shared, istioctl": sandbox.run("kubectl-istio_remote", "proxy-status", *user, "--mode", "shared"),
        "shared, native": sandbox.run("kubectl-istio_remote", "proxy-status", *user, "--mode", "shared", "--native"),
        "shell": sandbox.run("kubectl-istio_remote", "shell", *user, "--", "istioctl", "proxy-status", *user),
    }


def test_the_mesh_user_sees_every_proxy_and_asks_the_control_plane_nothing(sandbox: Sandbox, shared: Shared) -> None:
    """Auto mode finds the advertisement; shared mode is asked for; natively, through istioctl, and in a shell."""
    with requests_of_the_mesh_user() as asked:
        runs = every_way_of(sandbox, MESH_USER)
        version = sandbox.run("kubectl-istio_remote", "version", "--remote", *MESH_USER, "-o", "json")
        doctor = sandbox.run("kubectl-istio_remote", "doctor", *MESH_USER)
    for name, result in runs.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert listed_proxies(result.stdout) == set(sandbox.proxies), f"{name}: {result.stdout}"
    assert f"using the shared aggregator at {shared.address}, advertised by ConfigMap" in runs["auto, native"].stderr
    native = runs["auto, native"].stdout.splitlines()
    for index in range(len(sandbox.istiods)):  # the ISTIOD column names each proxy's replica, through the shared aggregator too
        for proxy in sandbox.proxies_of(index):
            assert any(line.split()[0] == proxy and f"istiod-{index}" in line for line in native[1:]), native
    assert version.returncode == 0, version.stderr
    assert sorted(replica["name"] for replica in json.loads(version.stdout)["controlPlane"]) == ["istiod-0", "istiod-1", "istiod-2"]
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "istiod replicas answering: istiod-0, istiod-1, istiod-2" in doctor.stdout, doctor.stdout
    assert asked["external"] == set(), asked["external"]
    assert asked["remote"] and asked["remote"] <= MESH_USER_REQUESTS, asked["remote"]


def test_a_mesh_user_of_the_second_cluster_sees_both_clusters(sandbox: Sandbox, shared: Shared) -> None:
    """remote-2's advertisement names its cluster (manifest --mesh --cluster-id remote-2): istiod reviews the user's
    token there; istioctl's calls go through a pass-through that names it."""
    from tests.e2e.test_mesh_clusters import clusters_of, every_cluster

    user = ["--context", "remote-2-limited"]
    runs = every_way_of(sandbox, user)
    for name, result in runs.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert clusters_of(result.stdout) == every_cluster(sandbox), f"{name}: {result.stdout}"
    for name in ("auto, istioctl", "shared, istioctl", "shell"):  # istioctl's table: one control plane, not our replica names
        assert {line.split()[2] for line in runs[name].stdout.splitlines()[1:]} == {"<external>"}, runs[name].stdout
    version = sandbox.run("kubectl-istio_remote", "version", "--remote", *user, "-o", "json")
    assert version.returncode == 0, version.stderr
    assert sum(row["proxies"] for row in json.loads(version.stdout)["dataPlane"]) == len(sandbox.proxies)
    doctor = sandbox.run("kubectl-istio_remote", "doctor", *user)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "the mesh cluster is named to istiod as Istio cluster remote-2" in doctor.stdout, doctor.stdout


def test_a_failed_replica_is_named_the_others_shown_and_the_exit_is_not_zero(sandbox: Sandbox, shared: Shared) -> None:
    with faults(sandbox, stopped=(1,)):
        result = sandbox.run("kubectl-istio_remote", "proxy-status", *MESH_USER, "--native")
        doctor = sandbox.run("kubectl-istio_remote", "doctor", *MESH_USER)
    assert result.returncode == ExitStatus.UNAVAILABLE, result.stderr
    expected = {proxy for index in (0, 2) for proxy in sandbox.proxies_of(index)}
    assert listed_proxies(result.stdout) == expected, result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: the shared aggregator at {shared.address} could not reach istiod istiod-1:"), result.stderr
    assert doctor.returncode != 0 and "[FAIL] istiod istiod-1" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize(
    ("advertised", "status", "said"),
    [
        (["--address", "127.0.0.1:1"], ExitStatus.UNAVAILABLE, "is unreachable: Connection refused; the operator's fix"),
        (["--host", ""], ExitStatus.UNAVAILABLE, "presented a certificate that does not verify against the advertised CA for '127."),
    ],
    ids=["unreachable", "certificate-mismatch"],
)
# Through istioctl the aggregator's health is checked first; natively the call itself is the check, explained when it fails.
@pytest.mark.parametrize("native", [[], ["--native"]], ids=["istioctl", "native"])
def test_a_broken_advertisement_is_one_line_naming_the_operators_fix(
    sandbox: Sandbox, shared: Shared, advertised: list[str], status: int, said: str, native: list[str]
) -> None:
    flags = {"--address": shared.address, "--ca-file": str(shared.ca_file), "--host": shared.server_name}
    flags.update(dict(zip(advertised[::2], advertised[1::2], strict=True)))
    advertise(sandbox, *[word for flag, value in flags.items() if value for word in (flag, value)])
    try:
        with requests_of_the_mesh_user() as asked:
            result = sandbox.run("kubectl-istio_remote", "proxy-status", *MESH_USER, *native)
            doctor = sandbox.run("kubectl-istio_remote", "doctor", *MESH_USER)
    finally:
        advertise(sandbox, "--address", shared.address, "--ca-file", str(shared.ca_file), "--host", shared.server_name)
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the shared aggregator at") and said in lines[-1], result.stderr
    assert "tell the mesh operator" in lines[-1]
    assert doctor.returncode != 0 and said in doctor.stdout, doctor.stdout
    assert asked["external"] == set() and asked["remote"] <= MESH_USER_REQUESTS, asked


def test_a_malformed_advertisement_is_one_line(sandbox: Sandbox, shared: Shared) -> None:
    patched = remote_admin(sandbox, "patch", "configmap", "istio-remote-aggregator", "--type=merge", "-p", '{"data":{"address":"nowhere"}}')
    assert patched.returncode == 0, patched.stderr
    try:
        result = sandbox.run("kubectl-istio_remote", "proxy-status", *MESH_USER)
    finally:
        advertise(sandbox, "--address", shared.address, "--ca-file", str(shared.ca_file), "--host", shared.server_name)
    assert result.returncode == ExitStatus.ERROR, result.stderr
    assert result.stderr.strip() == (
        f"error: ConfigMap {sandbox.istio_namespace}/istio-remote-aggregator of context remote-limited is malformed: "
        "'nowhere' is not HOST:PORT; ask the mesh operator to apply `kubectl istio-remote manifest --mesh` again, "
        "or pass --aggregator HOST:PORT"
    )


def test_without_an_advertisement_auto_mode_is_pod_mode_and_says_so(sandbox: Sandbox, shared: Shared) -> None:
    """The operator's and full-rights users keep pod mode where nothing is advertised; shared mode then says what to ask for."""
    removed = remote_admin(sandbox, "delete", "configmap", "istio-remote-aggregator")
    assert removed.returncode == 0, removed.stderr
    try:
        auto = sandbox.run("kubectl-istio_remote", "proxy-status", "--context", "remote", "--external-context", "external", "--native")
        refused = sandbox.run("kubectl-istio_remote", "proxy-status", *MESH_USER, "--mode", "shared")
    finally:
        advertise(sandbox, "--address", shared.address, "--ca-file", str(shared.ca_file), "--host", shared.server_name)
    assert auto.returncode == 0, auto.stderr
    assert listed_proxies(auto.stdout) == set(sandbox.proxies)
    assert "not found): running the aggregator in a pod (--mode pod)" in auto.stderr, auto.stderr
    assert refused.returncode == ExitStatus.ERROR and "no shared aggregator is advertised" in refused.stderr, refused.stderr
