"""`version`: what a bug report needs — the plugin, the istioctl it would run, the image it would deploy — and with
`--remote`, the build of every istiod replica and of the proxies, which istioctl from a mesh cluster cannot show."""

from __future__ import annotations

import enum
import platform
from typing import Annotated, Any

import typer

from kubectl_istio_remote import IMAGE, __version__
from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.istio import POD_TTL_SECONDS, SESSION_TIMEOUT_SECONDS
from kubectl_istio_remote.session.settings import Mode, PullPolicy


class Output(str, enum.Enum):
    text = "text"
    json = "json"
    yaml = "yaml"


def command(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="text, json or yaml.")] = Output.text,
    remote: Annotated[bool, typer.Option("--remote", help="Also ask every istiod replica (a session, as proxy-status opens).")] = False,
    istioctl_path: options.IstioctlPath = None,
    kubeconfig: options.Kubeconfig = None,
    context: options.Context = None,
    external_context: options.ExternalContext = None,
    istio_namespace: options.IstioNamespace = None,
    revision: options.Revision = "",
    mode: options.ModeOption = Mode.auto,
    aggregator: options.Aggregator = None,
    aggregator_ca: options.AggregatorCa = None,
    timeout: options.Timeout = SESSION_TIMEOUT_SECONDS,
    ttl: options.Ttl = POD_TTL_SECONDS,
    image: options.Image = IMAGE,
    image_pull_secret: options.ImagePullSecret = None,
    pull_policy: options.PullPolicyOption = PullPolicy.IfNotPresent,
    verbose: options.Verbose = False,
) -> int:
    """Print the plugin's version, the istioctl found and the image pod mode deploys; --remote adds every replica's and the proxies' versions."""
    from kubectl_istio_remote import istioctl, versions

    found = istioctl.find(istioctl_path)
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
        settings = invocation.session_settings(ctx)
        syncz = invocation.native_syncz(ctx, settings, None, timeout)
        rows, proxies = versions.replicas(syncz), versions.data_plane(syncz)
        report.update(versions.document(rows, proxies, syncz.failed))
        text += versions.text(rows, proxies)
        status = invocation.report_failed(ctx, settings, syncz.failed)
    from kubectl_istio_remote import render

    console = invocation.console(ctx, verbose)
    console.data(text if output is Output.text else render.dump(report, output.value))
    return status
