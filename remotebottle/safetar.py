"""Tars of ~/.claude/projects that are safe to keep and to put back: streamed, capped, filtered.

Only regular files and directories under one top directory pass. Links, devices, fifos,
absolute paths and `..` are refused, and every header is written anew (owner, plain modes,
no extended attributes), so a tar that passes cannot write outside that directory when
Docker extracts it into a container.
"""

from __future__ import annotations

import io
import os
import tarfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, BinaryIO

from remotebottle.errors import TranscriptError

if TYPE_CHECKING:
    from _typeshed import SupportsRead, WriteableBuffer

MIB = 1024 * 1024
CAP_ENV = "REMOTEBOTTLE_TRANSCRIPT_CAP_MIB"
DEFAULT_CAP_MIB = 256
CHUNK = 1024 * 1024


def cap_bytes() -> int:
    """The largest snapshot kept or restored: $REMOTEBOTTLE_TRANSCRIPT_CAP_MIB, else 256 MiB."""
    raw = os.environ.get(CAP_ENV, "").strip()
    if not raw:
        return DEFAULT_CAP_MIB * MIB
    if not raw.isdigit() or int(raw) == 0:
        raise TranscriptError(
            f"{CAP_ENV}={raw!r} is not a positive whole number of MiB",
            hint=f"e.g. {CAP_ENV}=512, or unset it for the default of {DEFAULT_CAP_MIB}",
        )
    return int(raw) * MIB


def cap_hint(action: str) -> str:
    return f"set {CAP_ENV} to a larger number of MiB to {action}"


class OverCap(Exception):
    """More bytes arrived than the cap allows; the caller says what was refused."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} bytes")
        self.limit = limit


class CappedStream(io.RawIOBase):
    """A readable stream over byte chunks that raises OverCap past `limit` bytes."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._seen = 0
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._seen += len(chunk)
            if self._seen > self._limit:
                raise OverCap(self._limit)
            self._pending = memoryview(chunk)
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def capped(chunks: Iterable[bytes], limit: int) -> BinaryIO:
    return io.BufferedReader(CappedStream(chunks, limit), CHUNK)


def capped_file(source: BinaryIO, limit: int) -> BinaryIO:
    return capped(iter(lambda: source.read(CHUNK), b""), limit)


def refusal(member: tarfile.TarInfo, root: str) -> str | None:
    """Why `member` may not pass, or None for a regular file or directory under `root`/."""
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a fifo"
    if not (member.isreg() or member.isdir()):
        return "not a regular file or directory"
    name = member.name
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "a path with '..'"
    if parts[0] != root or any(part in ("", ".") for part in parts):
        return f"outside {root}/"
    if len(parts) == 1 and not member.isdir():
        return f"not a directory ({root} itself)"
    return None


def read_safe(
    source: BinaryIO, root: str, refused: list[str]
) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """The safe members of the tar on `source`, in order, with their data (None for a
    directory). The name and reason of each refused member are appended to `refused`.

    The data must be read before the next member is asked for: the tar is a stream.
    """
    with tarfile.open(fileobj=source, mode="r|") as tar:
        for member in tar:
            reason = refusal(member, root)
            if reason:
                refused.append(f"{printable(member.name)}: {reason}")
                continue
            yield member, tar.extractfile(member) if member.isreg() else None


class SafeWriter:
    """Writes members as plain entries owned by `owner`, with no special mode bits."""

    def __init__(self, dest: BinaryIO, owner: int) -> None:
        self._tar = tarfile.open(  # noqa: SIM115 closed in close()
            fileobj=dest, mode="w", format=tarfile.PAX_FORMAT
        )
        self._owner = owner
        self.files = 0
        self.bytes = 0

    def add(self, member: tarfile.TarInfo, data: SupportsRead[bytes] | None) -> None:
        info = tarfile.TarInfo(member.name)
        info.type = tarfile.DIRTYPE if member.isdir() else tarfile.REGTYPE
        info.mode = member.mode & 0o755 | (0o700 if member.isdir() else 0o600)
        info.mtime = member.mtime
        info.uid = info.gid = self._owner
        if member.isreg():
            info.size = member.size
            self.files += 1
            self.bytes += member.size
        self._tar.addfile(info, data)

    def close(self) -> None:
        self._tar.close()


def printable(text: str) -> str:
    """`text` with control and format characters escaped: an agent wrote it, and terminal
    escape sequences or bidi overrides could hide or disguise what it says."""
    return "".join(
        ch if ch == "\t" or not unicodedata.category(ch).startswith("C") else _escape(ch)
        for ch in text
    )


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True)
class Filtered:
    files: int
    refused: tuple[str, ...]


def filter_archive(source: BinaryIO, dest: BinaryIO, *, root: str, owner: int) -> Filtered:
    """Copy the safe members of the tar on `source` to a new tar on `dest`.

    Raises:
        OverCap: from a capped `source`.
        tarfile.TarError: `source` is not a tar.
    """
    refused: list[str] = []
    writer = SafeWriter(dest, owner)
    for member, data in read_safe(source, root, refused):
        writer.add(member, data)
    writer.close()
    return Filtered(writer.files, tuple(refused))
