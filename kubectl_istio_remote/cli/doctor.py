"""`doctor`: can this user run a session in the chosen mode? A checklist, non-zero on any failure."""

from __future__ import annotations

import click

from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.status import ExitStatus


@options.takes(options.CONNECTION, options.TARGET, options.MODE, options.VERBOSE)
@click.command(params=[options.ISTIOCTL])
@click.pass_context
def command(ctx: click.Context, istioctl_path: str | None) -> int:
    """Check RBAC rights in both clusters, that istiod pods are found, and which istioctl will run; in shared mode, that
    the advertised aggregator answers, with a valid certificate, for every istiod replica."""
    from kubectl_istio_remote import istioctl
    from kubectl_istio_remote.errors import UserError
    from kubectl_istio_remote.istio import SESSION_TIMEOUT_SECONDS
    from kubectl_istio_remote.session import permissions
    from kubectl_istio_remote.session.istiods import find_istiods
    from kubectl_istio_remote.session.shared_mode import shared_checks
    from kubectl_istio_remote.session.token import istioctl_token_soon

    settings = invocation.session_settings(ctx)
    checks: list[tuple[bool, str]] = []
    found = None
    try:
        found = istioctl.find(istioctl_path)
        checks.append(
            (found is not None, f"istioctl {found.version} at {found.path}" if found else "istioctl not on PATH (--native is used)")
        )
    except UserError as error:
        checks.append((False, error.one_line()))
    needs = permissions.needs(settings.mode, settings.mesh, settings.external, settings.istio_namespace, istioctl=found)
    checks += [(granted, f"may {need.description}") for need, granted in zip(needs, permissions.check(needs), strict=True)]
    if settings.shared is not None:
        token = istioctl_token_soon(settings.mesh, settings.istio_namespace)
        checks += shared_checks(settings.shared, token, settings.istio_namespace, SESSION_TIMEOUT_SECONDS, settings.cluster_id)
    else:
        try:
            pods = find_istiods(settings).pods
            checks.append((True, f"istiod pods found: {', '.join(pod.name for pod in pods)}"))
        except UserError as error:
            checks.append((False, error.one_line()))
    invocation.console(ctx).data("".join(f"{'[ok]  ' if ok else '[FAIL]'} {text}\n" for ok, text in checks))
    return ExitStatus.SUCCESS if all(ok for ok, _ in checks) else ExitStatus.ERROR
