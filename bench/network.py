"""The plugin over a slow network (issue 11): toxiproxy in front of both API servers, RTT 0, 50 and 150 ms.

For each command: median wall time, effective sequential round trips (T(rtt) - T(0)) / rtt, CPU
seconds (the command and its children, istioctl included), and the requests it sent to each API
server (from the API servers' audit logs, by user agent: ours and istioctl's; the aggregator pod's
own requests do not cross the slow link and are left out). Targets: local mode <= 12 effective
round trips, pod mode <= 20, local mode's CPU at 0 ms <= 0.6 s; a mesh user of the shared aggregator
(`remote-limited`, shared and auto mode) <= 5, the aggregator behind the same round trip as the API
servers (it is across the same network from the user).

Run: `python -m bench.network` (brings the sandbox up if it is not running, leaves it as found).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sandbox import SANDBOX, Sandbox, running_sandbox
from bench.timing import as_installed

ROUNDS = int(os.environ.get("NETWORK_ROUNDS", "5"))
#: Where the plugin remembers (session/warm_start): one directory kept through a row's runs, or a new one for each run.
CACHE, REMEMBERED, FRESH = "XDG_CACHE_HOME", "kept through the runs", "new for each run"
RTTS_MS = (0, 50, 150)
CLUSTERS = ["--context", "remote", "--external-context", "external"]
#: User agents of the requests that cross the slow link: the plugin on the user's machine, and istioctl.
OURS = "kubectl-istio-remote/"
SERVE_AGENT = "kubectl-istio-remote/serve"
MESH_USER = ["--context", "remote-limited"]
TARGETS = {
    "proxy-status --mode local": 12,
    "proxy-status --mode pod": 20,
    "mesh user: proxy-status --mode shared": 5,
    "mesh user: proxy-status --mode shared --native": 5,
    "mesh user: proxy-status --mode shared --native, nothing remembered": 5,
    "mesh user: proxy-status (auto finds the advertisement)": 5,
}


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    requests: dict[str, int]
    #: Seconds from starting the command to the first request an API server received from it.
    first_request: float | None


def commands(sandbox: Sandbox) -> dict[str, tuple[list[str], dict[str, str]]]:
    direct = {"ISTIOCTL_XDS_ADDRESS": f"{sandbox.istiods[0]}:15012"}
    plugin = ["kubectl-istio_remote"]
    native = [*plugin, "proxy-status", *MESH_USER, "--mode", "shared", "--native"]
    return {
        "istioctl straight at one replica": (["istioctl", "proxy-status", "--context", "remote", "-i", sandbox.istio_namespace], direct),
        "proxy-status --mode local": ([*plugin, "proxy-status", *CLUSTERS, "--mode", "local"], {}),
        "proxy-status --mode local --native": ([*plugin, "proxy-status", *CLUSTERS, "--mode", "local", "--native"], {}),
        "proxy-status --mode pod": ([*plugin, "proxy-status", *CLUSTERS, "--mode", "pod"], {}),
        "proxy-status --mode pod --native": ([*plugin, "proxy-status", *CLUSTERS, "--mode", "pod", "--native"], {}),
        "shell --mode local -- true": ([*plugin, "shell", *CLUSTERS, "--mode", "local", "--", "true"], {}),
        "shell --mode pod -- true": ([*plugin, "shell", *CLUSTERS, "--mode", "pod", "--", "true"], {}),
        "mesh user: proxy-status --mode shared": ([*plugin, "proxy-status", *MESH_USER, "--mode", "shared"], {}),
        # A native run remembers the aggregator it found (session/warm_start) and the next one starts on it; the row
        # "nothing remembered" is every mesh user's first run, and each run after the aggregator moved.
        "mesh user: proxy-status --mode shared --native": (native, {CACHE: REMEMBERED}),
        "mesh user: proxy-status --mode shared --native, nothing remembered": (native, {CACHE: FRESH}),
        "mesh user: proxy-status (auto finds the advertisement)": ([*plugin, "proxy-status", *MESH_USER], {}),
    }


def latency(rtt_ms: int, aggregator: str) -> dict[str, object]:
    """Set the toxiproxies' round trip, the shared aggregator's too; returns the slow kubeconfig, the audit logs and
    where the slowed aggregator listens."""
    argv = [*SANDBOX, "latency", "--rtt-ms", str(rtt_ms), "--also", f"aggregator={aggregator}"]
    return dict(json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout))


@contextlib.contextmanager
def shared_aggregator() -> Iterator[str]:
    """The operator's permanent install, advertised to remote-limited at its address behind the slow link; yields
    the address of the pod behind it."""
    from tests.sandbox import operator

    with tempfile.TemporaryDirectory() as directory, operator.permanent_install(Path(directory)) as installed:
        slowed = str(latency(0, installed.pods[0])["also"]["aggregator"])  # type: ignore[index]
        with operator.mesh_users(slowed, installed.authority.cert_path, installed.server_name):
            yield installed.pods[0]


def crossed_the_link(event: dict[str, Any]) -> bool:
    """Sent from the user's machine: by the plugin, by istioctl, or a port-forward websocket (whose agent is the websocket library's)."""
    agent = str(event.get("userAgent", ""))
    subresource = (event.get("objectRef") or {}).get("subresource")
    if agent.startswith(SERVE_AGENT):
        return False
    return agent.startswith((OURS, "istioctl")) or subresource == "portforward"


def requests_since(offsets: dict[str, int], logs: dict[str, str]) -> tuple[dict[str, int], list[float]]:
    """Per API server, the requests that crossed the link since `offsets`; and when each was received (epoch seconds)."""
    counts, received = {}, []
    for cluster, path in logs.items():
        with open(path, "rb") as log:
            log.seek(offsets[cluster])
            events = [event for event in (json.loads(line) for line in log if line.strip()) if crossed_the_link(event)]
        counts[cluster] = len(events)
        received += [
            datetime.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp() for event in events
        ]
    return counts, received


def run_once(argv: list[str], env: dict[str, str], logs: dict[str, str]) -> Run:
    offsets = {cluster: Path(path).stat().st_size for cluster, path in logs.items()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at = time.time()
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, timeout=300)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    time.sleep(0.5)  # the audit log is written as each request completes; the last one lands within a moment
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts, received = requests_since(offsets, logs)
    return Run(wall, cpu, counts, min(received) - started_at if received else None)


def with_cache(extra: dict[str, str], kept: str) -> dict[str, str]:
    """The row's variables, its cache directory made real: `kept`, or a new one inside it (removed with it)."""
    made = {REMEMBERED: lambda: kept, FRESH: lambda: tempfile.mkdtemp(dir=kept)}
    return {name: made[value]() if value in made else value for name, value in extra.items()}


