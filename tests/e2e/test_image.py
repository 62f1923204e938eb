"""The production image as built by `python -m tests.sandbox build` from the repository's Dockerfile, pulled through the
sandbox's registry (which `up` starts) under its ghcr.io name and run hardened as a kubelet would run pod mode's pod: UID 65532, read-only
root, no capabilities, no new privileges, the in-cluster configuration and a projected ServiceAccount token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path

import portpicker
import yaml

from kubectl_istio_remote import IMAGE, IMAGE_REPOSITORY
from kubectl_istio_remote.aggregator.client import Connection, check_health
from kubectl_istio_remote.aggregator.queries import fetch
from kubectl_istio_remote.deploy.workload import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT
from kubectl_istio_remote.session.token import istioctl_token
from kubectl_istio_remote.status import ExitStatus
from tests.e2e.conftest import Sandbox
from tests.e2e.test_plugin import CLUSTERS, leftovers
from tests.e2e.test_sandbox_proof import listed_proxies
from tests.sandbox import containers, image
from tests.sandbox.clusters import KUBECONFIG, cluster, pinned
from tests.sandbox.procs import port_open

TOKEN_DIRECTORY = "/var/run/secrets/kubernetes.io/serviceaccount"
HARDENED = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", "--user=65532:65532", "--network=host"]
READER = "image-test-reader"


def containers_left(seconds: float = 15) -> list[str]:
    """The sandbox's pod containers, once the pod runner has had `seconds` to remove those of deleted pods."""
    deadline = time.monotonic() + seconds
    while True:
        names = image.podman("ps", "-a", "--filter", f"label={containers.LABEL}", "--format", "{{.Names}}").stdout.split()
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def kubectl(sandbox: Sandbox, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", "--context", "external", "-n", sandbox.istio_namespace, *args]
    return subprocess.run(argv, input=stdin, env=sandbox.env, capture_output=True, text=True, timeout=60, check=False)


def test_the_image_runs_the_frozen_plugin_as_65532_pulled_by_its_ghcr_name(sandbox: Sandbox) -> None:
    config = json.loads(image.podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    assert config["User"] == "65532:65532" and config["Entrypoint"] == ["kubectl-istio_remote"], config
    ran = image.podman("run", "--rm", "--pull=always", *HARDENED, IMAGE, "version", "-o", "json", timeout=120)
    assert json.loads(ran.stdout)["image"] == IMAGE, ran.stdout
    # The pull above went to the sandbox's registry: without the mirror, the same name cannot be pulled here.
    before = image.mirror_off()
    try:
        unmirrored = image.podman("pull", IMAGE, check=False, timeout=120)
    finally:
        image.mirror_restore(before)
    assert unmirrored.returncode != 0, unmirrored.stderr


def test_the_image_serves_every_proxy_from_in_cluster_credentials(sandbox: Sandbox, tmp_path: Path) -> None:
    """`serve --discover` in the container finds the istiods with the projected token alone and answers istioctl's request."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": READER},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": READER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER},
        "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": sandbox.istio_namespace}],
    }
    name = f"image-test-{uuid.uuid4().hex[:6]}"
    created = kubectl(sandbox, "create", "serviceaccount", READER)
    assert created.returncode == 0, created.stderr
    try:
        applied = kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump_all([role, binding]))
        assert applied.returncode == 0, applied.stderr
        projected = tmp_path / "serviceaccount"
        projected.mkdir()
        (projected / "token").write_text(kubectl(sandbox, "create", "token", READER).stdout.strip())
        ca = yaml.safe_load(KUBECONFIG.read_text())["clusters"][0]["cluster"]["certificate-authority"]
        (projected / "ca.crt").write_bytes(Path(ca).read_bytes())
        (projected / "namespace").write_text(sandbox.istio_namespace)
        projected.chmod(0o755)
        for file in projected.iterdir():
            file.chmod(0o644)
        host, _, port = cluster("external").server.removeprefix("https://").rpartition(":")
        listen = f"127.0.0.1:{portpicker.pick_unused_port()}"
        image.podman(
            "run", "-d", "--name", name, *HARDENED, "--pull=always",
            "-e", f"KUBERNETES_SERVICE_HOST={host}", "-e", f"KUBERNETES_SERVICE_PORT={port}",
            "-e", f"POD_NAMESPACE={sandbox.istio_namespace}", "-v", f"{projected}:{TOKEN_DIRECTORY}:ro",
            IMAGE, "serve", "--discover", "--listen", listen,
        )  # fmt: skip
        try:
            inspected = json.loads(image.podman("container", "inspect", name).stdout)[0]
            assert inspected["HostConfig"]["ReadonlyRootfs"] is True
            assert inspected["Config"]["User"] == "65532:65532"
            assert "no-new-privileges" in " ".join(inspected["HostConfig"]["SecurityOpt"])
            assert inspected["EffectiveCaps"] in (None, []), inspected["EffectiveCaps"]
            deadline = time.monotonic() + 60
            while not port_open(*listen.split(":")) and time.monotonic() < deadline:  # type: ignore[arg-type]
                time.sleep(0.5)
            connection = Connection(listen)
            assert asyncio.run(check_health(connection, timeout=10)), image.podman("logs", name).stderr
            token = istioctl_token(pinned("remote"), sandbox.istio_namespace)
            syncz = fetch(connection, token, sandbox.istio_namespace, None, 30)
            assert sorted(status.name for status in syncz.statuses) == sorted(sandbox.proxies)
            assert syncz.failed == []
        finally:
            logs = image.podman("logs", name, check=False)
            image.podman("rm", "-f", "-t", "5", name, check=False)
    finally:
        kubectl(sandbox, "delete", "rolebinding,role,serviceaccount", READER, "--ignore-not-found")
    assert image.podman("container", "exists", name, check=False).returncode != 0, "the container outlived its test"
    assert "listening on" in logs.stdout + logs.stderr, logs.stdout + logs.stderr


def test_pod_mode_runs_its_pod_from_the_image_and_an_unpullable_image_fails_with_the_pull_error(sandbox: Sandbox) -> None:
    """The default --image is pulled through the registry and lists every proxy; a tag no registry has is the pull
    error in one line, not a wait until --timeout, and nothing is left in either cluster."""
    listed = sandbox.run("kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "pod", "--native")
    assert listed.returncode == 0, listed.stderr
    assert listed_proxies(listed.stdout) == set(sandbox.proxies), listed.stdout
    # While a session runs, its pod's container as the pod runner made it from the pod's securityContext.
    inspect = (
        f'for name in $(podman ps --filter label={containers.LABEL} --format "{{{{.Names}}}}"); do podman container inspect '
        '--format "{{.ImageName}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.EffectiveCaps}} {{.HostConfig.SecurityOpt}}" '
        '"$name"; done'
    )
    inspected = sandbox.run(
        "kubectl-istio_remote", "shell", *CLUSTERS, "--mode", "pod", "--", "sh", "-c", inspect, extra_env=image.environment()
    )
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.split() == [IMAGE, "65532:65532", "true", "[]", "[no-new-privileges]"], inspected.stdout
    # Our repository's, and a mirror's (every pod the plugin makes runs, whatever its image: none is Ready by accident).
    for missing in (f"{IMAGE_REPOSITORY}:0.0.0-missing", "mirror.invalid/kubectl-istio-remote/proxy:0.1.0"):
        refused = sandbox.run(
            "kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "pod", "--native", "--image", missing, "--timeout", "120"
        )
        assert refused.returncode == ExitStatus.UNAVAILABLE, refused.stderr
        error = refused.stderr.strip().splitlines()[-1]
        assert ("ErrImagePull" in error or "ImagePullBackOff" in error) and f'failed to pull image "{missing}"' in error, refused.stderr
        assert "within --timeout" not in refused.stderr
    assert leftovers(sandbox) == []
    assert containers_left() == []


def test_a_container_that_exits_is_reported_in_its_pods_status(sandbox: Sandbox) -> None:
    """As a kubelet reports it: the container's state `terminated` with its exit code, and the pod no longer Ready."""
    name = f"image-exit-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY_CONTEXT,  # the namespace enforces PodSecurity "restricted"
            "containers": [
                {
                    "name": "once",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["no-such-command"],
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
        },
    }
    created = kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(pod))
    assert created.returncode == 0, created.stderr
    try:
        deadline, state = time.monotonic() + 90, {}
        while time.monotonic() < deadline and "terminated" not in state:
            shown = json.loads(kubectl(sandbox, "get", "pod", name, "-o", "json").stdout or "{}")
            statuses = shown.get("status", {}).get("containerStatuses") or [{}]
            state = statuses[0].get("state") or {}
            time.sleep(1)
        assert state.get("terminated", {}).get("exitCode") == 2, state  # a usage error: the plugin's exit code 2
        ready = [c["status"] for c in shown["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["False"], shown["status"]["conditions"]
    finally:
        kubectl(sandbox, "delete", "pod", name, "--wait=true")
    assert containers_left() == []
