"""`completion`: install kubectl's completion helper, or print a script for bash, zsh or fish."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from kubectl_istio_remote import completion

app = typer.Typer(
    no_args_is_help=True,
    help="Shell completion for `kubectl istio-remote` (install) or for `kubectl-istio_remote` typed directly (bash, zsh, fish).",
)


@app.command("install")
def install(
    directory: Annotated[
        Optional[Path], typer.Option("--dir", help="Where to write the helper; it must be on PATH (default: next to the plugin).")
    ] = None,
) -> None:
    """Write kubectl_complete-istio_remote, which kubectl >= 1.26 runs to complete `kubectl istio-remote`."""
    command = completion.plugin_command(sys.argv[0])
    target = directory or Path(command[0]).parent
    helper = completion.install_helper(target, command)
    print(f"wrote {helper}: `kubectl istio-remote <Tab>` completes once kubectl's own completion is loaded", file=sys.stderr)
    if not completion.on_path(target):
        print(f"warning: {target} is not on PATH, where kubectl looks for {helper.name}", file=sys.stderr)


def _script_command(shell: str) -> None:
    def print_script() -> None:
        print(completion.shell_script(click.get_current_context().find_root().command, shell))

    script = f"kubectl-istio_remote completion {shell}"
    load = f"{script} | source" if shell == "fish" else f"source <({script})"
    print_script.__doc__ = f"Print the {shell} completion script for kubectl-istio_remote; load it with `{load}`."
    app.command(shell)(print_script)


for _shell in completion.SHELLS:
    _script_command(_shell)
