"""`completion`: install kubectl's completion helper, or print a script for bash, zsh or fish."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kubectl_istio_remote.cli import invocation
from kubectl_istio_remote.cli import shell_completion as completion
from kubectl_istio_remote.cli.invocation import Commands


@click.group(
    cls=Commands,
    no_args_is_help=True,
    help="Shell completion for `kubectl istio-remote` (install) or for `kubectl-istio_remote` typed directly (bash, zsh, fish).",
)
def app() -> None:
    pass


@app.command("install")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="Where to write the helper; it must be on PATH (default: next to the plugin).",
)
@click.pass_context
def install(ctx: click.Context, directory: Path | None) -> None:
    """Write kubectl_complete-istio_remote, which kubectl >= 1.26 runs to complete `kubectl istio-remote`."""
    console = invocation.console(ctx)
    command = completion.plugin_command(sys.argv[0])
    target = directory or Path(command[0]).parent
    helper = completion.install_helper(target, command)
    console.progress(f"wrote {helper}: `kubectl istio-remote <Tab>` completes once kubectl's own completion is loaded")
    if not completion.on_path(target):
        console.warning(f"{target} is not on PATH, where kubectl looks for {helper.name}")


def _script_command(shell: str) -> click.Command:
    script = f"kubectl-istio_remote completion {shell}"
    load = f"{script} | source" if shell == "fish" else f"source <({script})"

    @click.pass_context
    def print_script(ctx: click.Context) -> None:
        invocation.console(ctx).data(completion.shell_script(ctx.find_root().command, shell) + "\n")

    return click.Command(
        shell, callback=print_script, help=f"Print the {shell} completion script for kubectl-istio_remote; load it with `{load}`."
    )


for _shell in completion.SHELLS:
    app.add_command(_script_command(_shell))
