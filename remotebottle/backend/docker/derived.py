"""A bottle's own image: the agent image plus its approved capabilities, built without network.

Approved packages are kept as one offline install line (`install_line`): exec form, so the
names are arguments, never shell text. `build_derived_image` builds in two steps. The first
runs only `apt-get` to download those packages from the image's own Debian sources: the one
step with network. The second runs every approved line (the offline installs included, so
package scripts too) with no network at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from remotebottle.errors import BottleError

DEBS = "/var/cache/rbottle-debs"
_APT = ["apt-get", "install", "-y", "--no-install-recommends", "-o", f"Dir::Cache::archives={DEBS}"]
_OFFLINE = [*_APT, "--no-download"]
# A Debian package name, optionally pinned (`name=version`), as the supervisor files them.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}(=[A-Za-z0-9.+~:_-]{1,100})?")


def install_line(packages: Sequence[str]) -> str:
    """The Dockerfile line that installs `packages` from the downloaded archives only."""
    return "RUN " + json.dumps([*_OFFLINE, *_checked(packages)])


def packages_of(lines: str) -> list[str]:
    """Every package the `install_line`s among `lines` install, in order, once each."""
    found: list[str] = []
    for line in lines.splitlines():
        if not line.startswith("RUN ["):
            continue
        try:
            argv = json.loads(line.removeprefix("RUN "))
        except ValueError:
            continue
        if isinstance(argv, list) and argv[: len(_OFFLINE)] == _OFFLINE:
            found += [p for p in _checked(argv[len(_OFFLINE) :]) if p not in found]
    return found


def download_dockerfile(base: str, packages: Sequence[str]) -> bytes:
    """The step with network: apt-get fetches `packages` (and what they need), installs
    nothing, runs no package script."""
    download = json.dumps([*_APT, "--download-only", *_checked(packages)])
    return f'FROM {base}\nUSER root\nRUN ["apt-get", "update"]\nRUN {download}\n'.encode()


def offline_dockerfile(start: str, lines: str, *, downloaded: bool) -> bytes:
    """The step without network: the approved `lines` on `start`, as root; the agent user
    again at the end."""
    tidy = f"RUN rm -rf {DEBS} /var/lib/apt/lists/*\n" if downloaded else ""
    return f"FROM {start}\nUSER root\n{lines.rstrip()}\n{tidy}USER agent\n".encode()


def _checked(packages: Sequence[object]) -> list[str]:
    names = [p for p in packages if isinstance(p, str) and _PACKAGE.fullmatch(p)]
    if len(names) != len(packages) or not names:
        raise BottleError(f"not a list of Debian package names: {list(packages)!r}")
    return names
