"""Proposals and decisions, as the agent files them and the operator answers them.

The agent files a proposal through the bottle's supervisor sidecar; the operator's
machine reads pending proposals through the bottle's engine (the local one, or a
VM's through the SSH tunnel) and answers each with a `Decision`. Proposals carry
names and hosts only, never secret values: a credential route's secret is supplied
by the operator when approving.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["egress", "cred-route", "capability"]
# Changes the operator makes without a proposal are carried as proposals with this id prefix.
OPERATOR_PREFIX = "operator-"
Status = Literal["pending", "approved", "rejected"]


class Proposal(BaseModel):
    """One request from inside a bottle.

    `payload` by kind:
        egress: {"hosts": ["pypi.org", ...]}
        cred-route: {"name": "github", "upstream": "https://api.github.com",
                     "headers": ["Authorization"], "role": None}
        capability: {"packages": ["postgresql-client"], "dockerfile": "RUN ..."}
    """

    model_config = ConfigDict(frozen=True)

    id: str
    identity: str
    host: str = "local"
    kind: Kind
    payload: dict[str, Any]
    reason: str = ""
    created_at: str
    status: Status = "pending"
    decision_reason: str = ""


def is_operator_initiated(proposal: Proposal) -> bool:
    """An operator's own edit (no agent is waiting for an answer)."""
    return proposal.id.startswith(OPERATOR_PREFIX)


class Decision(BaseModel):
    """The operator's answer. `payload` replaces the proposal's when edited before approval;
    `secrets` are header values for an approved cred-route (never stored, never logged)."""

    model_config = ConfigDict(frozen=True)

    approve: bool
    reason: str = ""
    payload: dict[str, Any] | None = None
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    operator: str = "operator"


class ProposalSource(Protocol):
    """What the dashboard talks to: every pending proposal, and a way to answer one.

    `decide` applies an approved change to the running bottle (live reload), records
    the audit entry, and answers the waiting agent; on failure it raises and the
    proposal stays pending.
    """

    def pending(self) -> list[Proposal]: ...

    def decide(self, proposal: Proposal, decision: Decision) -> None: ...
