"""`version`: what a bug report needs — the plugin, the istioctl it would run, the image it would deploy — and with
`--remote`, the build of every istiod replica and of the proxies, which istioctl from a mesh cluster cannot show."""

from __future__ import annotations

import platform
from typing import Any

import click

from kubectl_istio_remote import __version__
from kubectl_istio_remote.cli import invocation, options


@options.takes(*options.SESSION)
@click.command(
    params=[
        options.output("text", "json", "yaml", help="text, json or yaml."),
        options.flag("--remote", help="Also ask every istiod replica (a session, as proxy-status opens).", default=False),
        options.ISTIOCTL,
    ]
)
@click.pass_context
def command(ctx: click.Context, output: str, remote: bool, istioctl_path: str | None) -> int:
    """Print the plugin's version, the istioctl found and the image pod mode deploys; --remote adds every replica's and the proxies' versions."""
    from kubectl_istio_remote import istioctl
    from kubectl_istio_remote.native import builds

    found, image = istioctl.find(istioctl_path), invocation.flags(ctx).image
    report: dict[str, Any] = {
        "version": __version__,
        "istioctl": {"path": found.path, "version": found.version} if found else None,
        "image": image,
        "python": platform.python_version(),
    }
    text = (
        f"kubectl-istio-remote {__version__}\n"
        + (f"istioctl: {found.version} ({found.path})\n" if found else "istioctl: not on PATH (proxy-status prints natively)\n")
        + f"image:    {image}\n"
        + f"python:   {report['python']}\n"
    )
    status = 0
    if remote:
        settings = invocation.session_settings(ctx, native=True)
        syncz = invocation.native_syncz(ctx, settings, None)
        rows, proxies = builds.replicas(syncz), builds.data_plane(syncz)
        report.update(builds.document(rows, proxies, syncz.failed))
        text += builds.text(rows, proxies)
        status = invocation.report_failed(ctx, settings, syncz.failed)
    from kubectl_istio_remote.native import render

    console = invocation.console(ctx)
    console.data(text if output == "text" else render.dump(report, output))
    return status
