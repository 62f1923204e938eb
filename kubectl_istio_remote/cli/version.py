"""`version`: what a bug report needs — the plugin's version, the istioctl it would run, the image it would deploy."""

from __future__ import annotations

import enum
import json
import platform
from typing import Annotated

import typer

from kubectl_istio_remote import IMAGE, __version__
from kubectl_istio_remote.cli import invocation, options


class Output(str, enum.Enum):
    text = "text"
    json = "json"


def command(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.text,
    istioctl_path: options.IstioctlPath = None,
    image: options.Image = IMAGE,
) -> None:
    """Print the plugin's version, the istioctl found and the aggregator image pod mode deploys."""
    from kubectl_istio_remote import istioctl

    found = istioctl.find(istioctl_path)
    report = {
        "version": __version__,
        "istioctl": {"path": found.path, "version": found.version} if found else None,
        "image": image,
        "python": platform.python_version(),
    }
    console = invocation.console(ctx)
    if output is Output.json:
        console.data(json.dumps(report, indent=2) + "\n")
        return
    console.data(
        f"kubectl-istio-remote {__version__}\n"
        + (f"istioctl: {found.version} ({found.path})\n" if found else "istioctl: not on PATH (proxy-status prints natively)\n")
        + f"image:    {image}\n"
        + f"python:   {report['python']}\n"
    )
