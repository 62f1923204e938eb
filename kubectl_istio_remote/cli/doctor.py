"""`doctor`: can this user run a session in the chosen mode? A checklist, non-zero on any failure."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kubectl_istio_remote.cli import options
from kubectl_istio_remote.status import ExitStatus


@options.with_cluster_flags
def command(
    mode: options.ModeOption = options.Mode.pod,
    istioctl_path: Annotated[Optional[str], typer.Option("--istioctl", help="istioctl to check (default: from PATH).")] = None,
    *,
    flags: options.SessionFlags,
) -> int:
    """Check RBAC rights in both clusters, that istiod pods are found, and which istioctl will run."""
    from kubectl_istio_remote import istioctl, permissions
    from kubectl_istio_remote.errors import UserError
    from kubectl_istio_remote.session import find_istiods, resolve_settings

    settings = resolve_settings(flags)
    checks: list[tuple[bool, str]] = []
    found = None
    try:
        found = istioctl.find(istioctl_path)
        checks.append((found is not None, f"istioctl {found.version} at {found.path}" if found else "istioctl not on PATH (--native is used)"))
    except UserError as error:
        checks.append((False, error.one_line()))
    for need in permissions.needs(mode.value, settings.mesh, settings.external, settings.istio_namespace, istioctl=found):
        checks.append((permissions.allowed(need), f"may {need.description}"))
    try:
        pods = find_istiods(settings)
        checks.append((True, f"istiod pods found: {', '.join(pod.metadata.name for pod in pods)}"))
    except UserError as error:
        checks.append((False, error.one_line()))
    for ok, text in checks:
        print(f"{'[ok]  ' if ok else '[FAIL]'} {text}")
    return ExitStatus.SUCCESS if all(ok for ok, _ in checks) else ExitStatus.ERROR
