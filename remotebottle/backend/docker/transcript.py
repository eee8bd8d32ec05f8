"""The agent's transcript: its ~/.claude/projects (Claude Code's transcripts and memory),
saved as a tar when a session ends and put back when it resumes.

Both ways the archive is streamed, capped (`safetar.cap_bytes`) and filtered down to
regular files and directories under projects/, owned by the agent user.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors

from remotebottle.backend.docker import provision
from remotebottle.backend.docker.streams import put_archive
from remotebottle.errors import EngineError, TranscriptError
from remotebottle.safetar import (
    MIB,
    OverCap,
    cap_bytes,
    cap_hint,
    capped,
    capped_file,
    filter_archive,
)

PROJECTS = f"{provision.AGENT_HOME}/.claude/projects"


def save(
    client: docker.DockerClient, container_id: str, dest: Path, progress: Callable[[str], None]
) -> bool:
    """Save the agent's ~/.claude/projects to `dest` as a tar. False, with `dest` left
    alone, when it holds no file.

    Raises:
        TranscriptError: it is over the cap; nothing is saved.
        EngineError: the engine did not hand it over.
    """
    try:
        stream, _ = client.api.get_archive(container_id, PROJECTS)
    except docker.errors.NotFound:
        return False
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not copy the transcript out: {exc}") from None
    limit = cap_bytes()
    part = dest.with_name(dest.name + ".part")
    try:
        with part.open("wb") as out:
            kept = filter_archive(
                capped(stream, limit), out, root="projects", owner=provision.AGENT_UID
            )
    except OverCap:
        part.unlink(missing_ok=True)
        raise TranscriptError(
            f"the agent's ~/.claude/projects is over the {limit // MIB} MiB cap:"
            " its transcript was not saved",
            hint=cap_hint("keep larger transcripts"),
        ) from None
    except (docker.errors.DockerException, tarfile.TarError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise EngineError(f"could not copy the transcript out: {exc}") from None
    finally:
        stream.close()
    if kept.refused:
        more = " …" if len(kept.refused) > 3 else ""
        progress(f"transcript snapshot: not kept: {'; '.join(kept.refused[:3])}{more}")
    if not kept.files:
        part.unlink()
        return False
    part.replace(dest)
    return True


def snapshot(
    client: docker.DockerClient, container_id: str, progress: Callable[[str], None]
) -> bytes | None:
    """`save`, in memory, for callers that want the bytes."""
    with tempfile.TemporaryDirectory(prefix="rbottle-transcript-") as scratch:
        path = Path(scratch) / "projects.tar"
        return path.read_bytes() if save(client, container_id, path, progress) else None


def restore(container: Any, archive: Path) -> None:
    """Put a saved ~/.claude/projects tar back into the (created, not started) agent
    `container`, filtered again and streamed from disk.

    Raises:
        TranscriptError: it is over the cap or not a tar; nothing is restored.
    """
    limit = cap_bytes()
    with archive.open("rb") as source, tempfile.TemporaryFile(dir=archive.parent) as safe:
        try:
            filter_archive(
                capped_file(source, limit), safe, root="projects", owner=provision.AGENT_UID
            )
        except OverCap:
            raise TranscriptError(
                f"{archive} is over the {limit // MIB} MiB cap: not restored",
                hint=cap_hint("restore it"),
            ) from None
        except tarfile.TarError as exc:
            raise TranscriptError(
                f"{archive}: not a readable transcript snapshot ({exc})",
                hint="move it away to resume without the transcript",
            ) from None
        safe.seek(0)
        put_archive(container, f"{provision.AGENT_HOME}/.claude", safe)
