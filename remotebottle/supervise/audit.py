"""The audit log: one append-only JSONL file per bottle, kept with its state.

Each line says who decided what and when, what the proposal asked, the change as
before -> after, and the decision. Secret values never enter it: a credential route
is recorded by name, upstream and header names.

The entries are hash-chained so that an edit shows: each carries `prev`, the hash of
the entry before it (`GENESIS` for the first), and `hash`, the SHA-256 of its own
canonical JSON without the `hash` field. Editing, removing, inserting or reordering
entries breaks the chain at the first entry affected; removing entries from the end,
or rewriting the whole chain, does not (nothing outside the file holds its head).
Entries written before chaining have neither field: the first chained entry after
them chains from the SHA-256 of the last one's line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remotebottle import state
from remotebottle.errors import RemoteBottleError
from remotebottle.supervise.model import Decision, Proposal

GENESIS = "0" * 64
UNCHAINED = "unchained (written before hash chaining)"


def log_path(identity: str) -> Path:
    return state.state_dir(identity) / "audit.jsonl"


def record(
    proposal: Proposal,
    decision: Decision,
    *,
    before: Any = None,
    after: Any = None,
    operator_initiated: bool = False,
) -> dict[str, Any]:
    """Append one entry for `proposal` and its `decision`; return it."""
    entry = {
        "time": state.now(),
        "identity": proposal.identity,
        "host": proposal.host,
        "proposal": proposal.id,
        "kind": proposal.kind,
        "requested_by": "operator" if operator_initiated else "agent",
        "decided_by": decision.operator,
        "decision": "approved" if decision.approve else "rejected",
        "reason": decision.reason,
        "agent_reason": proposal.reason,
        "asked": proposal.payload,
        "granted": (decision.payload or proposal.payload) if decision.approve else None,
        "before": before,
        "after": after,
    }
    _append(proposal.identity, [entry])
    return entry


def record_refusals(identity: str, refusals: list[dict[str, str]]) -> None:
    """Append what the bottle's proxies refused during its session (see
    `backend.docker.refusals`), one entry each, with kind "refused"."""
    _append(identity, [{"identity": identity, "kind": "refused", **r} for r in refusals])


def entry_hash(entry: dict[str, Any]) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _link(line: str) -> str:
    """What the entry after `line` chains from: its hash, or its line's for an old entry."""
    entry = _parse(line)
    if entry is not None and isinstance(entry.get("hash"), str):
        return str(entry["hash"])
    return hashlib.sha256(line.encode(errors="surrogateescape")).hexdigest()


def _append(identity: str, entries: list[dict[str, Any]]) -> None:
    """Chain `entries` on to the log and write them, under a lock that other writers
    (another rbottle process) wait for, so that the chain never forks."""
    if not entries:
        return
    path = log_path(identity)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(fd, "rb", closefd=False) as log:
            existing = log.read().decode(errors="surrogateescape")
        lines = [line for line in existing.split("\n") if line.strip()]
        prev = _link(lines[-1]) if lines else GENESIS
        text = "" if existing.endswith("\n") or not existing else "\n"
        for entry in entries:
            entry["prev"] = prev
            entry["hash"] = prev = entry_hash(entry)
            text += json.dumps(entry, sort_keys=True) + "\n"
        data = text.encode()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)  # and with it the lock


def read(identity: str) -> list[dict[str, Any]]:
    path = log_path(identity)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Chain:
    """What `verify` found: the entries, how many lead unchained, the first bad one."""

    entries: int
    unchained: int = 0
    broken_at: int | None = None  # the first bad entry, counted from 1
    line: int | None = None  # its line in the file
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None

    def summary(self) -> str:
        """One line for the operator."""
        if not self.ok:
            return f"BROKEN at entry {self.broken_at} (line {self.line}): {self.why}"
        if self.entries == 0:
            return "no entries"
        if self.unchained == self.entries:
            return f"{UNCHAINED}: {_count(self.entries)}"
        after = f" after {self.unchained} {UNCHAINED}" if self.unchained else ""
        return f"intact: {_count(self.entries - self.unchained)} hash-chained{after}"


def _count(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def check(text: str) -> Chain:
    """Verify the chain of an audit log's `text`."""
    prev, number, unchained = GENESIS, 0, 0
    for line_number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        number += 1
        entry = _parse(line)
        why = _fault(entry, prev, number, unchained)
        if why:
            return Chain(number, unchained, number, line_number, why)
        if entry is not None and not _chained(entry):
            unchained += 1
        prev = _link(line)
    return Chain(number, unchained)


def _parse(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _chained(entry: dict[str, Any]) -> bool:
    return "hash" in entry or "prev" in entry


def _fault(entry: dict[str, Any] | None, prev: str, number: int, unchained: int) -> str | None:
    """Why entry `number` breaks the chain, if it does."""
    if entry is None:
        return "not a JSON object"
    if not _chained(entry):
        if unchained == number - 1:
            return None
        return "no hash, after hash-chained entries (added or edited by hand)"
    if entry.get("prev") != prev:
        where = "the start of the log" if number == 1 else f"entry {number - 1}"
        return f"does not chain from {where} (an entry was removed, inserted or moved)"
    if entry.get("hash") != entry_hash(entry):
        return "its content does not match its hash (edited after it was written)"
    return None


def verify(identity: str) -> Chain:
    """Verify bottle `identity`'s audit log (an absent log has no entries)."""
    path = log_path(identity)
    if not path.is_file():
        return Chain(0)
    return check(path.read_bytes().decode(errors="surrogateescape"))


def broken_logs(identities: Iterable[str]) -> dict[str, str]:
    """The bottles among `identities` whose audit log on this machine is broken or
    unreadable: identity -> one line naming the log and its first bad entry."""
    found: dict[str, str] = {}
    for identity in sorted(set(identities)):
        try:
            path = log_path(identity)
            chain = verify(identity)
        except RemoteBottleError:
            continue  # not an identity: no state of ours
        except OSError as exc:
            found[identity] = f"audit log {path}: could not be read ({exc.strerror})"
            continue
        if not chain.ok:
            found[identity] = f"audit log {path}: {chain.summary()}"
    return found
