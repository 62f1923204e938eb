"""Opening and tearing down a pod-mode session (session/lifecycle.py) against a scripted API server.

What a user notices: whatever stops the session (a refused create, a pod that cannot start, Ctrl-C
while waiting, an API server that stops answering during teardown), every object that may have been
created is deleted, the error that stopped it is the one reported, and a teardown that cannot finish
names what is left and the command that removes it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubectl_istio_remote.aggregator.client import Connection
from kubectl_istio_remote.concurrency import outcomes_of
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UnavailableError, UserError
from kubectl_istio_remote.kube.cluster import Cluster
from kubectl_istio_remote.session import lifecycle
from kubectl_istio_remote.session.lifecycle import open_session
from kubectl_istio_remote.session.preflight import Preflight
from kubectl_istio_remote.session.settings import Mode, SessionSettings
from kubectl_istio_remote.signals import Interrupted, raise_pending, signals_held, signals_interrupt
from tests.doubles.apiserver import Answer, Script, apiserver
from tests.test_preflight import NS, PODS, script_healthy

RBAC = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}"
CREATED = {
    "ServiceAccount": f"/api/v1/namespaces/{NS}/serviceaccounts",
    "Role": f"{RBAC}/roles",
    "RoleBinding": f"{RBAC}/rolebindings",
    "Pod": PODS,
}


@pytest.fixture
def external(tmp_path: Path) -> Iterator[tuple[Cluster, Script]]:
    with apiserver(tmp_path, "external") as pinned:
        script_healthy(pinned[1])
        for path in CREATED.values():
            pinned[1].on("POST", path, Answer(201, {"metadata": {"name": "created", "uid": "u-1"}}))
            pinned[1].on("DELETE", f"{path}/istio-remote-*", Answer(200, {}))
            pinned[1].on("PATCH", f"{path}/istio-remote-*", Answer(200, {}))
        yield pinned


def watched(pod_status: dict) -> Answer:
    """One watch event: the session's pod with this status (the stand-in sends it and ends the watch)."""
    return Answer(200, {"type": "MODIFIED", "object": {"metadata": {"name": "istio-remote-x", "namespace": NS}, "status": pod_status}})


def open_and_fail(cluster: Cluster, timeout: float = 20.0) -> tuple[BaseException, str]:
    """Open a pod-mode session that must fail; the error and what was said on stderr."""
    stderr = io.StringIO()
    settings = SessionSettings(mesh=cluster, external=cluster, istio_namespace=NS, mode=Mode.pod, timeout=timeout)
    with pytest.raises(BaseException) as raised, signals_interrupt(), open_session(settings, Console(stderr=stderr), istioctl=None):
        pytest.fail("the session opened")
    return raised.value, stderr.getvalue()


def deleted(script: Script) -> set[str]:
    return {path.rsplit("/", 1)[0] for path in script.sent("DELETE")}


def test_a_refused_create_removes_everything_that_may_exist(external: tuple[Cluster, Script]) -> None:
    cluster, script = external
    script.on("POST", CREATED["RoleBinding"], Answer.refusal(403, "rolebindings is forbidden"))
    error, said = open_and_fail(cluster)
    assert isinstance(error, UserError) and "forbidden: cannot create rolebindings" in error.one_line()
    # The pod was created in the same round as the refused RoleBinding: it must go too.
    assert deleted(script) == set(CREATED.values())
    assert "error:" not in said


