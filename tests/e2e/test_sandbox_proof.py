"""The problem this project solves, shown with the real istioctl against real istiod replicas."""

from __future__ import annotations

import re

from tests.e2e.conftest import Sandbox


def listed_proxies(output: str) -> set[str]:
    """Proxy names in the first column of istioctl's proxy-status table."""
    return {line.split()[0] for line in output.splitlines()[1:] if line.strip()}


def test_istioctl_pointed_at_one_replica_sees_only_that_replicas_proxies(sandbox: Sandbox) -> None:
    seen: set[str] = set()
    for replica, address in enumerate(sandbox.istiods):
        result = sandbox.run(
            "istioctl",
            "proxy-status",
            "--context",
            "remote",
            "--istioNamespace",
            sandbox.istio_namespace,
            "-v",
            "1",
            extra_env={"ISTIOCTL_XDS_ADDRESS": f"{address}:15012"},
        )
        assert result.returncode == 0, result.stderr
        listed = listed_proxies(result.stdout)
        assert listed == set(sandbox.proxies_of(replica)), result.stdout
        # Each listed proxy has ACKed what its replica sent (CDS, EDS, LDS, RDS).
        assert all(len(re.findall(r"SYNCED", line)) == 4 for line in result.stdout.splitlines()[1:]), result.stdout
        seen |= listed
    # Every proxy exists and is connected, just not to the one replica istioctl reached.
    assert seen == set(sandbox.proxies)


def test_the_demo_shows_a_third_of_the_mesh_then_all_of_it(sandbox: Sandbox) -> None:
    """`python -m tests.sandbox demo`, the README's command for trying the plugin without a cluster."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tests.sandbox", "demo", "--keep"], env=sandbox.env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split("\n$ ")[1:]
    assert len(outputs) == 3, result.stdout
    alone, pod, local = ({line.split()[0] for line in output.splitlines()[2:] if line.strip()} for output in outputs)
    assert alone == set(sandbox.proxies_of(0)) and len(alone) < len(sandbox.proxies)
    assert pod == local == set(sandbox.proxies)
