"""`version`: what a bug report needs, without any cluster."""

from __future__ import annotations

import json
import os

import pytest

from kubectl_istio_remote import IMAGE, __version__
from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli


@pytest.fixture(autouse=True)
def no_istioctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.defpath)
    monkeypatch.delenv("KUBECTL_ISTIO_REMOTE_IMAGE", raising=False)


def test_json_names_the_plugin_version_the_missing_istioctl_and_the_default_image() -> None:
    result = run_cli("version", "-o", "json")
    assert result.exit_code == ExitStatus.SUCCESS, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == __version__
    assert report["istioctl"] is None
    assert report["image"] == IMAGE and IMAGE.endswith(f":{__version__}")


def test_a_mirrored_image_from_the_environment_is_the_one_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECTL_ISTIO_REMOTE_IMAGE", "registry.internal/istio-remote/proxy:0.1.0")
    result = run_cli("version")
    assert result.exit_code == ExitStatus.SUCCESS, result.stderr
    assert "image:    registry.internal/istio-remote/proxy:0.1.0" in result.stdout.splitlines()


def test_a_missing_istioctl_path_is_one_line_with_the_next_step() -> None:
    result = run_cli("version", "--istioctl", "/nonexistent/istioctl")
    assert result.exit_code == ExitStatus.ERROR
    assert result.stdout == ""
    assert result.stderr.strip() == "error: istioctl not found: /nonexistent/istioctl; check --istioctl, or use --native"