def measure(sandbox: Sandbox, aggregator: str, only: str = "") -> dict[int, dict[str, list[Run]]]:
    results: dict[int, dict[str, list[Run]]] = {}
    for rtt in RTTS_MS:
        slow = latency(rtt, aggregator)
        env = {**sandbox.env, "KUBECONFIG": str(slow["kubeconfig"])}
        logs = dict(slow["audit_logs"])  # type: ignore[call-overload]
        results[rtt] = {}
        for name, (argv, extra) in commands(sandbox).items():
            if only not in name:
                continue
            with tempfile.TemporaryDirectory(prefix="bench-cache-") as kept:
                runs = [run_once(argv, {**env, **with_cache(extra, kept)}, logs) for _ in range(ROUNDS + 1)]
            results[rtt][name] = runs[1:]  # after one warm-up
            print(f"rtt {rtt} ms: {name}: {statistics.median(r.wall for r in results[rtt][name]):.2f} s", file=sys.stderr, flush=True)
    latency(0, aggregator)
    return results


def table(results: dict[int, dict[str, list[Run]]]) -> str:
    names = list(results[RTTS_MS[0]])
    header = ["command", *(f"{rtt} ms RTT" for rtt in RTTS_MS), *(f"round trips at {rtt} ms" for rtt in RTTS_MS[1:])]
    header += ["CPU at 0 ms", "first request at 0 ms", "requests (external, remote)", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        wall = {rtt: statistics.median(run.wall for run in results[rtt][name]) for rtt in RTTS_MS}
        trips = {rtt: (wall[rtt] - wall[0]) / (rtt / 1000) for rtt in RTTS_MS[1:]}
        cpu = statistics.median(run.cpu for run in results[0][name])
        firsts = [run.first_request for run in results[0][name] if run.first_request is not None]
        first = f"{statistics.median(firsts):.2f} s" if firsts else "-"
        counts = results[0][name][-1].requests
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            worst = max(trips.values())
            verdict = f"<= {target}: {'met' if worst <= target else 'NOT met'}"
        if name == "proxy-status --mode local":
            verdict += f"; CPU <= 0.6 s: {'met' if cpu <= 0.6 else 'NOT met'}"
        cells = [f"`{name}`", *(f"{wall[rtt]:.2f} s" for rtt in RTTS_MS), *(f"{trips[rtt]:.1f}" for rtt in RTTS_MS[1:])]
        cells += [f"{cpu:.2f} s", first, f"{counts.get('external', 0)}, {counts.get('remote', 0)}", verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregator_start(sandbox: Sandbox) -> float:
    """`serve --discover` as the session pod runs it, next to the API server: process start to `listening on` (median)."""
    argv = ["kubectl-istio_remote", "serve", "--discover", "-n", sandbox.istio_namespace, "--context", "external"]
    samples = []
    for _ in range(ROUNDS + 1):
        started = time.perf_counter()
        with subprocess.Popen(argv, env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
            assert process.stdout is not None
            line = process.stdout.readline()
            samples.append(time.perf_counter() - started)
            process.terminate()
            process.wait(15)
        if not line.startswith("listening on"):
            raise SystemExit(f"serve did not start: {line!r}")
    return statistics.median(samples[1:])


def container_start(sandbox: Sandbox) -> tuple[float, float]:
    """Our image as the session pod runs it (podman, the pod's securityContext): median seconds from `podman run` to
    `listening on`, and from the container's start (State.StartedAt) to that line's log timestamp."""
    from kubectl_istio_remote import IMAGE
    from tests.sandbox import image

    flags = ["--network=host", "--pull=never", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", "--user=65532:65532"]
    serve = ["serve", "--listen", "127.0.0.1:0", *(arg for istiod in sandbox.istiods for arg in ("--istiod-address", f"{istiod}:15012"))]
    walls, starts = [], []
    for round_index in range(ROUNDS + 1):
        name = f"bench-container-start-{os.getpid()}-{round_index}"
        began = time.perf_counter()
        image.podman("run", "-d", "--name", name, *flags, IMAGE, *serve, timeout=60)
        try:
            for _ in range(400):  # 20 s at most
                logged = image.podman("logs", "-t", name, check=False).stdout
                if "listening on" in logged:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"the container never said `listening on`: {logged!r}")
            wall = time.perf_counter() - began
            started = int(image.podman("container", "inspect", "--format", "{{.State.StartedAt.UnixNano}}", name).stdout)
            stamp = next(line.split()[0] for line in logged.splitlines() if "listening on" in line)
            listening = datetime.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
        finally:
            image.podman("rm", "-f", "-t", "0", name, check=False)
        if round_index:
            walls.append(wall)
            starts.append(listening - started / 1e9)
    return statistics.median(walls), statistics.median(starts)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__)
    parser.add_argument("--only", default="", metavar="TEXT", help="only the commands whose row name holds TEXT, e.g. 'mesh user'")
    args = parser.parse_args()
    as_installed()
    with running_sandbox() as sandbox:
        with shared_aggregator() as aggregator:
            results = measure(sandbox, aggregator, args.only)
        start = aggregator_start(sandbox)
        container_wall, container = container_start(sandbox)
    print(f"### `proxy-status` and `shell` over a slow network (median of {ROUNDS}, after one warm-up)\n")
    print(table(results))
    print(f"\nThe aggregator's own start (`serve --discover`, process start to `listening on`, next to the API server): {start:.2f} s")
    print(
        f"The aggregator pod's container (our image under podman, the pod's securityContext): container start to `listening on`"
        f" {container:.2f} s; `podman run` to `listening on` {container_wall:.2f} s"
    )


if __name__ == "__main__":
    main()
