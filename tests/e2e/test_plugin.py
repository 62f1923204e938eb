"""`kubectl istio-remote` as a user runs it, against the sandbox's two real clusters."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client, dynamic

from kubectl_istio_remote.kube.kinds import SESSION_KINDS
from kubectl_istio_remote.kube.labels import SELECTOR
from kubectl_istio_remote.kube.records import Meta, items
from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import Sandbox
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox import image, operator
from tests.sandbox.clusters import LIMITED_USER, api, apply, pinned

CLUSTERS = ["--context", "remote", "--external-context", "external"]


def leftovers(sandbox: Sandbox) -> list[str]:
    """Every object carrying our label in the istio namespace of either cluster."""
    found = []
    for context in ("external", "remote"):
        cluster = pinned(context)
        for kind in SESSION_KINDS:
            listed = items(cluster.list_objects(kind, sandbox.istio_namespace, labels=SELECTOR))
            found += [f"{context}/{kind.name.lower()}/{Meta.of(item).name}" for item in listed]
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind(sandbox: Sandbox):
    yield
    assert leftovers(sandbox) == []


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_proxy_status_runs_istioctl_and_lists_every_proxy(sandbox: Sandbox, mode: str) -> None:
    result = sandbox.run("kubectl", "istio-remote", "proxy-status", *CLUSTERS, "--mode", mode)
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_native_table_lists_every_proxy_with_its_replica(sandbox: Sandbox, mode: str) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", mode, "--native")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:4] == ["NAME", "CLUSTER", "ISTIOD", "VERSION"]
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert {name: row[1] for name, row in rows.items()} == {sidecar.name: sidecar.cluster.name for sidecar in sandbox.sidecars}
    assert {row[2] for row in rows.values()} == {f"istiod-{i}" for i in range(len(sandbox.istiods))}


def test_native_json_is_one_document_with_every_proxy(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--native", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["failedIstiods"] == []
    assert sorted(proxy["name"] for proxy in document["proxies"]) == sorted(sandbox.proxies)
    assert {proxy["istiod"] for proxy in document["proxies"]} == {f"istiod-{i}" for i in range(len(sandbox.istiods))}
    assert all(proxy["xds"]["CDS"]["status"] == "SYNCED" for proxy in document["proxies"]), document


def test_shell_runs_a_command_with_istioctl_pointed_at_the_aggregator(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "shell", *CLUSTERS, "--", "istioctl", "proxy-status", "--context", "remote")
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout


def test_shell_passes_the_commands_exit_code_through(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "shell", *CLUSTERS, "--mode", "local", "--", "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr


def test_user_without_rights_is_told_which_permission_is_missing(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", "--context", "remote-limited", "--external-context", "external-limited")
    assert result.returncode == ExitStatus.FORBIDDEN, result.stderr
    # Without a cluster-wide pod list the namespace cannot be discovered: istio-system is where it looks.
    assert result.stderr.strip().splitlines()[-1] == (
        "error: forbidden: cannot list pods in namespace istio-system of context external-limited: "
        'pods is forbidden: User "limited-user" cannot list resource "pods" in API group "" in the namespace "istio-system"; '
        "ask for RBAC 'list' on 'pods', or run `kubectl istio-remote doctor`"
    ), result.stderr


@pytest.mark.parametrize("user", [LIMITED_USER, "nobody-at-all"])
def test_impersonating_a_user_checks_that_users_rights_and_names_them(sandbox: Sandbox, user: str) -> None:
    """--as, as kubectl's: an admin's kubeconfig acting as a user without rights in the control plane is refused as that
    user would be (issue 20), in both clusters, and the error says whose rights are missing."""
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--as", user, "--mode", "pod")
    assert result.returncode == ExitStatus.FORBIDDEN, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: forbidden: "), error
    assert f"context external, as {user}" in error and f'User "{user}" cannot' in error, error
    assert "ask for RBAC" in error or "doctor" in error, error


def test_partial_rights_are_named_before_anything_is_created(sandbox: Sandbox) -> None:
    """A user who may read istiod pods but not create ours gets every missing right in one line."""
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "istiod-reader", "namespace": sandbox.istio_namespace},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "istiod-reader", "namespace": sandbox.istio_namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "istiod-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": LIMITED_USER}],
    }
    with api("external") as api_client:
        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(sandbox.istio_namespace, reader)
        rbac.create_namespaced_role_binding(sandbox.istio_namespace, binding)
        try:
            result = sandbox.run(
                "kubectl-istio_remote",
                "proxy-status",
                "--context",
                "remote",
                "--external-context",
                "external-limited",
                "-i",
                sandbox.istio_namespace,
            )
        finally:
            rbac.delete_namespaced_role_binding("istiod-reader", sandbox.istio_namespace)
            rbac.delete_namespaced_role("istiod-reader", sandbox.istio_namespace)
    assert result.returncode == ExitStatus.FORBIDDEN, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "create pods/portforward" in error and "create pods in" in error and "create roles" in error, error
    assert "doctor" in error


def test_the_documented_rbac_example_is_enough_for_both_modes(sandbox: Sandbox) -> None:
    """examples/rbac.yaml, bound to a user with no other rights, runs doctor and proxy-status."""
    documents = [doc for doc in yaml.safe_load_all(operator.EXAMPLE_RBAC.read_text()) if doc]
    for document in documents:
        if "namespace" in document["metadata"]:
            document["metadata"]["namespace"] = sandbox.istio_namespace
        if "subjects" in document:
            document["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": LIMITED_USER}]
    external, mesh = documents[:2], documents[2:]
    apply("external", external)
    apply("remote", mesh)
    limited = ["--context", "remote-limited", "--external-context", "external-limited", "-i", sandbox.istio_namespace]
    try:
        doctor = sandbox.run("kubectl-istio_remote", "doctor", *limited)
        runs = {mode: sandbox.run("kubectl-istio_remote", "proxy-status", *limited, "--mode", mode) for mode in ("pod", "local")}
    finally:
        for context, group in (("external", external), ("remote", mesh)):
            with api(context) as api_client:
                dyn = dynamic.DynamicClient(api_client)
                for document in group:
                    resource = dyn.resources.get(api_version=document["apiVersion"], kind=document["kind"])
                    resource_namespace = document["metadata"].get("namespace")
                    dyn.delete(resource, name=document["metadata"]["name"], namespace=resource_namespace)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "mutatingwebhookconfigurations" in doctor.stdout
    for mode, result in runs.items():
        assert result.returncode == 0, f"{mode}: {result.stderr}"
        assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout


def test_proxy_status_of_one_pod_shows_istioctls_comparison(sandbox: Sandbox) -> None:
    pod = [proxy for proxy in sandbox.proxies_of(len(sandbox.istiods) - 1) if proxy in sandbox.proxies_in("remote")][-1]
    result = sandbox.run("kubectl", "istio-remote", "proxy-status", pod, *CLUSTERS)
    assert result.returncode == 0, result.stderr
    assert "Clusters Match" in result.stdout and "Listeners Match" in result.stdout, result.stdout


def test_doctor_passes_for_a_full_rights_user(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl", "istio-remote", "doctor", *CLUSTERS)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("[ok]") for line in lines), result.stdout
    assert any("istiod pods found: istiod-0, istiod-1, istiod-2" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "status", "words"),
    [
        (
            ["-i", "default"],
            ExitStatus.ERROR,
            ["no istiod found", "app=istiod", "namespace default", "context external", "-i/--istio-namespace"],
        ),
        (["-i", "no-such-namespace"], ExitStatus.ERROR, ["namespace no-such-namespace does not exist", "context external"]),
        (["-i", "external-istiod", "--revision", "canary"], ExitStatus.ERROR, ["no istiod found", "istio.io/rev=canary", "--revision"]),
        (["--istioctl", "/nonexistent/istioctl"], ExitStatus.ERROR, ["istioctl not found", "--istioctl", "--native"]),
        # An image whose pod runs (the sandbox runs every pod the plugin makes) but never answers.
        (["--image", image.SILENT_IMAGE, "--timeout", "5"], ExitStatus.TIMEOUT, ["within --timeout", "raise --timeout"]),
    ],
    ids=["no-istiod", "missing-namespace", "wrong-revision", "istioctl-missing", "timeout"],
)
def test_bad_input_is_one_line_with_the_next_step(sandbox: Sandbox, args: list[str], status: int, words: list[str]) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, *args)
    assert result.returncode == status, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, result.stderr
    assert all(word in error[0] for word in words), error[0]


def test_arguments_after_double_dash_go_to_istioctl(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl", "istio-remote", "proxy-status", *CLUSTERS, "--", "-v", "1")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert {"CDS", "LDS", "EDS", "RDS"} <= set(header), result.stdout  # istioctl's per-type columns
    assert listed_proxies(result.stdout) == set(sandbox.proxies)
