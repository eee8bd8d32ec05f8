"""A git remote's `KnownHostKey`: a bare public key, or a line copied from known_hosts.

Accepted: `keytype base64 [comment]`, or `host[,host...] keytype base64 [comment]` where
each host is a name, a `[name]:port`, a pattern (`*`, `?`, `!negated`) or a hashed entry
(`|1|salt|hash`, as `ssh-keygen -H` writes). Marker lines (`@cert-authority`, `@revoked`)
are refused: the gate pins one host key, it trusts no certificate authority.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
FORMS = "'ssh-ed25519 AAAA...' or a known_hosts line 'host[,host...] ssh-ed25519 AAAA...'"


@dataclass(frozen=True)
class HostKey:
    keytype: str
    blob: str
    hosts: tuple[str, ...] = ()  # the known_hosts line's host patterns; () for a bare key

    @property
    def key(self) -> str:
        """`keytype base64`, without hosts or comment."""
        return f"{self.keytype} {self.blob}"


def known_hosts_name(hostname: str, port: int) -> str:
    """How known_hosts names `hostname` reached on `port`."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def parse(text: str) -> HostKey:
    """Raises ValueError with a one-line message naming the accepted forms."""
    fields = text.split()
    if fields and fields[0].startswith("@"):
        raise ValueError(
            f"a {fields[0][:20]!r} line is not accepted: pin the host's own key, {FORMS}"
        )
    if len(fields) >= 2 and fields[0] in KEY_TYPES:
        return HostKey(fields[0], _blob(fields[0], fields[1]))
    if len(fields) >= 3 and fields[1] in KEY_TYPES:
        hosts = tuple(h for h in fields[0].split(",") if h)
        if not hosts:
            raise ValueError(f"the known_hosts line names no host; expected {FORMS}")
        return HostKey(fields[1], _blob(fields[1], fields[2]), hosts)
    raise ValueError(
        f"expected {FORMS}; key types: {', '.join(sorted(KEY_TYPES))}"
        if fields
        else f"is empty; expected {FORMS}"
    )


def _blob(keytype: str, blob: str) -> str:
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        inner = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise ValueError(f"the {keytype} key is not valid base64 key data") from None
    if inner != keytype:
        raise ValueError(f"the key says {keytype} but its data holds a {inner[:40]!r} key")
    return blob


def names(key: HostKey, hostname: str, port: int) -> bool:
    """Whether `key` applies to `hostname` on `port`: always for a bare key; for a
    known_hosts line, when a pattern matches and no negated one does (as OpenSSH reads it)."""
    if not key.hosts:
        return True
    name = known_hosts_name(hostname.lower(), port)
    matched = False
    for pattern in key.hosts:
        negated = pattern.startswith("!")
        if _matches(pattern.removeprefix("!"), name):
            if negated:
                return False
            matched = True
    return matched


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        parts = pattern.split("|")
        try:
            salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        except (IndexError, binascii.Error):
            return False
        mine = hmac.new(salt, name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mine, digest)
    # Only `*` and `?` are special: `[name]:port` is literal, unlike in fnmatch.
    glob = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(glob, name) is not None
