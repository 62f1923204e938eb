"""`version` reports the istioctl a session would run: the sandbox's real one."""

from __future__ import annotations

import json

from tests.e2e.conftest import Sandbox


def test_version_reports_the_istioctl_on_path(sandbox: Sandbox) -> None:
    result = sandbox.run("kubectl-istio_remote", "version", "-o", "json")
    assert result.returncode == 0, result.stderr
    istioctl = json.loads(result.stdout)["istioctl"]
    assert istioctl["version"].startswith("1.31") and istioctl["path"].endswith("istioctl")
