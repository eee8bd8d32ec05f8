"""What `rbottle resume` puts back into the agent's ~/.claude/projects, and what needs approval.

Claude Code keeps its transcripts there (`*.jsonl`: `claude --continue` needs them) and its
auto memory (`<project>/memory/MEMORY.md` and topic files), which the next session reads as
its own instructions. A prompt-injected agent could leave itself orders that way, so every
file that is not a transcript counts as memory: it goes back only when the operator
approves it, after seeing it as a diff against the copy they approved last time.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

from remotebottle import safetar, state
from remotebottle.errors import TranscriptError
from remotebottle.safetar import printable

ROOT = "projects"
# The backend sets the agent user as owner when it restores; these tars never leave this machine.
_OWNER = 0
SHOW_BYTES = 64 * 1024  # of each memory file, read to show and compare
SHOW_LINES = 40  # of each file's diff or content
SHOW_WIDTH = 200
SHOW_FILES = 20


def is_transcript(name: str) -> bool:
    return name.endswith(".jsonl")


@dataclass(frozen=True)
class MemoryFile:
    name: str  # as in the tar: projects/<project>/memory/MEMORY.md
    size: int
    digest: str  # sha256 of the whole file
    head: bytes  # its first SHOW_BYTES

    @property
    def shown_name(self) -> str:
        return printable(self.name)


@dataclass(frozen=True)
class Shown:
    """A memory file as the operator sees it: new, changed or removed since the approval."""

    name: str
    status: Literal["new", "changed", "removed"]
    size: int
    lines: tuple[str, ...]  # printable; a diff's lines, or `+` and each line of a new file
    hidden: int  # lines left out


@dataclass(frozen=True)
class Changes:
    shown: tuple[Shown, ...]
    unchanged: int
    more_files: int  # changed files beyond SHOW_FILES, not shown


@dataclass(frozen=True)
class Review:
    """What a resume would restore, and the memory files the operator approved last time."""

    transcripts: int
    transcript_bytes: int
    memory: tuple[MemoryFile, ...]
    refused: tuple[str, ...] = ()
    approved: tuple[MemoryFile, ...] | None = None  # None: never approved
    approved_at: str | None = None

    @property
    def memory_bytes(self) -> int:
        return sum(f.size for f in self.memory)

    def changes(self) -> Changes:
        before = {f.name: f for f in self.approved or ()}
        after = {f.name: f for f in self.memory}
        shown = [
            s for name in sorted(before | after) if (s := diff(before.get(name), after.get(name)))
        ]
        unchanged = sum(
            1 for n in before.keys() & after.keys() if before[n].digest == after[n].digest
        )
        return Changes(tuple(shown[:SHOW_FILES]), unchanged, max(0, len(shown) - SHOW_FILES))


def diff(old: MemoryFile | None, new: MemoryFile | None) -> Shown | None:
    """How `new` differs from the approved `old`; a new file whole; None when unchanged."""
    if new is None:
        assert old is not None
        return Shown(old.shown_name, "removed", 0, (), 0)
    if old is not None and old.digest == new.digest:
        return None
    if old is None:
        lines = [f"+{line}" for line in _text(new)]
    else:
        lines = list(difflib.unified_diff(_text(old), _text(new), lineterm="", n=2))[2:]
    if new.size > len(new.head) or (old is not None and old.size > len(old.head)):
        lines.append(f"(only the first {SHOW_BYTES // 1024} KiB of the file read)")
    kept = [_clip(line) for line in lines[:SHOW_LINES]]
    status: Literal["new", "changed"] = "new" if old is None else "changed"
    return Shown(new.shown_name, status, new.size, tuple(kept), len(lines) - len(kept))


def _text(file: MemoryFile) -> list[str]:
    if b"\0" in file.head:
        return [f"(binary, {file.size} bytes, sha256 {file.digest[:16]}…)"]
    return file.head.decode("utf-8", errors="replace").splitlines()


def _clip(line: str) -> str:
    shown = printable(line)
    return shown if len(shown) <= SHOW_WIDTH else shown[:SHOW_WIDTH] + "…"


@dataclass(frozen=True)
class Decision:
    restore_memory: bool
    notice: str = ""


def decide(
    review: Review, identity: str, *, restore_memory: bool, ask: Callable[[str], bool] | None
) -> Decision:
    """Whether memory files go back: only with --restore-memory or a yes on the terminal.

    `ask` is the y/N question (default no), or None when there is no terminal to ask on.
    """
    count = len(review.memory)
    if count == 0:
        return Decision(False)
    if restore_memory:
        return Decision(True)
    files = f"{count} memory file{'s' if count != 1 else ''}"
    if ask is None:
        return Decision(
            False,
            f"{files} left out of this session (no terminal to ask on);"
            f" `rbottle resume {identity} --restore-memory` includes them",
        )
    if ask(f"Restore the {files} shown above into the bottle?"):
        return Decision(True)
    return Decision(False, f"{files} left out of this session (you answered no)")


class Staged:
    """A saved snapshot split, in a scratch directory, into its transcripts and its memory."""

    def __init__(self, identity: str, scratch: Path, review: Review) -> None:
        self.identity = identity
        self.review = review
        self._scratch = scratch

    def archive(self, *, with_memory: bool) -> Path:
        """The tar to restore: the transcripts (and every directory), plus the memory files."""
        transcripts = self._scratch / "transcripts.tar"
        if not (with_memory and self.review.memory):
            return transcripts
        combined = self._scratch / "restore.tar"
        with combined.open("wb") as out:
            writer = safetar.SafeWriter(out, _OWNER)
            for part in (transcripts, self._scratch / "memory.tar"):
                with part.open("rb") as source:
                    for member, data in safetar.read_safe(source, ROOT, []):
                        writer.add(member, data)
            writer.close()
        return combined

    def approve(self) -> None:
        """Keep these memory files as the copy the next resume is compared against."""
        if not self.review.memory:
            return
        target = state.approved_memory_file(self.identity)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(self._scratch / "memory.tar", part)
        part.replace(target)


@contextlib.contextmanager
def staged(identity: str) -> Iterator[Staged | None]:
    """The last session's snapshot of `identity`, split and reviewed; None if there is none.

    Raises:
        TranscriptError: the snapshot is over the size cap, or not a tar.
    """
    saved = state.snapshot_file(identity)
    if not saved.is_file():
        yield None
        return
    limit = safetar.cap_bytes()
    size = saved.stat().st_size
    if size > limit:
        raise TranscriptError(
            f"{saved} is {size // safetar.MIB} MiB, over the {limit // safetar.MIB} MiB cap"
            " for a restore",
            hint=safetar.cap_hint("restore it")
            + ", or move the file away to resume without the transcript",
        )
    approved, approved_at = _approved(identity)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=saved.parent) as scratch:
        review = _split(saved, Path(scratch), limit)
        yield Staged(
            identity, Path(scratch), replace(review, approved=approved, approved_at=approved_at)
        )


def _split(saved: Path, scratch: Path, limit: int) -> Review:
    refused: list[str] = []
    memory: list[MemoryFile] = []
    with (
        saved.open("rb") as raw,
        (scratch / "transcripts.tar").open("wb") as transcripts_out,
        (scratch / "memory.tar").open("wb") as memory_out,
    ):
        transcripts = safetar.SafeWriter(transcripts_out, _OWNER)
        memories = safetar.SafeWriter(memory_out, _OWNER)
        try:
            for member, data in safetar.read_safe(safetar.capped_file(raw, limit), ROOT, refused):
                if data is None or is_transcript(member.name):
                    transcripts.add(member, data)
                else:
                    reader = _Reading(data)
                    memories.add(member, reader)
                    memory.append(reader.file(member.name, member.size))
        except safetar.OverCap:
            raise TranscriptError(
                f"{saved} is over the {limit // safetar.MIB} MiB cap for a restore",
                hint=safetar.cap_hint("restore it"),
            ) from None
        except tarfile.TarError as exc:
            raise TranscriptError(
                f"{saved}: not a readable transcript snapshot ({exc})",
                hint="move it away to resume without the transcript",
            ) from None
        transcripts.close()
        memories.close()
    return Review(transcripts.files, transcripts.bytes, tuple(memory), tuple(refused))


def _approved(identity: str) -> tuple[tuple[MemoryFile, ...] | None, str | None]:
    """The approved copy's memory files and when it was approved; (None, None) if never.

    An unreadable copy counts as never approved: everything is then shown whole.
    """
    path = state.approved_memory_file(identity)
    if not path.is_file():
        return None, None
    files: list[MemoryFile] = []
    try:
        with path.open("rb") as raw:
            for member, data in safetar.read_safe(raw, ROOT, []):
                if data is not None:
                    reader = _Reading(data)
                    while reader.read(safetar.CHUNK):
                        pass
                    files.append(reader.file(member.name, member.size))
    except tarfile.TarError:
        return None, None
    when = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return tuple(files), when


class _Reading:
    """Passes a member's data on while hashing it and keeping its first SHOW_BYTES."""

    def __init__(self, data: IO[bytes]) -> None:
        self._data = data
        self._hash = hashlib.sha256()
        self._head = bytearray()

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._data.read(size)
        self._hash.update(chunk)
        if len(self._head) < SHOW_BYTES:
            self._head += chunk[: SHOW_BYTES - len(self._head)]
        return chunk

    def file(self, name: str, size: int) -> MemoryFile:
        return MemoryFile(name, size, self._hash.hexdigest(), bytes(self._head))
