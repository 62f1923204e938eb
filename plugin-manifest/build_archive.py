"""Build the self-contained krew archive of this machine's platform with PyInstaller.

    python plugin-manifest/build_archive.py [--out dist]

Produces dist/kubectl-istio_remote_<os>_<arch>.tar.gz holding `kubectl-istio_remote`, its
`_internal/` directory and LICENSE, and prints the archive's path. PyInstaller does not cross-
compile, so the release workflow runs this once per os/arch runner (plugin-manifest/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXECUTABLE = "kubectl-istio_remote"
#: krew's names for Python's platform.machine() values.
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_platform() -> tuple[str, str]:
    return sys.platform.replace("linux2", "linux"), ARCHES[platform.machine().lower()]


def archive_name(os_name: str, arch: str) -> str:
    return f"{EXECUTABLE}_{os_name}_{arch}.tar.gz"


def freeze(work: Path) -> Path:
    """PyInstaller one-directory build: starts without unpacking to a temporary directory on every run."""
    subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
            "--onedir", "--name", EXECUTABLE,
            # The CLI imports the command a run names by its name (cli/__init__.py COMMANDS): not visible to the analysis.
            "--collect-submodules", "kubectl_istio_remote.cli",
            "--distpath", str(work / "dist"), "--workpath", str(work / "build"), "--specpath", str(work),
            str(ROOT / "plugin-manifest" / "entry.py"),
        ],
        check=True,
    )  # fmt: skip
    return work / "dist" / EXECUTABLE


def pack(frozen: Path, archive: Path) -> None:
    """The executable at the archive's root (krew's `bin`), its libraries beside it, and LICENSE."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(frozen.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(frozen)), recursive=False)
        tar.add(ROOT / "LICENSE", arcname="LICENSE")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="directory for the archive")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's scratch directory")
    options = parser.parse_args()
    archive = options.out / archive_name(*host_platform())
    pack(freeze(options.work), archive)
    print(archive)


if __name__ == "__main__":
    main()
