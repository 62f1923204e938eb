"""The CLI: the command registry, and the one place that turns exceptions into exit codes.

One module per command (a click `command`, or a click group `app`), thin over the session, the
aggregator and the renderer below; flags several commands take are declared once in `options` and
attached by `options.takes`; `invocation` is what a run hands its command (console, words after
`--`, the resolved session); `shell_completion` answers kubectl's and the shells' completion.
Command modules import their heavy dependencies (grpc, the Kubernetes adapter) inside the command
function, so `--help` starts fast; a run that names its command imports and builds only that one
(Click objects for all ten cost ~25 ms of CPU a run). `main` returns the exit status instead of
exiting, so tests run the CLI in-process with a console of their own.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from kubectl_istio_remote.cli import shell_completion
from kubectl_istio_remote.cli.invocation import Commands, Invocation, split_passthrough
from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.signals import Interrupted
from kubectl_istio_remote.status import ExitStatus

#: Each command, and its module under kubectl_istio_remote.cli (a click `command`, or a click group `app`).
COMMANDS = {
    "proxy-status": "proxy_status",
    "shell": "shell",
    "remote-clusters": "remote_clusters",
    "cleanup": "cleanup",
    "doctor": "doctor",
    "serve": "serve",
    "manifest": "manifest",
    "version": "version",
    "completion": "completion",
}
ABOUT = "istioctl proxy-status and friends for meshes whose istiod replicas run in another cluster."


def build_cli(only: str | None = None) -> click.Group:
    """Every command, or only the one named `only` (a run that names its command needs no other)."""
    cli = Commands(
        help=ABOUT,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
    )
    for name, module_name in COMMANDS.items():
        if only in (None, name):
            module = importlib.import_module(f"{__name__}.{module_name}")
            cli.add_command(getattr(module, "command", None) or module.app, name)
    return cli


def prog_name(argv0: str) -> str:
    """kubectl runs us as `kubectl-istio_remote`; users type `kubectl istio-remote`."""
    base = os.path.basename(argv0)
    return "kubectl istio-remote" if base.startswith("kubectl-") else base


def main(argv: list[str] | None = None, console: Console | None = None, argv0: str | None = None) -> int:
    """Run one command and return its exit status; every error a user can act on is one line on stderr."""
    console = console or Console()
    args = sys.argv[1:] if argv is None else argv
    if shell_completion.is_request(args):
        return shell_completion.respond(build_cli(), args, console.data)
    ours, passthrough = split_passthrough(args)
    with console.attached():
        return _run(ours, passthrough, console, prog_name(argv0 or sys.argv[0]))


def _run(args: list[str], passthrough: list[str], console: Console, prog: str) -> int:
    try:
        cli = build_cli(args[0] if args and args[0] in COMMANDS else None)
        result = cli.main(args=args, prog_name=prog, standalone_mode=False, obj=Invocation(console, passthrough))
        return ExitStatus.SUCCESS if result is None else int(result)
    except click.exceptions.UsageError as error:
        error.show(file=console.stderr)
        return ExitStatus.USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        return ExitStatus.ERROR_CTRL_C
    except Interrupted as interrupted:
        return interrupted.exit_status
    except click.exceptions.Exit as error:
        return int(error.exit_code)
    except UserError as error:
        console.error(error.one_line())
        return int(error.exit_status)
