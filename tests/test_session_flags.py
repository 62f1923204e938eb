"""The flag groups: declared once in cli/options.py, attached to every command that takes them, parsed into SessionFlags."""

from __future__ import annotations

import inspect

import pytest

from kubectl_istio_remote.cli import COMMANDS, build_cli, invocation, options
from kubectl_istio_remote.kube.overrides import ConnectionFlags
from kubectl_istio_remote.session.settings import Mode, PullPolicy, SessionFlags
from tests.cli_runner import run_cli

#: The flags of each group, as users type them (kubectl's connection flags as cli-runtime's ConfigFlags has them).
FLAGS = {
    options.CONNECTION: "--kubeconfig --context --user --cluster --server --token --certificate-authority --client-certificate "
    "--client-key --insecure-skip-tls-verify --tls-server-name --as --as-group --as-uid --request-timeout",
    options.TARGET: "--external-context --istio-namespace --revision",
    options.MODE: "--mode --aggregator --aggregator-ca",
    options.LIMITS: "--timeout --ttl",
    options.IMAGE: "--image --image-pull-secret --pull-policy",
    options.VERBOSE: "--verbose",
}
#: Which groups each command takes: a change here is a change users see in --help.
TAKES = {
    "proxy-status": options.SESSION,
    "shell": options.SESSION,
    "version": options.SESSION,
    "remote-clusters": options.SESSION,
    "doctor": (options.CONNECTION, options.TARGET, options.MODE, options.VERBOSE),
    "cleanup": (options.CONNECTION, options.TARGET, options.VERBOSE),
    "serve": (options.CONNECTION, options.VERBOSE),
    "manifest": (options.IMAGE,),
}


def parsed(command: str, *args: str) -> SessionFlags:
    """The flags exactly as `command` receives them: its click command, built as a run builds it, parsing `args`."""
    cli = build_cli(command)
    with cli.commands[command].make_context(command, list(args), parent=cli.make_context("kubectl istio-remote", [command])) as ctx:
        return invocation.flags(ctx)


@pytest.mark.parametrize("command", sorted(TAKES))
def test_every_flag_of_a_group_is_in_the_help_of_every_command_that_takes_it(command: str) -> None:
    shown = run_cli(command, "--help").stdout
    for group in TAKES[command]:
        for flag in FLAGS[group].split():
            assert f" {flag} " in shown or f" {flag}\n" in shown, (command, flag)
    for group in set(FLAGS) - set(TAKES[command]):
        assert f" {FLAGS[group].split()[0]} " not in shown, (command, group.name)


def test_every_command_with_groups_is_listed_here() -> None:
    cli = build_cli()
    attached = {name for name in COMMANDS if any(param.name == "verbose" or param.name == "image" for param in cli.commands[name].params)}
    assert attached == set(TAKES)


def test_enums_arrive_as_enums_and_repeated_flags_as_a_tuple() -> None:
    flags = parsed("proxy-status", "--mode", "local", "--pull-policy", "Always", "--image-pull-secret", "a", "--image-pull-secret", "b")
    assert flags.mode is Mode.local
    assert flags.pull_policy is PullPolicy.Always
    assert flags.image_pull_secret == ("a", "b")


def test_each_default_is_the_one_session_flags_states() -> None:
    assert parsed("proxy-status") == SessionFlags()
    assert parsed("cleanup", "--context", "remote") == SessionFlags(connection=ConnectionFlags(context="remote"))


def test_kubectls_connection_flags_arrive_as_connection_flags() -> None:
    flags = parsed(
        "serve",
        "--as",
        "jane",
        "--as-group",
        "devs",
        "--as-group",
        "ops",
        "--as-uid",
        "42",
        "-s",
        "https://k:6443",
        "--request-timeout",
        "5s",
    )
    assert flags.connection == ConnectionFlags(
        server="https://k:6443", impersonate="jane", impersonate_groups=("devs", "ops"), impersonate_uid="42", request_timeout="5s"
    )
    assert flags.connection.request_seconds == 5.0


def test_a_command_is_called_with_its_own_parameters_only() -> None:
    """The groups' values stay in ctx.params: a command's signature names only what its body uses."""
    from kubectl_istio_remote.cli import cleanup

    assert cleanup.command.callback is not None
    assert set(inspect.signature(cleanup.command.callback).parameters) == {"ctx", "everything", "session", "dry_run"}
    assert run_cli("cleanup", "--context", "nowhere", "--kubeconfig", "/nonexistent", "--as", "jane").exit_code == 1
