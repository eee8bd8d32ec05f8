"""Hijacked Docker streams: write to an exec's or container's stdin, read its output.

docker-py hands back read-only `SocketIO` wrappers on unix/tcp connections; writes
go to the underlying socket.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors

from remotebottle.errors import EngineError


def raw_socket(hijacked: Any) -> socket.socket:
    """The writable socket behind what `attach_socket`/`exec_start(socket=True)` return."""
    return getattr(hijacked, "_sock", hijacked)  # type: ignore[no-any-return]


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
    sock = raw_socket(hijacked)
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
