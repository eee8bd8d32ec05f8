"""`rbottle --help` stays fast: the help path imports none of the heavy libraries.

Wall time is not asserted (these machines are noisy; `bench/startup.py` measures it):
what is asserted is what makes it slow, the libraries that the command modules import
only inside the functions that run a command.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Each costs tens to hundreds of milliseconds to import; together they made `--help` take
# most of a second. pydantic comes with the manifest, rich with tables and the consoles.
HEAVY = {
    "docker",
    "paramiko",
    "boto3",
    "botocore",
    "requests",
    "urllib3",
    "textual",
    "pydantic",
    "rich",
}
# `import time:   self | cumulative | name`, the name indented by its depth.
IMPORT_LINE = re.compile(r"import time:\s+\d+\s+\|\s+\d+\s+\|\s*(\S+)")

# In a fresh interpreter: every help and usage-error path through `main`, then the
# modules that were imported, as the last line of stdout.
EVERY_HELP = """
import contextlib, io, json, sys
from remotebottle.cli import build_parser, main

commands = next(a.choices for a in build_parser()._actions if a.dest == "==SUPPRESS==")
paths = [["--help"], ["--version"], [], ["start"], ["no-such-command"]]
paths += [[name, "--help"] for name in commands]
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for argv in paths:
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps({"commands": sorted(commands), "modules": sorted(sys.modules)}))
"""


def heavy_in(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules} & HEAVY)


def test_rbottle_help_imports_no_heavy_library() -> None:
    """The real entry point (`python -m remotebottle`), seen through `-X importtime`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "remotebottle", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: rbottle")
    imported = [m.group(1) for m in map(IMPORT_LINE.match, proc.stderr.splitlines()) if m]
    assert "remotebottle.cli" in imported
    assert heavy_in(imported) == [], "imported on the `rbottle --help` path; import it lazily"


def test_every_command_help_imports_no_heavy_library() -> None:
    """`rbottle CMD --help` for every command, `--version`, and usage errors."""
    proc = subprocess.run(
        [sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert "start" in seen["commands"] and "hosts" in seen["commands"]
    assert heavy_in(seen["modules"]) == [], "imported on a help path; import it in `run`"
