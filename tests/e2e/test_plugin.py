"""`kubectl istio-remote` as a user runs it, against the sandbox's two real clusters."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from kubectl_istio_remote.cleanup import SELECTOR
from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import Sandbox
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox.clusters import api

CLUSTERS = ["--context", "remote", "--external-context", "external"]


def leftovers(sandbox: Sandbox) -> list[str]:
    """Every object carrying our label in the istio namespace of either cluster."""
    found = []
    for context in ("external", "remote"):
        with api(context) as api_client:
            core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
            for kind, lister in (
                ("pod", core.list_namespaced_pod),
                ("serviceaccount", core.list_namespaced_service_account),
                ("role", rbac.list_namespaced_role),
                ("rolebinding", rbac.list_namespaced_role_binding),
            ):
                found += [f"{context}/{kind}/{item.metadata.name}" for item in lister(sandbox.istio_namespace, label_selector=SELECTOR).items]
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
    assert {row[1] for row in rows.values()} == {"remote"}
    assert {row[2] for row in rows.values()} == {f"istiod-{i}" for i in range(len(sandbox.istiods))}


def test_native_json_is_one_document_with_every_proxy(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--native", "-o", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    names = json.dumps(document)
    assert all(proxy in names for proxy in sandbox.proxies)


def test_shell_runs_a_command_with_istioctl_pointed_at_the_aggregator(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "shell", *CLUSTERS, "--", "istioctl", "proxy-status", "--context", "remote")
    assert result.returncode == 0, result.stderr
    assert listed_proxies(result.stdout) == set(sandbox.proxies), result.stdout


def test_shell_passes_the_commands_exit_code_through(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "shell", *CLUSTERS, "--mode", "local", "--", "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr


def test_unknown_context_is_a_one_line_usage_error(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", "--context", "no-such-context")
    assert result.returncode == ExitStatus.USAGE
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-context" in result.stderr


def test_user_without_rights_is_told_which_permission_is_missing(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "proxy-status", "--context", "remote-limited", "--external-context", "external-limited")
    assert result.returncode == ExitStatus.FORBIDDEN, result.stderr
    assert "forbidden" in result.stderr.lower() or "cannot" in result.stderr.lower()
