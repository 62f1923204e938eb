"""The sandbox kubelet's readiness prober: a pod the pod runner runs is Ready only once its container runs, and one
with a readinessProbe only once the probe passes.

kwok would mark every pod Ready at once; the sandbox's kwok stage (clusters.py) leaves the pods the runner runs not
ready (a new pod on a reused IP was Ready, and answered by the last pod's container, before its own started), and
the runner reports one without a probe ready when its container has started. For a probe it does what a kubelet
does: the first probe after initialDelaySeconds, then one every
periodSeconds, Ready after successThreshold passes in a row, not Ready after failureThreshold
failures. A Deployment's rollout waits on that, as in a real cluster: without it a new pod is
Ready before its process listens, and the old ones go while nothing serves. tcpSocket probes
only, at the pod IP, as a kubelet probes; another kind of probe is logged and never passes.
"""

from __future__ import annotations

import datetime
import socket
import threading

from kubernetes import client

from tests.sandbox.paths import log

PROBE_TIMEOUT_SECONDS = 1


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ReadinessProber:
    """Probes one pod's first container until `stop`; its Ready condition says what the last probes found."""

    def __init__(self, pod: client.V1Pod, core: client.CoreV1Api) -> None:
        self._pod = pod
        self._core = core
        self._stop = threading.Event()
        self._started = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else _now()
        self._thread = threading.Thread(target=self._run, name=f"readiness {pod.metadata.name}", daemon=True)

    @staticmethod
    def wanted(pod: client.V1Pod) -> bool:
        return pod.spec.containers[0].readiness_probe is not None

    def start(self) -> ReadinessProber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        probe = self._pod.spec.containers[0].readiness_probe
        period = probe.period_seconds or 10
        successes_needed = probe.success_threshold or 1
        failures_allowed = probe.failure_threshold or 3
        ready, passes, failures = False, 0, 0
        self._stop.wait(probe.initial_delay_seconds or 0)
        while not self._stop.is_set():
            if self._passes(probe):
                passes, failures = passes + 1, 0
            else:
                passes, failures = 0, failures + 1
            if not ready and passes >= successes_needed:
                ready = self.report(True)
            elif ready and failures >= failures_allowed:
                ready = not self.report(False)
            self._stop.wait(period)

    def _passes(self, probe: client.V1Probe) -> bool:
        if probe.tcp_socket is None:
            log(f"pod runner: {self._pod.metadata.name}: only tcpSocket readiness probes are run here; it stays not ready")
            return False
        try:
            with socket.create_connection((self._pod.status.pod_ip, self._port(probe.tcp_socket.port)), PROBE_TIMEOUT_SECONDS):
                return True
        except OSError:
            return False

    def _port(self, port: int | str) -> int:
        """A probe's port is a number or the name of one of the container's ports."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next(p.container_port for p in self._pod.spec.containers[0].ports or [] if p.name == port)

    def report(self, ready: bool) -> bool:
        """The pod's Ready and ContainersReady conditions and its container's ready flag; True once the API server took it."""
        status = "True" if ready else "False"
        container = self._pod.spec.containers[0]
        body = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": _now()},
                    {"type": "ContainersReady", "status": status, "lastTransitionTime": _now()},
                ],
                # Not a merge key in the API: the whole status, as kwok wrote it, but for its ready flag.
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": ready,
                        "restartCount": 0,
                        "started": True,
                        "state": {"running": {"startedAt": self._started}},
                    }
                ],
            }
        }
        try:
            self._core.patch_namespaced_pod_status(self._pod.metadata.name, self._pod.metadata.namespace, body)
        except client.ApiException as error:
            log(f"pod runner: could not report {self._pod.metadata.name} ready={ready}: {error.status} {error.reason}")
            return False
        log(f"pod runner: {self._pod.metadata.namespace}/{self._pod.metadata.name} ready={ready}")
        return True
