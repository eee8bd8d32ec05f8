"""Proposals as text: table rows, one-line summaries, and the change each would make.

Everything in a proposal was written by an agent, so every value shown passes
through `clean` (control characters escaped) and is appended to Rich `Text` as
plain text, never parsed as markup. Host names are shown as they would be installed
(ASCII, internationalised labels in punycode), with a warning when one mixes scripts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.text import Text

from remotebottle import hostnames
from remotebottle.supervise.model import Proposal

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BREAKS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
WARNING = "bold red"


def clean(value: object) -> str:
    """`value` as text with control characters (terminal escapes included) made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def one_line(value: object) -> str:
    """`value` cleaned, its line breaks and tabs shown as `\\n`, `\\t`: one line, so it
    cannot pass for other parts of the screen."""
    return clean("".join(_BREAKS.get(c, c) for c in str(value)))


def shown_host(value: object) -> str:
    """A host name as it would be installed (punycode), or the raw text if it is none."""
    try:
        return hostnames.canonical(value)
    except hostnames.Refused:
        return clean(value)


def host_warning(value: object) -> str | None:
    """Why a host name is suspect (not a host name, or a look-alike), if it is."""
    try:
        host = hostnames.canonical(value)
    except hostnames.Refused:
        return "not a valid host name"
    if hostnames.mixed_script(host):
        scripts = ", ".join(hostnames.scripts(host))
        return f"MIXED SCRIPTS ({scripts}): this name may imitate another host"
    return None


def host_reading(value: object) -> str | None:
    """How an internationalised host name reads, when it is one (and not suspect)."""
    if host_warning(value) is not None:
        return None
    host = hostnames.canonical(value)
    readable = hostnames.readable(host)
    return f"internationalised: reads as {clean(readable)}" if readable != host else None


def shown_upstream(value: object) -> str:
    """An upstream URL with its host as it would be installed (punycode)."""
    try:
        parts = urlsplit(str(value))
        host = hostnames.canonical(parts.hostname or "")
        netloc = host if parts.port is None else f"{host}:{parts.port}"
    except (ValueError, hostnames.Refused):
        return clean(value)
    return clean(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


def upstream_warnings(value: object) -> list[str]:
    try:
        parts = urlsplit(str(value))
    except ValueError:
        return ["not a URL"]
    found = [] if parts.scheme == "https" else ["not https: the credential would travel in clear"]
    warning = host_warning(parts.hostname or "")
    return [*found, warning] if warning else found


def _notes(text: Text, warnings: list[str], reading: str | None) -> None:
    for warning in warnings:
        text.append(f"      ! {warning}\n", style=WARNING)
    if reading:
        text.append(f"      {reading}\n", style="yellow")


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


def _flagged(host: object) -> str:
    return shown_host(host) + ("!" if host_warning(host) else "")


def summary(proposal: Proposal) -> str:
    """One line for the table: what is asked for, not why (`!` marks a suspect host)."""
    payload = proposal.payload
    if proposal.kind == "egress":
        hosts = payload.get("hosts")
        shown = [_flagged(h) for h in hosts] if isinstance(hosts, list) else []
        return "egress: " + (", ".join(shown) or "(no hosts)")
    if proposal.kind == "cred-route":
        upstream = payload.get("upstream", "?")
        mark = "!" if upstream_warnings(upstream) else ""
        return f"route {one_line(payload.get('name', '?'))} -> {shown_upstream(upstream)}{mark}"
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
    text.append(f"reason   {one_line(proposal.reason) or '(none given)'}\n\n")
    text.append("change\n", style="bold")
    payload = proposal.payload
    if proposal.kind == "egress":
        hosts = payload.get("hosts")
        _egress(text, hosts if isinstance(hosts, list) else [], allowlist)
    elif proposal.kind == "cred-route":
        _route(text, payload)
    else:
        _capability(text, payload)
    text.append("\npayload as filed\n", style="bold")
    text.append(clean(json.dumps(payload, indent=2, sort_keys=True)) + "\n", style="dim")
    return text


def _egress(text: Text, hosts: list[Any], allowlist: list[str] | None) -> None:
    known = {h.lower() for h in allowlist or []}
    for raw in hosts:
        host = shown_host(raw)
        if host.lower() in known:
            text.append(f"    {host}  (already allowed)\n", style="dim")
        else:
            text.append(f"  + {host}\n", style="green")
            warning = host_warning(raw)
            _notes(text, [warning] if warning else [], host_reading(raw))
    if not hosts:
        text.append("  (no hosts)\n", style="yellow")
    if allowlist is None:
        text.append("  (current allowlist not known: every host shown as added)\n", style="dim")


def _route(text: Text, payload: dict[str, Any]) -> None:
    upstream = payload.get("upstream", "?")
    text.append(f"  + route {one_line(payload.get('name', '?'))}\n", style="green")
    text.append(f"      upstream  {shown_upstream(upstream)}\n", style="green")
    host = urlsplit(str(upstream)).hostname if isinstance(upstream, str) else None
    _notes(text, upstream_warnings(upstream), host_reading(host) if host else None)
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
    text.append(
        "  the upstream receives the header values you enter: approve only a host you trust"
        " with them (one that echoes requests back would hand them to the agent)\n",
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
    text.append(
        "  the build's network: apt-get downloads the packages from the image's Debian"
        " sources (the one step with network); installing them (package scripts included)"
        " and the Dockerfile lines run with no network\n",
        style="dim",
    )
