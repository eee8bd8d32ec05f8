"""Attach the local terminal to a bottle's agent: raw mode, resize, detach, exit status.

Works the same on a local engine and through a tunnel: it only needs a
`docker.DockerClient` and a container id. The container must have been created
detached with `stdin_open=True, tty=True` so that a detach never closes its stdin.
What the agent prints passes `TermFilter` on its way to this terminal.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

import docker
import docker.errors

from remotebottle.backend.docker.streams import buffered_start, iter_frames, raw_socket
from remotebottle.errors import EngineError
from remotebottle.ops.replay import Shown

DETACH_KEYS = "ctrl-p,ctrl-q"


@dataclass(frozen=True)
class SessionEnd:
    """How a stream ended: the agent exited (with its status), we detached, or the link to
    the engine was lost (the bottle still runs: attach again)."""

    exit_code: int | None
    detached: bool = False
    link_lost: bool = False


def terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode for the duration; restored on every exit path."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach_tty(
    client: docker.DockerClient,
    container_id: str,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    redraw: bool = False,
    on_attached: Callable[[], None] | None = None,
    shown: Shown | None = None,
    lost: threading.Event | None = None,
) -> SessionEnd:
    """Stream a TTY container to this terminal until it exits or the user detaches.

    Args:
        redraw: after a reattach, nudge the size so that a full-screen TUI redraws.
        on_attached: called once the stream is attached (the bottle's release).
        shown: what an earlier attach of this session showed: replayed output skips it.
        lost: set by a `LinkWatch` when the link went down (the stream then ends early).
    """
    in_fd = (stdin or sys.stdin.buffer).fileno()
    out = stdout or sys.stdout.buffer
    api = client.api
    shown = shown if shown is not None else Shown()
    params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "detachKeys": DETACH_KEYS}
    if shown.any:
        params["logs"] = 1
    try:
        hijacked = api.attach_socket(container_id, params=params)
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"could not attach to {container_id[:12]}: {exc}") from None
    sock = raw_socket(hijacked)

    def resize(*_: Any) -> None:
        size = terminal_size(in_fd)
        if size:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                api.resize(container_id, height=size[0], width=size[1])

    def on_winch(_signum: int, _frame: FrameType | None) -> None:
        resize()

    previous = signal.signal(signal.SIGWINCH, on_winch)
    size = terminal_size(in_fd)
    if size and redraw:
        # The docker CLI's trick: a different size then the real one forces a redraw.
        with contextlib.suppress(docker.errors.DockerException, OSError):
            api.resize(container_id, height=size[0] + 1, width=size[1] + 1)
    resize()
    if on_attached:
        on_attached()
    selector = selectors.DefaultSelector()
    try:
        with raw_terminal(in_fd):
            selector.register(sock, selectors.EVENT_READ, "remote")
            with contextlib.suppress(ValueError, OSError):
                selector.register(in_fd, selectors.EVENT_READ, "local")
            _pump(selector, sock, buffered_start(hijacked), in_fd, out, shown)
    finally:
        selector.close()
        signal.signal(signal.SIGWINCH, previous)
        with contextlib.suppress(OSError):
            hijacked.close()
    if lost is not None and lost.is_set():
        return SessionEnd(exit_code=None, link_lost=True)
    _write(out, shown.screens[1].flush())
    try:
        return _outcome(client, container_id)
    except EngineError:
        if lost is not None and lost.is_set():
            return SessionEnd(exit_code=None, link_lost=True)
        raise


def _pump(
    selector: selectors.BaseSelector,
    sock: Any,
    start: bytes,
    in_fd: int,
    out: IO[bytes],
    shown: Shown,
) -> None:
    """Copy the container's output (`start`, then `sock`) out and the terminal's keys in."""
    replay = shown.replay()
    _write(out, shown.take(1, start, replay))
    while True:
        for key, _ in selector.select():
            if key.data == "remote":
                try:
                    data = sock.recv(65536)
                except OSError:  # the link went down under it
                    return
                if not data:
                    return
                _write(out, shown.take(1, data, replay))
            else:
                data = os.read(in_fd, 4096)
                if not data:
                    selector.unregister(in_fd)
                    continue
                try:
                    sock.sendall(data)
                except OSError:
                    return


def _write(out: IO[bytes], data: bytes) -> None:
    if data:
        out.write(data)
        out.flush()


def _outcome(client: docker.DockerClient, container_id: str) -> SessionEnd:
    try:
        state = client.api.inspect_container(container_id)["State"]
    except docker.errors.NotFound:
        return SessionEnd(exit_code=None)
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"could not inspect {container_id[:12]}: {exc}") from None
    if state.get("Running"):
        return SessionEnd(exit_code=None, detached=True)
    return SessionEnd(exit_code=int(state.get("ExitCode", 1)))


def stream_output(
    client: docker.DockerClient,
    container_id: str,
    *,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_attached: Callable[[], None] | None = None,
) -> int:
    """For non-TTY runs (scripts, `-p`): copy stdout/stderr until exit; return the status."""
    end = follow_output(client, container_id, stdout=stdout, stderr=stderr, on_attached=on_attached)
    return 1 if end.exit_code is None else end.exit_code


def follow_output(
    client: docker.DockerClient,
    container_id: str,
    *,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    on_attached: Callable[[], None] | None = None,
    shown: Shown | None = None,
    lost: threading.Event | None = None,
) -> SessionEnd:
    """`stream_output` that can be picked up again: `shown` and `lost` as in `attach_tty`."""
    targets = {1: stdout or sys.stdout.buffer, 2: stderr or sys.stderr.buffer}
    shown = shown if shown is not None else Shown()
    replay = shown.replay()
    api = client.api
    try:
        hijacked = api.attach_socket(
            container_id, params={"stdout": 1, "stderr": 1, "stream": 1, "logs": 1}
        )
        if on_attached:
            on_attached()
        try:
            for stream_id, data in iter_frames(hijacked):
                stream = 2 if stream_id == 2 else 1
                _write(targets[stream], shown.take(stream, data, replay))
        except OSError:
            if lost is None or not lost.is_set():
                raise
        finally:
            with contextlib.suppress(OSError):
                hijacked.close()
        if lost is not None and lost.is_set():
            return SessionEnd(exit_code=None, link_lost=True)
        for stream, screen in shown.screens.items():
            _write(targets[stream], screen.flush())
        result = api.wait(container_id)
    except docker.errors.DockerException as exc:
        if lost is not None and lost.is_set():
            return SessionEnd(exit_code=None, link_lost=True)
        raise EngineError(f"lost the bottle's output: {exc}") from None
    except OSError as exc:
        raise EngineError(f"lost the bottle's output: {exc}") from None
    return SessionEnd(exit_code=int(result.get("StatusCode", 1)))


def replay_ended(
    client: docker.DockerClient,
    container_id: str,
    *,
    tty: bool,
    shown: Shown,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> SessionEnd:
    """For a container that ended while nobody was attached (during a network cut): what
    it printed that `shown` has not, then its exit status. (Attaching to a stopped
    container with `stream=1` replays its log and then never ends: this asks for the log
    alone.)"""
    targets = {1: stdout or sys.stdout.buffer, 2: stderr or sys.stderr.buffer}
    replay = shown.replay()
    api = client.api
    try:
        hijacked = api.attach_socket(
            container_id, params={"stdout": 1, "stderr": 1, "stream": 0, "logs": 1}
        )
        try:
            if tty:
                sock = raw_socket(hijacked)
                data = buffered_start(hijacked)
                while True:
                    if data:
                        _write(targets[1], shown.take(1, data, replay))
                    data = sock.recv(65536)
                    if not data:
                        break
            else:
                for stream_id, data in iter_frames(hijacked):
                    stream = 2 if stream_id == 2 else 1
                    _write(targets[stream], shown.take(stream, data, replay))
        finally:
            with contextlib.suppress(OSError):
                hijacked.close()
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"could not read what {container_id[:12]} printed: {exc}") from None
    for stream, screen in shown.screens.items():
        _write(targets[stream], screen.flush())
    return _outcome(client, container_id)
