"""End-to-end benchmarks of `proxy-status` in the sandbox (issue 4), one run, printed as a Markdown table.

1. `kubectl istio-remote proxy-status --mode local` (port-forwards, in-process aggregator, real
   istioctl) vs the real istioctl pointed straight at one istiod replica (what users do today,
   seeing a third of the mesh). Target: <= 1.3x.
2. Pod mode vs local mode. Target: pod mode <= 2 s more.

Run: `python -m bench.plugin` (brings the sandbox up if it is not running, leaves it as found).
"""

from __future__ import annotations

import statistics

from bench.sandbox import running_sandbox
from bench.timing import as_installed, run_samples

ROUNDS = 7
CLUSTERS = ["--context", "remote", "--external-context", "external"]


def timed(argv: list[str], env: dict[str, str], rounds: int = ROUNDS) -> float:
    """Median wall time in seconds over `rounds` runs after one warm-up."""
    return statistics.median(run_samples(argv, env, rounds))


def main() -> None:
    as_installed()
    with running_sandbox() as sandbox:
        env = sandbox.env
        one_replica = timed(
            ["istioctl", "proxy-status", "--context", "remote", "-i", sandbox.istio_namespace],
            {**env, "ISTIOCTL_XDS_ADDRESS": f"{sandbox.istiods[0]}:15012"},
        )
        local = timed(["kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "local"], env)
        pod = timed(["kubectl-istio_remote", "proxy-status", *CLUSTERS, "--mode", "pod"], env)
    ratio = local / one_replica
    extra = pod - local
    print(f"### `proxy-status` end to end: 3 istiod replicas, 6 sidecars (median of {ROUNDS})\n")
    print("| measure | value | against target |")
    print("|---|---|---|")
    print(f"| real istioctl straight at one replica (sees 1/3 of the mesh) | {one_replica * 1000:.0f} ms |  |")
    print(
        f"| `proxy-status --mode local` (whole mesh) | {local * 1000:.0f} ms | {ratio:.2f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}) |"
    )
    print(
        f"| `proxy-status --mode pod` (whole mesh) | {pod * 1000:.0f} ms | +{extra:.2f} s over local (target <= 2 s: {'met' if extra <= 2 else 'NOT met'}) |"
    )


if __name__ == "__main__":
    main()
