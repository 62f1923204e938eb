"""Command registry and the one place that turns exceptions into exit codes.

Command modules stay thin and import their heavy dependencies (grpc, kubernetes) inside the
command function, so `--help` starts fast.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from kubectl_istio_remote import completion as completion_protocol
from kubectl_istio_remote.cli import cleanup, completion, doctor, manifest, options, proxy_status, serve, shell, version
from kubectl_istio_remote.errors import UserError
from kubectl_istio_remote.signals import Interrupted
from kubectl_istio_remote.status import ExitStatus


def build_app() -> typer.Typer:
    app = typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    app.command("proxy-status")(proxy_status.command)
    app.command("shell")(shell.command)
    app.command("cleanup")(cleanup.command)
    app.command("doctor")(doctor.command)
    app.command("serve")(serve.command)
    app.command("manifest")(manifest.command)
    app.command("version")(version.command)
    app.add_typer(completion.app, name="completion")
    return app


def _root() -> None:
    """istioctl proxy-status and friends for meshes whose istiod replicas run in another cluster."""


def prog_name(argv0: str) -> str:
    """kubectl runs us as `kubectl-istio_remote`; users type `kubectl istio-remote`."""
    base = os.path.basename(argv0)
    return "kubectl istio-remote" if base.startswith("kubectl-") else base


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if completion_protocol.is_request(args):
        sys.exit(completion_protocol.respond(typer.main.get_command(build_app()), args))
    args = options.split_passthrough(args)
    try:
        result = build_app()(args=args, prog_name=prog_name(sys.argv[0]), standalone_mode=False)
        status = ExitStatus.SUCCESS if result is None else int(result)
    except click.exceptions.UsageError as error:
        error.show()
        status = ExitStatus.USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        status = ExitStatus.ERROR_CTRL_C
    except Interrupted as interrupted:
        status = interrupted.exit_status
    except click.exceptions.Exit as error:
        status = error.exit_code
    except UserError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        status = error.exit_status
    sys.exit(status)
