"""Copies of a session's transcript taken while its bottle runs.

Two things can leave a session with no transcript to `resume` from. A VM can go away
under it (destroyed, powered off, its engine restarted), and with it what the session's
end would have copied back. And under gVisor (`runsc`, which bottles on VMs use) what
the agent writes lives inside the sandbox's own root filesystem: the engine's copy
(`docker cp`, which the end of a session uses) sees the files as they were when the
container started, running or stopped.

So while the bottle runs, on a remote engine or under gVisor, its ~/.claude/projects is
copied to `state/<identity>/` every $REMOTEBOTTLE_TRANSCRIPT_SYNC_SECONDS (default 15;
0 turns it off), whenever it changed since the last copy. Both are read from inside the
container (`exec`, as the agent's user): a fingerprint (names, sizes and times, one
checksum), and, when it changed, a tar of the directory, which passes the same cap and
filter as any snapshot (`safetar`). The copy at the session's end replaces these where
the engine sees the agent's files (`engine_sees_files`); under gVisor the last copy
taken here is what is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from remotebottle import state
from remotebottle.backend.docker.provision import AGENT_HOME, AGENT_UID
from remotebottle.backend.docker.transcript import PROJECTS
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts.engine import Engine
from remotebottle.hosts.local import connect_local_engine
from remotebottle.safetar import MIB, OverCap, cap_bytes, capped, filter_archive

log = logging.getLogger(__name__)

SYNC_ENV = "REMOTEBOTTLE_TRANSCRIPT_SYNC_SECONDS"
DEFAULT_SECONDS = 15.0
_SLOWDOWN = 10  # never spend more than a tenth of the time copying
_FINGERPRINT = ["sh", "-c", f"find {PROJECTS} -printf '%p %s %T@\\n' 2>/dev/null | cksum"]
_TAR = ["tar", "-C", f"{AGENT_HOME}/.claude", "-cf", "-", "projects"]


def sync_seconds() -> float:
    """$REMOTEBOTTLE_TRANSCRIPT_SYNC_SECONDS, else 15; 0 means no copies during a session.

    Raises:
        BottleError: it is not a number of seconds.
    """
    raw = os.environ.get(SYNC_ENV, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise BottleError(
            f"{SYNC_ENV}={raw!r} is not a number of seconds between 0 and 86400",
            hint=f"e.g. {SYNC_ENV}=60, 0 for no copies during a session, or unset it for"
            f" the default of {DEFAULT_SECONDS:.0f}",
        )
    return value


class Checkpoints:
    """Copies the transcript of `container_id` into `state/<identity>/` every `every`
    seconds while it changes; `copied_at` is when the last copy landed."""

    def __init__(
        self, client: docker.DockerClient, container_id: str, identity: str, every: float
    ) -> None:
        self._client = client
        self._container = container_id
        self._identity = identity
        self._every = every
        self._last: bytes | None = None
        self.copied_at: datetime | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._warned = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rbottle-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No copy lands after this returns (one under way is dropped)."""
        with self._lock:
            self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        pause = self._every
        while not self._wake.wait(pause):
            started = time.monotonic()
            try:
                self.take()
            except (RemoteBottleError, docker.errors.DockerException, OSError) as exc:
                log.debug("transcript checkpoint skipped: %s", exc)
            pause = max(self._every, _SLOWDOWN * (time.monotonic() - started))

    def take(self) -> bool:
        """Copy the transcript now if it changed since the last copy; whether one landed."""
        mark = self._run_in_agent(_FINGERPRINT)
        if mark is None or mark == self._last:
            return False
        final = state.snapshot_file(self._identity)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = final.with_name(final.name + ".sync")
        try:
            if not self._copy(fresh):
                return False
            with self._lock:
                if self._stopped:
                    return False
                os.replace(fresh, final)
                self._last = mark
                self.copied_at = datetime.now(UTC)
        finally:
            fresh.unlink(missing_ok=True)
        return True

    def _copy(self, dest: Path) -> bool:
        """~/.claude/projects as the agent sees it, capped and filtered, into `dest`."""
        api = self._client.api
        made = api.exec_create(self._container, _TAR, user=str(AGENT_UID))
        chunks = api.exec_start(made["Id"], stream=True, demux=True)
        try:
            with dest.open("wb") as out:
                stdout = (data for data, _ in chunks if data)
                kept = filter_archive(
                    capped(stdout, cap_bytes()), out, root="projects", owner=AGENT_UID
                )
                for _ in stdout:  # tar's padding after the end of the archive
                    pass
        except OverCap as over:
            if not self._warned:
                self._warned = True
                log.warning(
                    "the agent's ~/.claude/projects is over the %d MiB cap: not copied"
                    " during the session",
                    over.limit // MIB,
                )
            return False
        except tarfile.TarError:
            return False
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
        return kept.files > 0 and self._succeeded(made["Id"])

    def _run_in_agent(self, argv: list[str]) -> bytes | None:
        made = self._client.api.exec_create(self._container, argv, user=str(AGENT_UID))
        out = self._client.api.exec_start(made["Id"])
        return bytes(out) if self._succeeded(made["Id"]) else None

    def _succeeded(self, exec_id: str) -> bool:
        """Whether the exec ended with status 0 (its output may end a moment before it)."""
        deadline = time.monotonic() + 5
        while True:
            found = self._client.api.exec_inspect(exec_id)
            if not found.get("Running") or time.monotonic() > deadline:
                return found.get("ExitCode") == 0 and not found.get("Running")
            time.sleep(0.1)


@contextlib.contextmanager
def kept(engine: Engine, container_id: str, identity: str) -> Iterator[Checkpoints | None]:
    """Checkpoints of the session's transcript for the block, for a session with a record
    here whose bottle runs on a remote engine or under gVisor; None otherwise."""
    every = sync_seconds()
    if every == 0 or not state.has_state(identity) or not _needs_copies(engine, container_id):
        yield None
        return
    version = engine.client.api.api_version
    if engine.remote is not None:
        client = engine.remote.tunnel.client(timeout=60, version=version)
    else:
        client = connect_local_engine(timeout=60)
    checkpoints = Checkpoints(client, container_id, identity, every)
    checkpoints.start()
    try:
        yield checkpoints
    finally:
        checkpoints.stop()
        client.close()


def _needs_copies(engine: Engine, container_id: str) -> bool:
    return engine.remote is not None or not engine_sees_files(engine.client, container_id)


def engine_sees_files(client: docker.DockerClient, container_id: str) -> bool:
    """Whether the engine's copy of a container's files (`docker cp`) sees what the agent
    wrote. Not under gVisor with the sandbox's root filesystem overlay (`runsc`'s default:
    the engine sees the files as they were at the start); `--overlay2=none` on the
    runtime keeps them on the host, where it does."""
    try:
        runtime = client.api.inspect_container(container_id)["HostConfig"].get("Runtime")
        if runtime != "runsc":
            return True
        described = (client.info().get("Runtimes") or {}).get("runsc") or {}
    except (docker.errors.DockerException, OSError):
        return True  # as before: the copy at the end says what it finds
    return "--overlay2=none" in (described.get("runtimeArgs") or [])


def last_copy(checkpoints: Checkpoints | None) -> str:
    """` from its transcript as copied at HH:MM:SS UTC`, or "" when none was copied in
    this session."""
    if checkpoints is None or checkpoints.copied_at is None:
        return ""
    return f" from its transcript as copied at {checkpoints.copied_at:%H:%M:%S} UTC"
