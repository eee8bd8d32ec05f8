"""Host keys: known_hosts files read and written as OpenSSH does, and the strict check.

Reads plain, wildcard (`*`, `?`, `!negated`), hashed (`|1|salt|hmac`) and `@revoked`
entries (`@cert-authority` lines are skipped: paramiko cannot check host certificates).
Writes one line per host and key type, plain or hashed, atomically, mode 0600. Nothing
here touches the network; `ssh.fetch_host_key` asks a host for its key.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from remotebottle.errors import ConnectError

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class KnownKey:
    """One key known_hosts records for `host` (spelled as `host_name`); `where` is `file:line`."""

    host: str
    key_type: str
    blob: bytes
    where: str
    revoked: bool

    @property
    def file(self) -> str:
        return self.where.rsplit(":", 1)[0]


class KeyState(enum.Enum):
    """What known_hosts says of the key a host presents."""

    TRUSTED = "trusted"
    UNKNOWN = "unknown"
    CHANGED = "changed"
    REVOKED = "revoked"


def host_name(host: str, port: int) -> str:
    """known_hosts spelling: `host`, or `[host]:port` for a port other than 22."""
    return host if port == 22 else f"[{host}]:{port}"


def describe(key: paramiko.PKey) -> str:
    """`ssh-ed25519 key SHA256:…`, the fingerprint as `ssh-keygen -lf` shows it."""
    return f"{key.get_name()} key {key.fingerprint}"


def load_known(files: Iterable[str], name: str) -> list[KnownKey]:
    """Every key the files record for `name` (a `host_name`), in file order."""
    found: list[KnownKey] = []
    for file in files:
        try:
            lines = Path(file).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            parsed = _parse(line)
            if parsed and _names_match(parsed[1], name):
                marker, _, key_type, blob = parsed
                if marker != "@cert-authority":
                    revoked = marker == "@revoked"
                    found.append(KnownKey(name, key_type, blob, f"{file}:{number}", revoked))
    return found


def key_state(known: list[KnownKey], key: paramiko.PKey) -> tuple[KeyState, KnownKey | None]:
    """Classify `key` against what is known; the entry returned is the one that decided it."""
    blob = key.asbytes()
    revoked = next((k for k in known if k.revoked and k.blob == blob), None)
    if revoked is not None:
        return KeyState.REVOKED, revoked
    good = [k for k in known if not k.revoked]
    match = next((k for k in good if k.blob == blob), None)
    if match is not None:
        return KeyState.TRUSTED, match
    if not good:
        return KeyState.UNKNOWN, None
    same_type = next((k for k in good if k.key_type == key.get_name()), good[0])
    return KeyState.CHANGED, same_type


def prefer(current: Iterable[str], known_types: list[str]) -> list[str]:
    """Ask first for the key types known_hosts has for this host, as OpenSSH does."""
    wanted: list[str] = []
    for key_type in known_types:
        wanted += ["rsa-sha2-512", "rsa-sha2-256"] if key_type == "ssh-rsa" else [key_type]
    available = list(current)
    first = [k for k in dict.fromkeys(wanted) if k in available]
    return first + [k for k in available if k not in first]


def verify_host_key(
    label: str,
    name: str,
    known: list[KnownKey],
    key: paramiko.PKey,
    expected: paramiko.PKey | None,
) -> None:
    """Accept `key` only if it is `expected` (when given) or recorded, not revoked.

    Args:
        label: the host as messages show it.
        name: the host as `rbottle hosts trust NAME` accepts it, for hints.

    Raises:
        ConnectError: the key is unknown, changed, revoked, or not the expected one.
    """
    shown = describe(key)
    if expected is not None:
        if key.asbytes() == expected.asbytes():
            return
        raise ConnectError(
            f"{label}: HOST KEY MISMATCH: it presents {shown}, but the provider reported"
            f" {expected.fingerprint}; someone may be intercepting the connection",
            hint="do not use this machine: destroy it and start again",
        )
    state, entry = key_state(known, key)
    if state is KeyState.TRUSTED:
        return
    if state is KeyState.REVOKED:
        where = entry.where if entry else "?"
        raise ConnectError(
            f"{label}: host key {key.fingerprint} is marked @revoked ({where})",
            hint="the host's key was revoked: do not connect to it",
        )
    if state is KeyState.CHANGED and entry is not None:
        raise changed_error(label, name, key, entry)
    raise ConnectError(
        f"{label}: unknown host key ({shown})",
        hint=f"if that fingerprint is the host's, trust it: `rbottle hosts trust {name}`",
    )


def changed_error(
    label: str, name: str, key: paramiko.PKey, entry: KnownKey, *, refusing: bool = False
) -> ConnectError:
    """HOST KEY CHANGED, and how to replace the old key once the new one is checked.

    Args:
        entry: the recorded key that differs (its file is named in the hint).
        refusing: say that rbottle will not replace the old key (for `hosts trust`).
    """
    default = os.path.abspath(os.path.expanduser(DEFAULT_KNOWN_HOSTS))
    option = "" if os.path.abspath(entry.file) == default else f" -f {shlex.quote(entry.file)}"
    refusal = ", so rbottle will not replace it" if refusing else ""
    return ConnectError(
        f"{label}: HOST KEY CHANGED: it now presents {describe(key)}, which differs from the"
        f" key in {entry.where}; this may be an attack (someone intercepting the"
        f" connection){refusal}",
        hint="if the host was really reinstalled, check the new fingerprint out of band,"
        f" remove the old key (`ssh-keygen -R {shlex.quote(entry.host)}{option}`),"
        f" then `rbottle hosts trust {name}`",
    )


def trust(
    host: str,
    port: int,
    key: paramiko.PKey,
    known_hosts_path: Path | str | None = None,
    *,
    hashed: bool = False,
) -> Path:
    """Record `key` for `host:port` in known_hosts, replacing that host's key of the same type.

    Args:
        host: the host name as connections use it (`SshTarget.hostname`, or a HostKeyAlias
            with port 22).
        hashed: write `|1|salt|hash` instead of the plain name (like HashKnownHosts).

    Returns:
        The known_hosts file written (default `~/.ssh/known_hosts`).
    """
    return record(host_name(host, port), key, known_hosts_path, hashed=hashed)


def record(
    name: str, key: paramiko.PKey, known_hosts_path: Path | str | None = None, *, hashed: bool
) -> Path:
    """`trust`, for a name spelled as known_hosts does (`SshTarget.known_hosts_name`)."""
    path = Path(known_hosts_path or os.path.expanduser(DEFAULT_KNOWN_HOSTS))
    return _add(path, name, key.get_name(), key.get_base64(), hashed=hashed)


# -- parsing and writing -------------------------------------------------------------------


def _parse(line: str) -> tuple[str, str, str, bytes] | None:
    """(marker, host patterns, key type, key blob), or None for comments and junk."""
    fields = line.strip().split()
    if not fields or fields[0].startswith("#"):
        return None
    marker = fields.pop(0) if fields[0].startswith("@") else ""
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except ValueError:
        return None
    return marker, fields[0], fields[1], blob


def _names_match(patterns: str, name: str) -> bool:
    matched = False
    for pattern in patterns.split(","):
        if pattern.startswith("|1|"):
            if _hashed_match(pattern, name):
                matched = True
            continue
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in body)
        if re.fullmatch(regex, name, flags=re.IGNORECASE):
            if negated:
                return False
            matched = True
    return matched


def _hashed_match(pattern: str, name: str) -> bool:
    try:
        _, _, salt, digest = pattern.split("|")
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except ValueError:
        return False


def _same_name(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return _hashed_match(pattern, name)
    return pattern.lower() == name.lower()


def _add(path: Path, name: str, key_type: str, b64: str, *, hashed: bool) -> Path:
    kept: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            parsed = _parse(line)
            if parsed is None or parsed[0] or parsed[2] != key_type:
                kept.append(line)
                continue
            patterns = parsed[1].split(",")
            others = [p for p in patterns if not _same_name(p, name)]
            if len(others) == len(patterns):
                kept.append(line)
            elif others:
                kept.append(line.replace(parsed[1], ",".join(others), 1))
    if hashed:
        salt = os.urandom(20)
        mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        name = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"
    kept.append(f"{name} {key_type} {b64}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(kept) + "\n")
    os.replace(tmp, path)
    return path


__all__ = [
    "DEFAULT_KNOWN_HOSTS",
    "KeyState",
    "KnownKey",
    "changed_error",
    "describe",
    "host_name",
    "key_state",
    "load_known",
    "prefer",
    "record",
    "trust",
    "verify_host_key",
]
