"""A terminal for e2e tests: a tmux session the test types into and reads the screen of."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import require

PASSED = ("HOME", "REMOTEBOTTLE_HOME", "REMOTEBOTTLE_EXTRA_CA_CERTS", "PATH", "DOCKER_HOST")

RBOTTLE = f"{shlex.quote(sys.executable)} -m remotebottle"


class Tmux:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir

    @classmethod
    def fresh(cls, workdir: Path) -> Tmux:
        """A session with a name no other test run uses, started in `workdir`."""
        if shutil.which("tmux") is None:
            require("tmux is not installed; run `make setup`")
        return cls(f"rbtest{os.getpid()}{int(time.monotonic() * 1000) % 100000}", workdir)

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    def start(self, command: str, env: dict[str, str] | None = None) -> None:
        """Run `command` in a new session of its own, with this process's HOME, state dir,
        PATH and engine, plus `env`; the screen shows EXITED=<code> when it ends."""
        passed = {k: v for k, v in os.environ.items() if k in PASSED} | (env or {})
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in passed.items())
        self.tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            "100",
            "-y",
            "30",
            "-c",
            str(self.workdir),
            f"env {assignments} {command}; echo EXITED=$?; sleep 600",
        )

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)
