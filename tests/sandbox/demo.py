"""`python -m tests.sandbox demo`: the problem and the plugin's answer, on the sandbox, for someone without a cluster.

Builds what is missing (cold: ~20 minutes for Kubernetes, etcd, kwok, istio, krew on 2 cores;
cached afterwards), brings the sandbox up, runs istioctl straight at one istiod replica (what a
mesh user can do today: a third of the mesh) and `kubectl istio-remote proxy-status` in pod mode
and in local mode (all of it), then brings the sandbox down unless it was already running.
"""

from __future__ import annotations

import subprocess
import sys

from tests.sandbox import sandbox
from tests.sandbox.mesh import ISTIO_NAMESPACE, istiod_addresses
from tests.sandbox.paths import log

ISTIODS, PROXIES = 3, 6
CLUSTERS = ["--context", "remote", "--external-context", "external"]


def _show(title: str, argv: list[str], env: dict[str, str]) -> bool:
    print(f"\n$ {' '.join(argv)}    # {title}", flush=True)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        print(f"(exit {result.returncode}) {result.stderr.strip()}", file=sys.stderr)
    return result.returncode == 0


def run(keep: bool) -> int:
    was_running = sandbox.is_running(ISTIODS, PROXIES)
    sandbox.up(ISTIODS, PROXIES)
    try:
        env = sandbox.process_environment()
        one = istiod_addresses()[0]
        steps = [
            (
                "istioctl against one istiod replica, as a mesh user can today: a third of the mesh",
                ["istioctl", "proxy-status", "--context", "remote", "-i", ISTIO_NAMESPACE],
                {**env, "ISTIOCTL_XDS_ADDRESS": f"{one}:15012"},
            ),
            (
                "pod mode: a short-lived aggregator pod next to istiod, every replica",
                ["kubectl", "istio-remote", "proxy-status", *CLUSTERS],
                env,
            ),
            (
                "local mode: no pod, one port-forward per replica",
                ["kubectl", "istio-remote", "proxy-status", *CLUSTERS, "--mode", "local"],
                env,
            ),
        ]
        shown = [_show(title, argv, step_env) for title, argv, step_env in steps]  # every step, even after a failure
        ok = all(shown)
    finally:
        if not (keep or was_running):
            sandbox.down()
        else:
            log('sandbox left running: `eval "$(python -m tests.sandbox env)"` to use it, `python -m tests.sandbox down` to stop it')
    return 0 if ok else 1
