"""Baked-in egress defaults: the hosts Claude Code itself needs."""

from __future__ import annotations

# api.anthropic.com: the Messages API (and WebFetch's preflight);
# claude.ai and platform.claude.com: login. Nonessential traffic is disabled in the bottle.
CLAUDE_CODE_HOSTS: tuple[str, ...] = ("api.anthropic.com", "claude.ai", "platform.claude.com")


def effective_allowlist(extra: list[str] | tuple[str, ...]) -> list[str]:
    """The defaults plus the bottle's own hosts, sorted and de-duplicated."""
    return sorted({h.lower().rstrip(".") for h in (*CLAUDE_CODE_HOSTS, *extra)})
