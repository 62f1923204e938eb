"""`version`: what a bug report needs, without any cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from kubectl_istio_remote import IMAGE, __version__

PLUGIN = [sys.executable, "-m", "kubectl_istio_remote", "version"]


def version(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PLUGIN, *args], capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": os.defpath, **env})


def test_json_names_the_plugin_version_the_missing_istioctl_and_the_default_image() -> None:
    result = version("-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == __version__
    assert report["istioctl"] is None
    assert report["image"] == IMAGE and IMAGE.endswith(f":{__version__}")


def test_a_mirrored_image_from_the_environment_is_the_one_reported() -> None:
    result = version(KUBECTL_ISTIO_REMOTE_IMAGE="registry.internal/istio-remote/proxy:0.1.0")
    assert "image:    registry.internal/istio-remote/proxy:0.1.0" in result.stdout


def test_a_missing_istioctl_path_is_one_line_with_the_next_step() -> None:
    result = version("--istioctl", "/nonexistent/istioctl")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: istioctl not found: /nonexistent/istioctl; check --istioctl, or use --native"
