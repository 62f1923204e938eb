"""The operator's permanent install (`manifest`), applied to the sandbox's external cluster with the
real kubectl, run by the real Deployment controller and scheduler, and used by the real istioctl."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

from kubectl_istio_remote.aggregator.tls import self_signed_pair
from kubectl_istio_remote.deploy.install import NAME
from kubectl_istio_remote.deploy.workload import AGGREGATOR_PORT
from tests.e2e.conftest import Sandbox
from tests.sandbox.operator import READY_SECONDS, ready_endpoints, wait_serving, wait_stopped


def kubectl(sandbox: Sandbox, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--context", "external", "-n", sandbox.istio_namespace, *args],
        input=stdin, env=sandbox.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_permanent_install_serves_istioctl_every_proxy_with_the_operators_certificate(sandbox: Sandbox, tmp_path: Path) -> None:
    key, certificate = self_signed_pair([f"{NAME}.{sandbox.istio_namespace}.svc"], [])
    (tmp_path / "tls.key").write_bytes(key)
    (tmp_path / "tls.crt").write_bytes(certificate)
    printed = sandbox.run("kubectl-istio_remote", "manifest", "-n", sandbox.istio_namespace)
    assert printed.returncode == 0, printed.stderr
    try:
        secret = kubectl(
            sandbox, "create", "secret", "tls", f"{NAME}-tls", f"--cert={tmp_path / 'tls.crt'}", f"--key={tmp_path / 'tls.key'}"
        )
        assert secret.returncode == 0, secret.stderr
        applied = kubectl(sandbox, "apply", "-f", "-", stdin=printed.stdout)
        assert applied.returncode == 0, applied.stderr  # admitted under PodSecurity "restricted" too
        rollout = kubectl(sandbox, "rollout", "status", f"deployment/{NAME}", f"--timeout={READY_SECONDS}s")
        assert rollout.returncode == 0, rollout.stderr

        addresses = wait_serving(replicas=2)
        served = ssl.get_server_certificate((addresses[0], AGGREGATOR_PORT), timeout=10)
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(certificate.decode())

        for address in addresses:
            status = sandbox.run(
                "istioctl", "proxy-status", "--context", "remote",
                extra_env={"ISTIOCTL_XDS_ADDRESS": f"{address}:{AGGREGATOR_PORT}", "ISTIOCTL_ISTIONAMESPACE": sandbox.istio_namespace, "ISTIOCTL_INSECURE": "true"},
            )  # fmt: skip
            assert status.returncode == 0, status.stderr
            assert all(proxy in status.stdout for proxy in sandbox.proxies), status.stdout

        # A shared aggregator reads for everyone, and changes nothing for anyone: a push to every proxy is refused.
        shared = {
            "ISTIOCTL_XDS_ADDRESS": f"{addresses[0]}:{AGGREGATOR_PORT}",
            "ISTIOCTL_ISTIONAMESPACE": sandbox.istio_namespace,
            "ISTIOCTL_INSECURE": "true",
        }
        pages = sandbox.run("istioctl", "x", "internal-debug", "syncz", "--context", "remote", extra_env=shared)
        assert pages.returncode == 0, pages.stderr
        assert sorted(entry["proxy"] for entry in json.loads(pages.stdout)) == sorted(sandbox.proxies)
        push = sandbox.run("istioctl", "x", "internal-debug", "adsz?push=true", "--context", "remote", extra_env=shared)
        assert push.returncode != 0, push.stdout
        assert "PermissionDenied" in push.stderr and "serve --allow-debug-changes" in push.stderr, push.stderr
    finally:
        serving = ready_endpoints()
        kubectl(sandbox, "delete", "--cascade=foreground", "--wait=true", "-f", "-", stdin=printed.stdout)
        kubectl(sandbox, "delete", "secret", f"{NAME}-tls", "--ignore-not-found")
        wait_stopped(serving)
    assert kubectl(sandbox, "get", "pods", "-l", f"app.kubernetes.io/name={NAME}", "-o", "name").stdout.strip() == ""


def test_the_mesh_side_lets_a_user_without_rights_read_the_advertisement_and_nothing_else(sandbox: Sandbox) -> None:
    printed = sandbox.run("kubectl-istio_remote", "manifest", "--mesh", "-i", sandbox.istio_namespace, "--address", "127.0.0.1:15012")
    assert printed.returncode == 0, printed.stderr

    def remote(*args: str, user: str = "remote", stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["kubectl", "--context", user, "-n", sandbox.istio_namespace, *args]
        return subprocess.run(argv, input=stdin, env=sandbox.env, capture_output=True, text=True, timeout=60, check=False)

    applied = remote("apply", "-f", "-", stdin=printed.stdout)
    assert applied.returncode == 0, applied.stderr
    try:
        read = remote("get", "configmap", "istio-remote-aggregator", "-o", "jsonpath={.data.address}", user="remote-limited")
        assert read.returncode == 0 and read.stdout == "127.0.0.1:15012", read.stderr
        for forbidden in (["get", "configmaps"], ["get", "configmap", "istio-ca-root-cert"], ["get", "secrets"]):
            refused = remote(*forbidden, user="remote-limited")
            assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), (forbidden, refused.stdout)
    finally:
        remote("delete", "-f", "-", stdin=printed.stdout)
