"""A Secret volume's files written as the kubelet writes them (pkg/volume/util/atomic_writer.go), so a change is atomic.

The files live in a timestamped directory; `..data` links to it and each key's file is a link
`KEY -> ..data/KEY`. An update writes a new directory, links `..data_tmp` to it and renames that
over `..data` (one atomic step), then removes the old directory: a reader sees either every old
file or every new one, never a mix, unless it reads the files apart across the swap.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

DATA = "..data"


def write_atomically(directory: Path, files: dict[str, bytes], mode: int = 0o444) -> None:
    """Make `directory` hold exactly `files`, switching from what it held before in one rename."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    fresh = directory / stamp
    fresh.mkdir()
    for key, content in files.items():
        (fresh / key).write_bytes(content)
        (fresh / key).chmod(mode)
    fresh.chmod(0o755)
    before = os.readlink(directory / DATA) if (directory / DATA).is_symlink() else None
    (directory / "..data_tmp").unlink(missing_ok=True)
    os.symlink(stamp, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / DATA)
    for key in files:
        if not (directory / key).is_symlink():
            os.symlink(f"{DATA}/{key}", directory / key)
    for entry in directory.iterdir():
        if entry.is_symlink() and entry.name not in files and not entry.name.startswith(".."):
            entry.unlink()
    if before and before != stamp:
        shutil.rmtree(directory / before, ignore_errors=True)


def holds(directory: Path) -> dict[str, bytes]:
    """What the volume holds now, read through its links ({} before the first write)."""
    if not (directory / DATA).exists():
        return {}
    return {entry.name: entry.read_bytes() for entry in (directory / DATA).iterdir()}
