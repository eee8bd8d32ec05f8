"""Bytes into and out of a container: files as tar archives, and hijacked Docker streams
(write to an exec's or container's stdin, read its output).

docker-py hands back read-only `SocketIO` wrappers on unix/tcp connections; writes
go to the underlying socket.
"""

from __future__ import annotations

import io
import socket
import struct
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import docker
import docker.errors

from remotebottle.errors import EngineError


def raw_socket(hijacked: Any) -> socket.socket:
    """The writable socket behind what `attach_socket`/`exec_start(socket=True)` return."""
    return getattr(hijacked, "_sock", hijacked)  # type: ignore[no-any-return]


def buffered_start(hijacked: Any) -> bytes:
    """The first bytes of a hijacked stream that the HTTP client read along with the
    response headers. They sit in its buffer, not in the socket under it that
    `raw_socket` gives (docker-py reads from that socket): read them first, or the start
    of the output (an attach's log replay, a quick exec's whole output) is lost."""
    response = getattr(hijacked, "_response", None)
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    if reader is None or not hasattr(reader, "read1"):
        return b""
    sock = raw_socket(hijacked)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        data = reader.read1(1 << 20)
    except (BlockingIOError, InterruptedError):
        data = b""
    finally:
        sock.settimeout(timeout)
    return data or b""


class _Stream:
    """`recv` over a hijacked stream: its buffered start first, then its socket."""

    def __init__(self, hijacked: Any) -> None:
        self._sock = raw_socket(hijacked)
        self._pending = buffered_start(hijacked)

    def recv(self, size: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._sock.recv(size)


def _read_exactly(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def iter_frames(hijacked: Any) -> Iterator[tuple[int, bytes]]:
    """(stream id, payload) frames of a non-TTY attach/exec stream (1 stdout, 2 stderr)."""
    sock = _Stream(hijacked)
    while True:
        header = _read_exactly(sock, 8)
        if len(header) < 8:
            return
        stream_id, size = struct.unpack(">BxxxL", header)
        payload = _read_exactly(sock, size)
        if payload:
            yield stream_id, payload
        if len(payload) < size:
            return


def exec_with_stdin(
    client: docker.DockerClient,
    container_id: str,
    cmd: list[str],
    data: bytes,
    *,
    user: str = "root",
) -> tuple[int, bytes, bytes]:
    """Run `cmd` in a running container with `data` on its stdin (never on argv or env).

    Returns:
        (exit code, stdout, stderr).
    """
    api = client.api
    try:
        exec_id = api.exec_create(container_id, cmd, stdin=True, user=user)["Id"]
        hijacked = api.exec_start(exec_id, socket=True)
        sock = raw_socket(hijacked)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks: dict[int, list[bytes]] = {1: [], 2: []}
            for stream_id, payload in iter_frames(hijacked):
                chunks.setdefault(stream_id, []).append(payload)
        finally:
            hijacked.close()
        code = api.exec_inspect(exec_id)["ExitCode"]
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"exec in {container_id[:12]} failed: {exc}") from None
    return int(code if code is not None else -1), b"".join(chunks[1]), b"".join(chunks[2])


def put_archive(container: Any, path: str, archive: bytes | BinaryIO) -> None:
    """Unpack the tar `archive` at `path` in `container` (a docker-py Container)."""
    try:
        container.put_archive(path, archive)
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not copy files to {path} in the agent: {exc}") from None


def read_file(container: Any, path: str) -> bytes:
    """The file at `path` in `container` (b"" when the archive holds no regular file)."""
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member else None
            return extracted.read() if extracted else b""
    except (docker.errors.DockerException, tarfile.TarError) as exc:
        raise EngineError(f"could not read {path} from the agent image: {exc}") from None
