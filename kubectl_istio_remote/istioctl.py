"""The plugin's adapter to istioctl: find it, read its version once, and run it against an aggregator."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kubectl_istio_remote import machine
from kubectl_istio_remote.errors import UserError

#: istioctl 1.22 promoted the XDS-based proxy-status to the top level; older ones have it under `x`.
STABLE_XDS_PROXY_STATUS = (1, 22)
# From 1.28 istioctl resolves the default revision by watching MutatingWebhookConfigurations in
# the mesh cluster, even with ISTIOCTL_XDS_ADDRESS set; without that right it waits until timeout.
WATCHES_WEBHOOKS = (1, 28)
#: istioctl 1.27 added --kubeclient-timeout (kubectl's --request-timeout; before it, its own 15 s applies).
KUBECLIENT_TIMEOUT = (1, 27)
VERSION_SECONDS = 30
VERSION_CACHE_NAME = "istioctl-versions.json"
VERSION_CACHE_ENTRIES = 16


@dataclass(frozen=True)
class Istioctl:
    path: str
    version: str

    @property
    def release(self) -> tuple[int, ...]:
        """(major, minor) of the version, or (0,) when it cannot be read (a dev build)."""
        match = re.match(r"(\d+)\.(\d+)", self.version)
        return (int(match[1]), int(match[2])) if match else (0,)

    @property
    def watches_webhooks(self) -> bool:
        return self.release >= WATCHES_WEBHOOKS or self.release == (0,)

    def proxy_status_command(self) -> list[str]:
        if self.release >= STABLE_XDS_PROXY_STATUS or self.release == (0,):
            return ["proxy-status"]
        return ["x", "proxy-status"]


def find(explicit: str | None) -> Istioctl | None:
    """The istioctl to run: `--istioctl` (which must exist) or the one on PATH (None if there is none)."""
    path = shutil.which(explicit) if explicit else shutil.which("istioctl")
    if explicit and path is None:
        raise UserError(f"istioctl not found: {explicit}", "check --istioctl, or use --native")
    return Istioctl(path, read_version(path)) if path else None


def read_version(path: str) -> str:
    """The client version, without contacting any cluster; remembered per binary (path, size, mtime),
    since running istioctl once more cost every command ~0.1 s."""
    key = _binary_key(path)
    remembered = machine.recalled(VERSION_CACHE_NAME)
    if isinstance(known := remembered.get(key), str):
        return known
    version = _ask_version(path)
    machine.keep(VERSION_CACHE_NAME, {**remembered, key: version}, VERSION_CACHE_ENTRIES)
    return version


def _ask_version(path: str) -> str:
    try:
        result = subprocess.run([path, "version", "--remote=false", "-o", "json"], capture_output=True, text=True, timeout=VERSION_SECONDS)
        return json.loads(result.stdout)["clientVersion"]["version"]
    except (OSError, subprocess.TimeoutExpired) as error:
        raise UserError(f"cannot run {path}: {error}", "check --istioctl, or use --native") from None
    except (ValueError, KeyError, TypeError):
        result = subprocess.run([path, "version", "--remote=false", "--short"], capture_output=True, text=True, timeout=VERSION_SECONDS)
        return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"


def _binary_key(path: str) -> str:
    real = os.path.realpath(path)
    try:
        stat = os.stat(real)
    except OSError:
        return real
    return f"{real}:{stat.st_size}:{stat.st_mtime_ns}"


def environment(address: str, istio_namespace: str) -> dict[str, str]:
    """What points istioctl at the aggregator; the aggregator's certificate is made per session, so it is not verified."""
    return {
        **os.environ,
        "ISTIOCTL_XDS_ADDRESS": address,
        "ISTIOCTL_ISTIONAMESPACE": istio_namespace,
        "ISTIOCTL_PREFER_EXPERIMENTAL": "true",
        "ISTIOCTL_INSECURE": "true",
    }


#: Of kubectl's connection flags, istioctl (istioctl/pkg/cli/option.go) takes --kubeconfig, --context and the
#: impersonation ones; these it has no flag for, and a kubeconfig of ours would have to stand in for the user's.
NOT_TAKEN = ("user", "cluster", "server", "token", "certificate_authority", "client_certificate", "client_key", "tls_server_name")


class ConnectionFlags(Protocol):
    """What of kubectl's connection flags istioctl is handed (kube.overrides.ConnectionFlags has them)."""

    @property
    def impersonate(self) -> str | None: ...
    @property
    def impersonate_groups(self) -> tuple[str, ...]: ...
    @property
    def impersonate_uid(self) -> str | None: ...
    @property
    def insecure_skip_tls_verify(self) -> bool: ...
    @property
    def request_seconds(self) -> float | None: ...


def flags_not_taken(flags: ConnectionFlags) -> list[str]:
    """The connection flags given that istioctl cannot be handed (the plugin then prints the answer itself)."""
    given = [f"--{name.replace('_', '-')}" for name in NOT_TAKEN if getattr(flags, name)]
    return given + (["--insecure-skip-tls-verify"] if flags.insecure_skip_tls_verify else [])


def cluster_flags(istioctl: Istioctl, kubeconfig: str | None, context: str, flags: ConnectionFlags) -> list[str]:
    """istioctl's own flags for the mesh cluster, acting as the plugin acts (--as*), within --request-timeout."""
    argv = (["--kubeconfig", kubeconfig] if kubeconfig else []) + ["--context", context]
    argv += ["--as", flags.impersonate] if flags.impersonate else []
    argv += [arg for group in flags.impersonate_groups for arg in ("--as-group", group)]
    argv += ["--as-uid", flags.impersonate_uid] if flags.impersonate_uid else []
    if flags.request_seconds is not None and (istioctl.release >= KUBECLIENT_TIMEOUT or istioctl.release == (0,)):
        argv += ["--kubeclient-timeout", f"{flags.request_seconds:g}s"]
    return argv


def find_soon(explicit: str | None) -> Callable[[], Istioctl | None]:
    """Start `find` (it runs istioctl once for its version) while the caller talks to the clusters; call the result to have it."""
    from kubectl_istio_remote.concurrency import in_background

    return in_background(functools.partial(find, explicit))
