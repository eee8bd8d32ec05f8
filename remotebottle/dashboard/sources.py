"""What the dashboard reads from a source: the `ProposalSource` contract, plus
optional extras it uses when a source offers them.

A source may also have `bottles()` (running bottles, for operator edits with no
proposal), `allowlist(identity, host)` (the current egress allowlist, so the
egress diff can tell new hosts from allowed ones) and an `unreachable` mapping
(host -> why) that the status line reports. Without them the dashboard still
works: bottles come from the proposals, and every requested host shows as new.

Each snapshot also checks the hash chain of every listed bottle's audit log, which is
kept on this machine whatever host the bottle runs on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from remotebottle.dashboard import render
from remotebottle.supervise import audit
from remotebottle.supervise.model import Proposal, ProposalSource

BottleRef = tuple[str, str]  # (identity, host)


@runtime_checkable
class ListsBottles(Protocol):
    """Optional on a source: the running bottles, for operator edits without a proposal."""

    def bottles(self) -> list[BottleRef]: ...


@runtime_checkable
class KnowsAllowlists(Protocol):
    """Optional on a source: a bottle's current egress allowlist, for the egress diff."""

    def allowlist(self, identity: str, host: str) -> list[str] | None: ...


@runtime_checkable
class ReportsUnreachable(Protocol):
    """Optional on a source: hosts it could not reach, by name, with why."""

    unreachable: dict[str, str]


@dataclass
class Snapshot:
    """One refresh's worth of what the source said."""

    proposals: list[Proposal]
    bottles: list[BottleRef]
    allowlists: dict[BottleRef, list[str] | None] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    broken_audit: dict[str, str] = field(default_factory=dict)  # see `audit.broken_logs`


def take_snapshot(source: ProposalSource) -> Snapshot:
    proposals = render.oldest_first(source.pending())
    seen = {(p.identity, p.host) for p in proposals}
    bottles = source.bottles() if isinstance(source, ListsBottles) else []
    allowlists: dict[BottleRef, list[str] | None] = {}
    if isinstance(source, KnowsAllowlists):
        for ref in {(p.identity, p.host) for p in proposals if p.kind == "egress"}:
            allowlists[ref] = source.allowlist(*ref)
    unreachable = dict(source.unreachable) if isinstance(source, ReportsUnreachable) else {}
    listed = sorted(set(bottles) | seen)
    broken = audit.broken_logs(identity for identity, _ in listed)
    return Snapshot(proposals, listed, allowlists, unreachable, broken)
