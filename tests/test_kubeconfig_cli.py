"""The kubeconfig forms as a user has them, through the CLI in-process (not the loader alone): KUBECONFIG's
list of files, no kubeconfig at all inside a pod, and a kubeconfig that impersonates.

Each run asks the scripted API server for istiod pods and finds none: the one error line names the
namespace it looked in, so the run got as far as a listed answer with the credentials expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.kube import kubeconfig
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import Result, run_cli
from tests.doubles.apiserver import Answer, Script, stand_in
from tests.test_kubeconfig import server_tls, write_kubeconfig

PODS = "/api/v1/namespaces/istio-system/pods"
COMMAND = ("proxy-status", "--native", "--mode", "local", "-i", "istio-system", "--timeout", "5")


def istiod_less_script() -> Script:
    script = Script()
    script.on("GET", PODS, Answer(200, {"kind": "PodList", "items": []}))
    script.on("GET", "/api/v1/namespaces/istio-system", Answer(200, {"kind": "Namespace", "metadata": {"name": "istio-system"}}))
    script.on("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", Answer(201, {"status": {"allowed": True}}))
    return script


def assert_reached_and_found_no_istiod(result: Result, script: Script) -> None:
    assert result.exit_code != ExitStatus.SUCCESS
    assert result.stderr.splitlines()[-1].startswith(
        "error: no istiod found: no running pods with label app=istiod in namespace istio-system"
    ), result.stderr
    assert PODS in script.sent("GET"), result.stderr


def test_kubeconfig_lists_several_files_as_kubectl_merges_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG=a:b (the issue's blocker): the first file's current context, its user's token file, relative to it."""
    script = istiod_less_script()
    with stand_in(script) as url:
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "token").write_text("from-a\n")
        first = write_kubeconfig(tmp_path / "a" / "config", {"c": {"server": url}}, {"u": {"tokenFile": "token"}}, {"a": ("c", "u")}, "a")
        second = write_kubeconfig(
            tmp_path / "b.yaml", {"c": {"server": "http://127.0.0.1:9"}}, {"u": {"token": "from-b"}}, {"b": ("c", "u")}, "b"
        )
        monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)]))
        result = run_cli(*COMMAND)
    assert_reached_and_found_no_istiod(result, script)
    assert set(script.credentials) == {"Bearer from-a"}


def test_without_a_kubeconfig_a_pod_uses_its_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl's in-cluster fallback, for a CI job in a pod: the mounted token and CA, the service's host and port."""
    key, certificate = self_signed_pair(["kubernetes.default.svc"], ["127.0.0.1"])
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_bytes(certificate)
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    script = istiod_less_script()
    with stand_in(script, tls=server_tls(certificate, key)) as url:
        host, _, port = url.removeprefix("https://").rpartition(":")
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
        result = run_cli(*COMMAND)
    assert_reached_and_found_no_istiod(result, script)
    assert set(script.credentials) == {"Bearer pod-token"}


def test_without_a_kubeconfig_outside_a_pod_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT", tmp_path / "serviceaccount")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    result = run_cli(*COMMAND)
    assert result.exit_code != ExitStatus.SUCCESS
    assert result.stderr.startswith(f"error: cannot load kubeconfig: no file at {tmp_path / 'none'}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_the_api_servers_warnings_are_said_once_as_kubectl_says_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Warning header (a deprecated API, a PodSecurity violation) reaches the user, each text once (client-go's handler)."""
    script = istiod_less_script()
    deprecated = '299 - "v1 ComponentStatus is deprecated in v1.19+"'
    escaped = '299 - "would violate PodSecurity \\"restricted:latest\\""'
    listed = Answer(200, {"kind": "PodList", "items": []}, headers=[("Warning", deprecated), ("Warning", escaped)])
    script.on("GET", PODS, listed)
    script.on("GET", "/api/v1/namespaces/istio-system", Answer(200, {"kind": "Namespace"}, headers=[("Warning", deprecated)]))
    with stand_in(script) as url:
        path = write_kubeconfig(tmp_path / "config", {"c": {"server": url}}, {"u": {"token": "t"}}, {"a": ("c", "u")}, "a")
        result = run_cli(*COMMAND, "--kubeconfig", str(path))
    assert_reached_and_found_no_istiod(result, script)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: v1 ComponentStatus is deprecated in v1.19+", 'warning: would violate PodSecurity "restricted:latest"']
