"""Proposals as text: table rows, one-line summaries, and the change each would make.

Everything in a proposal was written by an agent, so every value shown passes
through `clean` (control characters escaped) and is appended to Rich `Text` as
plain text, never parsed as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from remotebottle.supervise.model import Proposal

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: object) -> str:
    """`value` as text with control characters (terminal escapes included) made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _parse_time(stamp: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def oldest_first(proposals: Iterable[Proposal]) -> list[Proposal]:
    """Oldest first; a proposal with an unreadable time sorts last, then by id."""
    far_future = datetime.max.replace(tzinfo=UTC)
    return sorted(proposals, key=lambda p: (_parse_time(p.created_at) or far_future, p.id))


def age(created_at: str, now: datetime | None = None) -> str:
    filed = _parse_time(created_at)
    if filed is None:
        return "?"
    seconds = int(((now or datetime.now(UTC)) - filed).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [clean(item) for item in value]
    return [] if value is None else [clean(value)]


def summary(proposal: Proposal) -> str:
    """One line for the table: what is asked for, not why."""
    payload = proposal.payload
    if proposal.kind == "egress":
        return "egress: " + (", ".join(_strings(payload.get("hosts"))) or "(no hosts)")
    if proposal.kind == "cred-route":
        return f"route {clean(payload.get('name', '?'))} -> {clean(payload.get('upstream', '?'))}"
    packages = ", ".join(_strings(payload.get("packages")))
    return "capability: " + (packages or "Dockerfile fragment")


def row(proposal: Proposal, now: datetime | None = None) -> tuple[str, str, str, str, str, str]:
    """identity, host, kind, summary, age, id: the columns of the table."""
    return (
        clean(proposal.identity),
        clean(proposal.host),
        proposal.kind,
        summary(proposal),
        age(proposal.created_at, now),
        clean(proposal.id),
    )


def detail(proposal: Proposal, allowlist: list[str] | None = None) -> Text:
    """The proposal in full and the change approving it would make.

    `allowlist` is the bottle's current egress allowlist when the source can tell;
    without it every requested host is shown as an addition.
    """
    text = Text()
    text.append(f"{proposal.kind} proposal {clean(proposal.id)}\n", style="bold")
    text.append(f"bottle   {clean(proposal.identity)} on {clean(proposal.host)}\n")
    text.append(f"filed    {clean(proposal.created_at)} ({age(proposal.created_at)} ago)\n")
    text.append(f"reason   {clean(proposal.reason) or '(none given)'}\n\n")
    text.append("change\n", style="bold")
    payload = proposal.payload
    if proposal.kind == "egress":
        _egress(text, _strings(payload.get("hosts")), allowlist)
    elif proposal.kind == "cred-route":
        _route(text, payload)
    else:
        _capability(text, payload)
    text.append("\npayload as filed\n", style="bold")
    text.append(clean(json.dumps(payload, indent=2, sort_keys=True)) + "\n", style="dim")
    return text


def _egress(text: Text, hosts: list[str], allowlist: list[str] | None) -> None:
    known = {h.lower() for h in allowlist or []}
    for host in hosts:
        if host.lower() in known:
            text.append(f"    {host}  (already allowed)\n", style="dim")
        else:
            text.append(f"  + {host}\n", style="green")
    if not hosts:
        text.append("  (no hosts)\n", style="yellow")
    if allowlist is None:
        text.append("  (current allowlist not known: every host shown as added)\n", style="dim")


def _route(text: Text, payload: dict[str, Any]) -> None:
    text.append(f"  + route {clean(payload.get('name', '?'))}\n", style="green")
    text.append(f"      upstream  {clean(payload.get('upstream', '?'))}\n", style="green")
    headers = ", ".join(_strings(payload.get("headers"))) or "(none)"
    text.append(f"      headers   {headers}\n", style="green")
    if payload.get("role"):
        text.append(f"      role      {clean(payload['role'])}\n", style="green")
    if payload.get("headers"):
        text.append("  each header's value is asked for on approval\n", style="dim")
    text.append(
        "  the agent reaches this upstream through the credential proxy, which does not"
        " pass the egress proxy's allowlist or DLP\n",
        style="yellow",
    )


def _capability(text: Text, payload: dict[str, Any]) -> None:
    packages = ", ".join(_strings(payload.get("packages")))
    if packages:
        text.append(f"  packages  {packages}\n")
    fragment = payload.get("dockerfile")
    if fragment:
        text.append("  Dockerfile fragment:\n")
        for line in str(fragment).splitlines():
            text.append(f"  + {clean(line)}\n", style="green")
    text.append("  applies when the bottle is next resumed (`rbottle resume`)\n", style="dim")
