"""The sandbox (tests/sandbox) as the benchmarks use it: through its command line, as a user would."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from kubectl_istio_remote.istio import ISTIOD_LABEL
from kubectl_istio_remote.kube.cluster import Cluster, transport_for
from kubectl_istio_remote.kube.kinds import POD
from kubectl_istio_remote.kube.records import Pod, items

SANDBOX = [sys.executable, "-m", "tests.sandbox"]
ISTIODS, PROXIES = 3, 6
SHAPE = ["--istiods", str(ISTIODS), "--proxies", str(PROXIES)]


@dataclass(frozen=True)
class Sandbox:
    env: dict[str, str]
    istio_namespace: str
    #: Pod IPs of the istiod replicas, by pod name.
    istiods: list[str]


def _exports() -> dict[str, str]:
    """What `eval "$(python -m tests.sandbox env)"` sets, applied to this process's environment."""
    printed = subprocess.run([*SANDBOX, "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for name, value in re.findall(r'^export (\w+)="(.*)"$', printed, re.MULTILINE):
        env[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    return env


@contextlib.contextmanager
def running_sandbox() -> Iterator[Sandbox]:
    """The sandbox brought up if it is not running, and left as found."""
    was_running = subprocess.run([*SANDBOX, "status", *SHAPE], capture_output=True).returncode == 0
    subprocess.run([*SANDBOX, "up", *SHAPE], check=True)
    try:
        env = _exports()
        external = Cluster("external", env["KUBECONFIG"], transport_for(env["KUBECONFIG"], "external"))
        pods = sorted((Pod.of(obj) for obj in items(external.list_objects(POD, labels=ISTIOD_LABEL))), key=lambda pod: pod.name)
        yield Sandbox(env, pods[0].meta.namespace, [pod.pod_ip for pod in pods])
    finally:
        if not was_running:
            subprocess.run([*SANDBOX, "down"], check=True)
