"""No bearer token in anything the plugin or its pod prints, even with -v (issue 6).

`--native` makes the plugin request a token itself (TokenRequest in the mesh cluster) and send it
through the aggregator, and the pod authenticates to the API server with its own bound token:
both are JSON Web Tokens, and every JWT starts with base64('{"') = "eyJ".
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Sandbox
from tests.sandbox.procs import LOGS

JWT_PREFIX = "eyJ"
CLUSTERS = ["--context", "remote", "--external-context", "external"]


@pytest.mark.parametrize("mode", ["pod", "local"])
def test_verbose_output_and_the_pods_log_carry_no_token(sandbox: Sandbox, mode: str) -> None:
    pod_logs_before = set(LOGS.glob("pod-*.log"))
    result = sandbox.run("kubectl-istio_remote", "proxy-status", "--native", "-v", "--mode", mode, *CLUSTERS)
    assert result.returncode == 0, result.stderr
    assert all(proxy.split(".")[0] in result.stdout for proxy in sandbox.proxies), result.stdout
    pod_logs = sorted(set(LOGS.glob("pod-*.log")) - pod_logs_before)
    assert len(pod_logs) == (1 if mode == "pod" else 0)
    assert "aggregator reachable at 127.0.0.1:" in result.stderr, "-v logs the session's steps"
    captured = {"stdout": result.stdout, "stderr": result.stderr, **{path.name: path.read_text() for path in pod_logs}}
    assert all("listening on" in captured[path.name] for path in pod_logs), "the pod's log is where its output goes"
    assert [name for name, text in captured.items() if JWT_PREFIX in text] == []
