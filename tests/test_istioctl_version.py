"""istioctl's version is read once per binary: every command used to run istioctl one extra time for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubectl_istio_remote import istioctl

FAKE = """#!/bin/sh
echo run >> "{runs}"
echo '{{"clientVersion": {{"version": "{version}"}}}}'
"""


def fake_istioctl(directory: Path, version: str) -> tuple[Path, Path]:
    runs = directory / "runs"
    binary = directory / "istioctl"
    binary.write_text(FAKE.format(runs=runs, version=version))
    binary.chmod(0o755)
    return binary, runs


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_version_is_asked_once_and_remembered(tmp_path: Path) -> None:
    binary, runs = fake_istioctl(tmp_path, "1.30.3")
    assert [istioctl.find(str(binary)).version for _ in range(3)] == ["1.30.3"] * 3
    assert runs.read_text().splitlines() == ["run"]


def test_an_upgraded_binary_is_asked_again(tmp_path: Path) -> None:
    binary, runs = fake_istioctl(tmp_path, "1.30.3")
    assert istioctl.find(str(binary)).version == "1.30.3"
    fake_istioctl(tmp_path, "1.31.0")  # same path, new content (as an upgrade replaces it)
    os.utime(binary, ns=(1, 2))
    assert istioctl.find(str(binary)).version == "1.31.0"
    assert len(runs.read_text().splitlines()) == 2


def test_an_unwritable_cache_only_costs_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    binary, runs = fake_istioctl(tmp_path, "1.30.3")
    assert [istioctl.find(str(binary)).version for _ in range(2)] == ["1.30.3"] * 2
    assert len(runs.read_text().splitlines()) == 2
