"""Mistakes a user makes before any cluster is involved: one line, the next step, the right exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli

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
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kubeconfig whose only API server does not listen, and a PATH without istioctl."""
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("ISTIOCTL_ISTIONAMESPACE", raising=False)
    return str(path)


@pytest.mark.parametrize("command", ["proxy-status", "shell", "cleanup", "doctor"])
def test_unknown_context_names_the_choices(kubeconfig: str, command: str) -> None:
    result = run_cli(command, "--kubeconfig", kubeconfig, "--context", "prod")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.strip() == "error: unknown context 'prod' (--context); choose one of: down"


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_unreachable_api_server_is_named_with_its_address(kubeconfig: str, mode: str) -> None:
    result = run_cli("proxy-status", "--kubeconfig", kubeconfig, "-i", "istio-system", "--mode", mode, "--native")
    assert result.exit_code == ExitStatus.UNAVAILABLE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the API server of context down (https://127.0.0.1:9)"), lines[0]
    assert lines[0].endswith("; check the network, VPN or --context")


def test_missing_istioctl_when_asked_for(kubeconfig: str) -> None:
    result = run_cli("proxy-status", "--kubeconfig", kubeconfig, "--istioctl", "/nonexistent/istioctl")
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.strip() == "error: istioctl not found: /nonexistent/istioctl; check --istioctl, or use --native"


def test_an_unknown_flag_is_a_usage_error_naming_it(kubeconfig: str) -> None:
    result = run_cli("proxy-status", "--no-such-flag")
    assert result.exit_code == ExitStatus.USAGE
    assert "No such option" in result.stderr and "--no-such-flag" in result.stderr  # click 8.1 and 8.2+ word it apart
    assert result.stdout == ""


def test_usage_names_the_plugin_as_kubectl_runs_it() -> None:
    result = run_cli("--help")
    assert result.exit_code == ExitStatus.SUCCESS
    assert result.stdout.startswith("Usage: kubectl istio-remote [OPTIONS] COMMAND")


def test_every_command_lists_its_session_flags_in_its_help() -> None:
    """The flags are part of each command's own signature, so --help shows them."""
    for command, flags in {
        "proxy-status": ["--context", "--external-context", "--mode", "--image", "--pull-policy", "--ttl"],
        "shell": ["--context", "--external-context", "--mode", "--image", "--pull-policy", "--shell"],
        "doctor": ["--context", "--external-context", "--mode", "--istioctl"],
        "cleanup": ["--context", "--external-context", "--session", "--dry-run"],
    }.items():
        text = run_cli(command, "--help").stdout
        assert all(flag in text for flag in flags), (command, text)


def test_child_gets_our_sigterm_and_its_exit_status_is_ours() -> None:
    code = (
        "import sys; from kubectl_istio_remote.process import run_foreground; "
        "sys.exit(run_foreground(['sleep', '30'], {'PATH': '/usr/bin:/bin'}))"
    )
    runner = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.0)
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=15) == 128 + signal.SIGTERM
