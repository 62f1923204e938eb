"""Fill the krew template with the version, and the download address and sha256 of each archive.

    python plugin-manifest/render_krew.py --archives dist \
        --base-url https://github.com/kubectl-istio-remote/kubectl-istio-remote/releases/download/v0.1.0 > krew.yaml

Every platform of the template needs its archive in --archives, named as build_archive.py names
it; --unreleased writes all-zero checksums instead, for the repository's krew.yaml between releases.
"""

from __future__ import annotations

import argparse
import re
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_archive import ROOT, archive_name, sha256

TEMPLATE = ROOT / "plugin-manifest" / "istio-remote.yaml"
UNRELEASED_SHA256 = "0" * 64


def platforms(template: str) -> list[tuple[str, str]]:
    """The (os, arch) pairs the template has a platform entry for."""
    return [(match[1], match[2]) for match in re.finditer(r"\$\{uri_([a-z]+)_([a-z0-9]+)\}", template)]


def render(version: str, base_url: str, archives: Path, unreleased: bool = False) -> str:
    template = TEMPLATE.read_text()
    values = {"version": version}
    for os_name, arch in platforms(template):
        name = archive_name(os_name, arch)
        values[f"uri_{os_name}_{arch}"] = f"{base_url.rstrip('/')}/{name}"
        if unreleased:
            values[f"sha256_{os_name}_{arch}"] = UNRELEASED_SHA256
        elif (archives / name).is_file():
            values[f"sha256_{os_name}_{arch}"] = sha256(archives / name)
        else:
            raise SystemExit(f"error: {archives / name} is missing; build it on a {os_name}/{arch} machine, or pass --unreleased")
    body = string.Template(template).substitute(values)
    return "".join(line for line in body.splitlines(keepends=True) if not line.startswith("#"))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from kubectl_istio_remote import __version__

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=__version__, help="plugin version without the v (default: the package's)")
    parser.add_argument("--base-url", required=True, help="where the archives are downloaded from")
    parser.add_argument("--archives", type=Path, default=ROOT / "dist", help="directory holding the archives")
    parser.add_argument("--unreleased", action="store_true", help="all-zero sha256 values (no archive needed)")
    options = parser.parse_args()
    sys.stdout.write(render(options.version, options.base_url, options.archives, options.unreleased))


if __name__ == "__main__":
    main()
