"""`version`: what a bug report needs — the plugin's version, the istioctl it would run, the image it would deploy."""

from __future__ import annotations

import enum
import json
import platform
from typing import Annotated, Optional

import typer

from kubectl_istio_remote import IMAGE, __version__
from kubectl_istio_remote.cli import options


class Output(str, enum.Enum):
    text = "text"
    json = "json"


def command(
    output: Annotated[Output, typer.Option("--output", "-o", help="text or json.")] = Output.text,
    istioctl_path: Annotated[Optional[str], typer.Option("--istioctl", help="istioctl to report (default: from PATH).")] = None,
    image: options.ImageOption = IMAGE,
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
    if output is Output.json:
        print(json.dumps(report, indent=2))
        return
    print(f"kubectl-istio-remote {report['version']}")
    print(f"istioctl: {found.version} ({found.path})" if found else "istioctl: not on PATH (proxy-status prints natively)")
    print(f"image:    {report['image']}")
    print(f"python:   {report['python']}")
