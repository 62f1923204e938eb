"""Shell completion: kubectl's plugin protocol, scripts for direct use, and value completers for flags.

kubectl (>= 1.26) completes `kubectl istio-remote ...` by running `kubectl_complete-istio_remote`
from PATH with the words typed so far, the partial word last, and reading one candidate per line
and a final `:<directive>` line (cobra's ShellCompDirective). krew installs one executable per
plugin, so `completion install` writes that helper next to the plugin.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import click
from click.shell_completion import ShellComplete, get_completion_class, shell_complete

from kubectl_istio_remote.errors import UserError

PLUGIN_EXECUTABLE = "kubectl-istio_remote"
HELPER_NAME = "kubectl_complete-istio_remote"
#: The hidden first argument that makes the plugin answer in kubectl's completion protocol.
KUBECTL_PROTOCOL_ARGUMENT = "__complete"
#: Environment variable of Click's protocol, used by the bash, zsh and fish scripts.
COMPLETE_VAR = "_KUBECTL_ISTIO_REMOTE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
NAMESPACE_LIST_SECONDS = 3

# cobra's ShellCompDirective values (spf13/cobra completions.go).
DIRECTIVE_FILES = 0
DIRECTIVE_NO_FILES = 4
DIRECTIVE_DIRECTORIES = 16


def is_request(args: list[str]) -> bool:
    """Whether this run only answers a completion request (kubectl's helper or a shell script)."""
    return args[:1] == [KUBECTL_PROTOCOL_ARGUMENT] or COMPLETE_VAR in os.environ


def respond(cli: click.Command, args: list[str], write: Callable[[str], None]) -> int:
    """Answer kubectl's protocol through `write`, or Click's for the bash/zsh/fish scripts."""
    if args[:1] == [KUBECTL_PROTOCOL_ARGUMENT]:
        write("\n".join(kubectl_candidates(cli, args[1:])) + "\n")
        return 0
    return shell_complete(cli, {}, PLUGIN_EXECUTABLE, COMPLETE_VAR, os.environ[COMPLETE_VAR])


def kubectl_candidates(cli: click.Command, words: list[str]) -> list[str]:
    """The lines cobra's `__complete` would print for `words` (the partial word last)."""
    args, incomplete = words[:-1], words[-1] if words else ""
    items = ShellComplete(cli, {}, PLUGIN_EXECUTABLE, COMPLETE_VAR).get_completions(args, incomplete)
    directive = DIRECTIVE_NO_FILES
    lines = []
    for item in items:
        if item.type == "file":
            directive = DIRECTIVE_FILES
        elif item.type == "dir":
            directive = DIRECTIVE_DIRECTORIES
        else:
            lines.append(f"{item.value}\t{item.help}" if item.help else str(item.value))
    return [*lines, f":{directive}"]


def shell_script(cli: click.Command, shell: str) -> str:
    """The completion script for typing `kubectl-istio_remote` directly (pipx installs)."""
    completer = get_completion_class(shell)
    if completer is None:
        raise UserError(f"no completion for shell {shell!r}", f"choose one of: {', '.join(SHELLS)}")
    return completer(cli, {}, PLUGIN_EXECUTABLE, COMPLETE_VAR).source()


def plugin_command(argv0: str) -> list[str]:
    """How to run this plugin again: its executable as invoked (krew's symlink stays valid on upgrade), or this Python."""
    if os.path.basename(argv0).startswith("kubectl-"):
        return [os.path.abspath(argv0 if os.sep in argv0 else shutil.which(argv0) or argv0)]
    return [sys.executable, "-m", "kubectl_istio_remote"]


def install_helper(directory: Path, command: list[str]) -> Path:
    """Write the executable kubectl looks for; it hands the words back to this plugin."""
    helper = directory / HELPER_NAME
    try:
        helper.write_text(
            "#!/bin/sh\n"
            "# Written by `kubectl istio-remote completion install`: kubectl runs it to complete `kubectl istio-remote`.\n"
            f'exec {shlex.join(command)} {KUBECTL_PROTOCOL_ARGUMENT} "$@"\n'
        )
        helper.chmod(helper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as error:
        raise UserError(f"cannot write {helper}: {error.strerror}", "pass --dir, a writable directory on your PATH") from None
    return helper


def on_path(directory: Path) -> bool:
    return any(Path(entry).resolve() == directory.resolve() for entry in os.environ.get("PATH", "").split(os.pathsep) if entry)


def _matching(values: Iterable[str], incomplete: str) -> list[str]:
    return [value for value in sorted(set(values)) if value.startswith(incomplete)]


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    """The files kubectl would read: --kubeconfig or KUBECONFIG (a path list), else ~/.kube/config."""
    listed = explicit or os.environ.get("KUBECONFIG", "")
    return [Path(path) for path in listed.split(os.pathsep) if path] or [Path.home() / ".kube" / "config"]


def complete_context(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Context names from the kubeconfig, read as YAML: importing the Kubernetes client would slow every Tab."""
    import yaml

    names: list[str] = []
    for path in kubeconfig_paths(ctx.params.get("kubeconfig")):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        names.extend(entry.get("name", "") for entry in document.get("contexts") or [] if isinstance(entry, dict))
    return _matching(filter(None, names), incomplete)


def complete_mesh_namespace(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    return _namespaces(ctx, ctx.params.get("context"), incomplete)


def complete_istio_namespace(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """istiod runs in the external cluster."""
    return _namespaces(ctx, ctx.params.get("external_context") or ctx.params.get("context"), incomplete)


def _namespaces(ctx: click.Context, context: str | None, incomplete: str) -> list[str]:
    """The cluster's namespaces, or none when it cannot be asked quickly: a Tab press must never print a traceback."""
    try:
        from kubectl_istio_remote.kube.cluster import Cluster, transport_for
        from kubectl_istio_remote.kube.kinds import NAMESPACE
        from kubectl_istio_remote.kube.records import Meta, items

        cluster = Cluster(context or "", ctx.params.get("kubeconfig"), transport_for(ctx.params.get("kubeconfig"), context))
        listed = cluster.list_objects(NAMESPACE, timeout=NAMESPACE_LIST_SECONDS)
    except Exception:  # noqa: BLE001 - see the docstring
        return []
    return _matching((Meta.of(item).name for item in items(listed)), incomplete)
