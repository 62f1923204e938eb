"""What README.md and docs/ tell a user to type exists: every page is linked from the README, and every
`kubectl istio-remote COMMAND --flag` they show is a command that takes that flag (a renamed flag
fails here, not in a user's terminal)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from kubectl_istio_remote.cli import build_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md"]
INVOCATION = re.compile(r"kubectl istio-remote ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)([^`|#\n]*)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b")


def invocations() -> list[tuple[str, str, str]]:
    """(page, command words, rest of the line up to a code span's end, a table cell or a comment)."""
    found = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            for words, rest in INVOCATION.findall(line):
                found.append((page.name, words, rest.split(" -- ")[0].split(" | ")[0]))
    return found


def command_for(cli: click.Group, words: str) -> tuple[click.Command, str] | None:
    """The (sub)command the words name, and the words left over (arguments)."""
    first, _, second = words.partition(" ")
    command = cli.commands.get(first)
    if isinstance(command, click.Group) and second in command.commands:
        return command.commands[second], ""
    return (command, second) if command else None


def test_every_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name}" in readme, f"docs/{page.name} is not linked from README.md"
    assert "](CONTRIBUTING.md" in readme


def test_the_pages_show_commands() -> None:
    shown = {words.split()[0] for _, words, _ in invocations()}
    assert {"proxy-status", "shell", "manifest", "cleanup", "doctor", "version", "completion"} <= shown


@pytest.mark.parametrize(("page", "words", "rest"), invocations())
def test_every_command_and_flag_shown_exists(page: str, words: str, rest: str) -> None:
    resolved = command_for(build_cli(), words)
    assert resolved is not None, f"{page}: `kubectl istio-remote {words}` is no command"
    command, _ = resolved
    options = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    options |= {"-h", "--help"}
    try:
        tokens = shlex.split(rest.replace("...", " "))
    except ValueError:
        tokens = rest.split()
    for token in tokens:
        flag = token.split("=")[0].strip("[]()")
        if FLAG.fullmatch(flag):
            assert flag in options, f"{page}: `kubectl istio-remote {words}` has no {flag}"