def test_a_pod_that_cannot_start_is_its_reason_and_nothing_is_left(external: tuple[Cluster, Script]) -> None:
    cluster, script = external
    script.on("GET", f"{PODS}?*watch=true*", watched({"containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}]}))
    error, said = open_and_fail(cluster)
    assert isinstance(error, UnavailableError) and ": ErrImagePull: no message; check --image" in error.one_line()
    assert deleted(script) == set(CREATED.values())
    assert len(script.sent("DELETE")) == 4


def test_ctrl_c_while_waiting_for_the_pod_removes_everything_and_exits_130(external: tuple[Cluster, Script]) -> None:
    cluster, script = external
    script.on("GET", f"{PODS}?*watch=true*", watched({"phase": "Pending"}))
    with signal_when(lambda: bool(script.sent("GET", PODS + "*")) and bool(script.sent("POST", PODS)), signal.SIGINT):
        error, _ = open_and_fail(cluster)
    assert isinstance(error, Interrupted) and error.exit_status == 130
    assert deleted(script) == set(CREATED.values())


def test_an_api_server_gone_during_teardown_is_named_with_what_is_left_and_the_fix(external: tuple[Cluster, Script]) -> None:
    cluster, script = external
    script.on("GET", f"{PODS}?*watch=true*", watched({"phase": "Failed", "reason": "Evicted"}))
    for path in CREATED.values():
        script.on("DELETE", f"{path}/istio-remote-*", Answer.refusal(503, "the server is shutting down"))
    error, said = open_and_fail(cluster, timeout=4)
    # The reason the session stopped stays the error; what teardown could not do is said, with the command that does it.
    assert isinstance(error, UnavailableError) and "ended: Evicted" in str(error)
    (line,) = [line for line in said.splitlines() if line.startswith("error:")]
    assert "did not answer (503 the server is shutting down): left Pod/istio-remote-" in line
    assert f"in namespace {NS}; run `kubectl istio-remote cleanup --context external -i {NS} --session " in line
    assert len(script.sent("DELETE")) > 4, "teardown retried while the API server did not answer"


def test_a_signal_during_teardown_ends_only_the_wait(external: tuple[Cluster, Script]) -> None:
    cluster, script = external
    script.on("GET", f"{PODS}?*watch=true*", watched({"phase": "Failed", "reason": "Evicted"}))
    for path in CREATED.values():
        script.on("DELETE", f"{path}/istio-remote-*", Answer.refusal(503, "the server is shutting down"))
    started = time.monotonic()
    with signal_when(lambda: len(script.sent("DELETE")) > 4, signal.SIGTERM):
        error, said = open_and_fail(cluster, timeout=60)
    assert time.monotonic() - started < 30, "the wait for the API server was cut short"
    assert isinstance(error, UnavailableError) and "ended: Evicted" in str(error)
    assert "Ctrl-C stops waiting" in said and "left Pod/istio-remote-" in said


def test_a_teardown_failure_after_a_good_session_is_the_commands_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing went wrong but teardown: its error reaches the user (and the exit code) instead of being only a line."""

    class LeavesSomething:
        def open(self, deadline: float) -> Connection:
            return Connection("127.0.0.1:1")

        def close(self, deadline: float, stop_waiting: Callable[[], bool]) -> list[str]:
            raise UnavailableError("left Pod/p", "run cleanup")

    monkeypatch.setattr(lifecycle, "make_mode", lambda *_, **__: LeavesSomething())
    monkeypatch.setattr(lifecycle, "check_before_creating", lambda *_: Preflight(None, ""))
    with apiserver(tmp_path) as (cluster, _):
        settings = SessionSettings(mesh=cluster, external=cluster, istio_namespace=NS, mode=Mode.pod)
        with pytest.raises(UnavailableError, match="left Pod/p"), open_session(settings, Console(stderr=io.StringIO()), istioctl=None):
            pass


@contextlib.contextmanager
def signal_when(condition: Callable[[], bool], signum: int, within: float = 20.0) -> Iterator[None]:
    """Send this process `signum` once `condition` holds (polled for `within` seconds), as a terminal would; never after the block."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + within
        while not done.is_set() and time.monotonic() < deadline:
            if condition():
                os.kill(os.getpid(), signum)
                return
            done.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped one, as Python reports it
def test_a_ctrl_c_python_dropped_inside_a_finalizer_is_raised_at_the_next_wait() -> None:
    """Python runs a signal's handler wherever the main thread is; raised inside a finalizer, the Interrupted is printed
    and dropped. The session's waits ask again (signals.raise_pending), so Ctrl-C still ends the wait for the pod."""

    class Finalized:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)
            sum(range(1000))  # the handler runs here, in the finalizer, and its exception is dropped

    with signals_interrupt():
        holder = Finalized()
        del holder
        with pytest.raises(Interrupted) as raised:
            raise_pending()
    assert raised.value.exit_status == 130
    raise_pending()  # outside, nothing is pending


def test_a_signal_inside_a_held_step_is_delivered_when_the_step_ends() -> None:
    steps = []
    with signals_interrupt(), pytest.raises(Interrupted) as raised, signals_held():
        signal.raise_signal(signal.SIGTERM)
        steps.append("the step went on to its end")
    assert steps == ["the step went on to its end"]
    assert raised.value.exit_status == 143


def test_a_signal_while_requests_run_at_once_leaves_none_of_them_running() -> None:
    """A create still running after the signal would land after teardown's delete (the signal campaign found a
    RoleBinding left): Ctrl-C at random moments, and no call outlives outcomes_of. Before signals_held: 75 of 300."""

    def call(running: set[int], lock: threading.Lock, number: int) -> None:
        with lock:
            running.add(number)
        time.sleep(0.005)
        with lock:
            running.discard(number)

    rng = random.Random(1)
    outlived = 0
    for _ in range(300):
        running: set[int] = set()
        lock = threading.Lock()
        ctrl_c = threading.Timer(rng.uniform(0, 0.0015), os.kill, (os.getpid(), signal.SIGINT))
        with signals_interrupt(), contextlib.suppress(Interrupted):
            ctrl_c.start()
            try:
                outcomes_of([functools.partial(call, running, lock, number) for number in range(4)])
                time.sleep(0.003)  # a signal after the calls lands here
            finally:
                ctrl_c.join()
        with lock:
            outlived += bool(running)
    assert outlived == 0, f"{outlived} of 300 Ctrl-Cs left a call running"
