"""Mistakes a user makes before any cluster is involved: one line, the next step, the right exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLUGIN = [sys.executable, "-m", "kubectl_istio_remote"]

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: down
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: someone
  user: {token: not-a-real-token}
contexts:
- name: down
  context: {cluster: down, user: someone}
current-context: down
"""


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    return str(path)


def plugin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PLUGIN, *args], capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": os.defpath})


@pytest.mark.parametrize("command", ["proxy-status", "shell", "cleanup", "doctor"])
def test_unknown_context_names_the_choices(kubeconfig: str, command: str) -> None:
    result = plugin(command, "--kubeconfig", kubeconfig, "--context", "prod")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown context 'prod' (--context); choose one of: down"


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_unreachable_api_server_is_named_with_its_address(kubeconfig: str, mode: str) -> None:
    result = plugin("proxy-status", "--kubeconfig", kubeconfig, "-i", "istio-system", "--mode", mode, "--native")
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach the API server of context down (https://127.0.0.1:9)")
    assert "Retrying" not in result.stderr


def test_missing_istioctl_when_asked_for(kubeconfig: str) -> None:
    result = plugin("proxy-status", "--kubeconfig", kubeconfig, "--istioctl", "/nonexistent/istioctl")
    assert result.returncode == 1
    assert "istioctl not found: /nonexistent/istioctl; check --istioctl, or use --native" in result.stderr


def test_usage_names_the_plugin_as_kubectl_runs_it(tmp_path: Path) -> None:
    link = tmp_path / "kubectl-istio_remote"
    link.write_text(f"#!{sys.executable}\nfrom kubectl_istio_remote.cli import main\nmain()\n")
    link.chmod(0o755)
    result = subprocess.run([str(link), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: kubectl istio-remote [OPTIONS] COMMAND")


def test_child_gets_our_sigterm_and_its_exit_status_is_ours() -> None:
    code = (
        "import sys; from kubectl_istio_remote.process import run_foreground; "
        "sys.exit(run_foreground(['sleep', '30'], {'PATH': '/usr/bin:/bin'}))"
    )
    runner = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.0)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=15) == 128 + signal.SIGTERM
