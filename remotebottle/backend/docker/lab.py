"""For the demo and the tests only: relaxes the egress proxy's SSRF guard.

The egress proxy refuses any host that resolves to a private, link-local or metadata
address, allowlisted or not. The demo and the tests run their own upstreams in containers
on a Docker network, at private addresses; `trusting_private_upstreams` gives them a plan
whose egress proxy lets those hosts through once they are allowlisted. No session
(`ops/`) imports this module (tests/unit/test_lab.py checks it): a real bottle's plan
comes from `DockerBottleBackend.prepare` and never carries such hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from remotebottle.backend.spec import BottlePlan


@dataclass(frozen=True)
class PlanTrustingPrivateUpstreams(BottlePlan):
    """A plan whose egress proxy lets `private_upstreams` resolve to private addresses (strict
    mode still refuses each of them until it is on the allowlist)."""

    private_upstreams: tuple[str, ...] = ()


def trusting_private_upstreams(plan: BottlePlan, hosts: Iterable[str]) -> BottlePlan:
    """`plan`, with the egress proxy's SSRF guard relaxed for `hosts` (the demo's and the
    tests' own upstreams on a Docker network)."""
    kept = {f.name: getattr(plan, f.name) for f in fields(BottlePlan)}
    return PlanTrustingPrivateUpstreams(**kept, private_upstreams=tuple(hosts))


def private_upstreams(plan: BottlePlan) -> tuple[str, ...]:
    """The hosts `plan` trusts at private addresses: none, unless made by this module."""
    return plan.private_upstreams if isinstance(plan, PlanTrustingPrivateUpstreams) else ()
