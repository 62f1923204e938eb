"""Credentials that fail before any request, and port-forwards that share nothing with other requests."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from kubectl_istio_remote.kube.kinds import POD
from kubectl_istio_remote.kube.portforward import open_tunnel
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli
from tests.doubles.apiserver import Answer, apiserver


def exec_kubeconfig(tmp_path: Path, server: str) -> Path:
    """A context whose user logs in through an exec credential plugin that says the login expired."""
    plugin = tmp_path / "mycloud-credential"
    plugin.write_text("#!/bin/sh\necho 'login required: run mycloud auth login' >&2\nexit 1\n")
    plugin.chmod(0o755)
    path = tmp_path / "kubeconfig"
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "interactiveMode": "Never"}}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "cloud-user", "user": user}],
                "contexts": [{"name": "cloud", "context": {"cluster": "c", "user": "cloud-user"}}],
                "current-context": "cloud",
            }
        )
    )
    return path


@pytest.mark.parametrize("command", ["proxy-status", "doctor", "cleanup"])
def test_a_failing_credential_plugin_is_one_line_after_its_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], command: str
) -> None:
    """The plugin's stderr is the user's, as kubectl leaves it (a device-code login prints there); then our one line."""
    monkeypatch.setenv("PATH", os.defpath)
    with apiserver(tmp_path) as (cluster, script):
        kubeconfig = exec_kubeconfig(tmp_path, cluster.host)
        result = run_cli(command, "--kubeconfig", str(kubeconfig), "-i", "istio-system")
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.splitlines() == [
        "error: the credential plugin of context cloud failed: exit 1 (its own message is above); "
        "log in again as the plugin's message says, or check that context's user in your kubeconfig"
    ]
    assert "login required: run mycloud auth login" in capfd.readouterr().err
    assert script.requests == [], "nothing is asked of the API server without credentials"


def test_port_forwards_in_threads_leave_the_other_requests_alone(tmp_path: Path) -> None:
    """kubernetes.stream.portforward swapped call_api on the ApiClient it was given; ours opens its own websocket."""
    with apiserver(tmp_path) as (cluster, script):
        script.on("GET", POD.path("istio-system"), Answer(200, {"kind": "PodList", "items": []}))
        failures: list[BaseException] = []

        def forward() -> None:
            for _ in range(5):
                try:
                    open_tunnel(cluster, "istio-system", "istiod-0", 15012)
                except Exception as error:  # the stand-in speaks no websocket: each attempt fails, as intended
                    assert "Missing required parameter" not in str(error)

        def list_pods() -> None:
            try:
                for _ in range(20):
                    assert cluster.list_objects(POD, "istio-system") == {"kind": "PodList", "items": []}
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=forward) for _ in range(4)] + [threading.Thread(target=list_pods) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert failures == []
