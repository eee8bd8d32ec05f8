"""Pinned third-party parts (image references, versions).

The values live in ``resources/pins.env`` so that the test harness (shell) and
the code read the same pins.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def _pins() -> dict[str, str]:
    text = resources.files("remotebottle").joinpath("resources/pins.env").read_text()
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        pins[key.strip()] = value.strip()
    return pins


def pin(key: str) -> str:
    """Return the pinned value for `key` (e.g. ``PIPELOCK_IMAGE``)."""
    return _pins()[key]


def base_image() -> str:
    return pin("BASE_IMAGE")


def pipelock_image() -> str:
    return pin("PIPELOCK_IMAGE")


def gitleaks_image() -> str:
    return pin("GITLEAKS_IMAGE")


def claude_code_version() -> str:
    return pin("CLAUDE_CODE_VERSION")
