"""Logging in: public keys only, from ssh-agent and identity files, in OpenSSH's order.

Every failure is one `ConnectError` saying what was tried and, when keys were skipped,
why (passphrase-protected and not in the agent, unreadable, missing).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from remotebottle.errors import ConnectError

if TYPE_CHECKING:
    from remotebottle.transport.target import SshTarget

log = logging.getLogger(__name__)

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")

# (label, loader): the loader returns the key, or raises if it cannot be read.
Candidate = tuple[str, Any]


def authenticate(
    transport: paramiko.Transport,
    t: SshTarget,
    deadline: float,
    session_key: paramiko.PKey | None = None,
) -> None:
    """Public keys only, in OpenSSH's order: agent copies of the configured identities, other
    agent keys (unless IdentitiesOnly), then the identity files themselves. With
    `session_key` (a key made for a VM we created), that key alone.

    Raises:
        ConnectError: no key was accepted, or the server wants more than a key.
    """
    transport.auth_timeout = max(deadline - time.monotonic(), 0.1)
    agent: paramiko.Agent | None = None
    agent_keys: list[paramiko.AgentKey] = []
    if session_key is None:
        try:
            agent = paramiko.Agent()
            agent_keys = list(agent.get_keys())
        except (paramiko.SSHException, OSError) as exc:
            log.debug("ssh-agent unusable: %s", exc)
    tried: list[str] = []
    skipped: list[str] = []
    offered = (
        [("the session key", lambda: session_key)] if session_key else candidates(t, agent_keys)
    )
    try:
        for label, loader in offered:
            try:
                key = loader()
            except paramiko.PasswordRequiredException:
                skipped.append(f"{label} is passphrase-protected and not in ssh-agent (`ssh-add`)")
                continue
            except (paramiko.SSHException, OSError, ValueError) as exc:
                skipped.append(f"{label} cannot be read ({_clip(str(exc), 60)})")
                continue
            try:
                further = transport.auth_publickey(t.user, key)
            except paramiko.BadAuthenticationType as exc:
                raise ConnectError(
                    f"{t.label}: the server does not accept public keys for {t.user!r}"
                    f" (it allows: {', '.join(exc.allowed_types) or 'nothing'})",
                    hint="enable PubkeyAuthentication for this user on the host",
                ) from None
            except paramiko.AuthenticationException:
                tried.append(label)
                if time.monotonic() >= deadline or not transport.is_active():
                    break
                continue
            except paramiko.SSHException as exc:
                raise ConnectError(
                    f"{t.label}: authentication failed: {_clip(str(exc))}",
                    hint="the server closed the connection (too many keys tried?)",
                ) from None
            if further:
                raise ConnectError(
                    f"{t.label}: the server wants more authentication ({', '.join(further)})",
                    hint="rbottle logs in with a public key alone; allow that for this user",
                )
            return
    finally:
        if agent is not None:
            agent.close()
    what = f"tried {', '.join(tried)}" if tried else "no key to try"
    hint = (
        "; ".join(skipped)
        if skipped
        else (
            "set identity_file in the hosts entry or IdentityFile in ~/.ssh/config,"
            f" or add the key to ssh-agent; check it is in ~{t.user}/.ssh/authorized_keys"
        )
    )
    raise ConnectError(f"{t.label}: permission denied for user {t.user!r} ({what})", hint=hint)


def candidates(t: SshTarget, agent_keys: list[paramiko.AgentKey]) -> list[Candidate]:
    """(label, loader) for each key to offer, in order; loaders may raise on use.

    Raises:
        ConnectError: the hosts entry names an identity_file that does not exist.
    """
    files = list(t.identity_files)
    if not files:
        files = [os.path.expanduser(f"~/.ssh/{n}") for n in DEFAULT_IDENTITIES]
        files = [f for f in files if os.path.exists(f)]
    elif t.explicit_identity and not os.path.exists(files[0]):
        raise ConnectError(
            f"identity_file {files[0]} does not exist",
            hint="fix identity_file in the hosts entry",
        )
    by_blob = {k.asbytes(): k for k in agent_keys}
    first: list[Candidate] = []
    last: list[Candidate] = []
    for path in files:
        agent_key = by_blob.pop(_public_blob(path), None) if by_blob else None
        if agent_key is not None:
            first.append((f"{path} (agent)", lambda k=agent_key: k))
        elif os.path.exists(path):
            last.append((path, lambda p=path: paramiko.PKey.from_path(p)))
    if not t.identities_only:
        first += [(f"agent key {k.fingerprint}", lambda k=k: k) for k in by_blob.values()]
    return first + last


def _public_blob(path: str) -> bytes:
    """The key blob of `path.pub`, to find the agent's copy of an identity file."""
    try:
        fields = Path(path + ".pub").read_text().split()
        return base64.b64decode(fields[1]) if len(fields) > 1 else b""
    except (OSError, ValueError):
        return b""


def _clip(text: str, width: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 1] + "…"


__all__ = ["DEFAULT_IDENTITIES", "authenticate", "candidates"]
