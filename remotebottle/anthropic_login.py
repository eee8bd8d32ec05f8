"""Claude Code's login with no manifest wiring: a credential route made from the local env.

A bottle without an `anthropic-base-url` route gets one to `https://api.anthropic.com`
carrying the first of: a subscription token (`claude setup-token`) as the bearer
credential, or an API key as `x-api-key`. The value goes to the credential proxy only;
the agent holds a placeholder, as with a route written by hand.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import SecretStr

from remotebottle.backend.spec import ANTHROPIC_ROLE, Command, RouteSpec, Secretish
from remotebottle.errors import ManifestError

OAUTH_VARS = ("CLAUDE_BOTTLE_OAUTH_TOKEN", "RBOTTLE_OAUTH_TOKEN")
API_KEY_VAR = "ANTHROPIC_API_KEY"
UPSTREAM = "https://api.anthropic.com/"
ROUTE_NAMES = ("anthropic", "rbottle-anthropic")
# A bottle whose env hands Claude Code its own credential keeps it: no route is added.
AGENT_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


def default_route(environ: Mapping[str, str], taken: Collection[str]) -> RouteSpec | None:
    """The route the local environment gives, or None. `taken`: route names in use.

    Its value is read from `environ` when the spec's values are resolved.
    """
    found = _credential(environ)
    if found is None:
        return None
    variable, header, prefix = found

    def read() -> SecretStr:
        return SecretStr(prefix + environ[variable].strip())

    return RouteSpec(
        name=next(n for n in ROUTE_NAMES if n not in taken),
        upstream=UPSTREAM,
        role=ANTHROPIC_ROLE,
        inject={header: Secretish(f"from ${variable}", resolver=read)},
        login=variable,
    )


def _credential(environ: Mapping[str, str]) -> tuple[str, str, str] | None:
    for variable in OAUTH_VARS:
        if environ.get(variable, "").strip():
            return variable, "Authorization", "Bearer "
    if environ.get(API_KEY_VAR, "").strip():
        return API_KEY_VAR, "x-api-key", ""
    return None


def require(command: Command, where: str) -> None:
    """Refuse to run Claude Code with no credential at all.

    `-- CMD` runs are let through: the command may not be Claude Code, or may log in itself.
    """
    if command.mode == "exec":
        return
    raise ManifestError(
        f"{where}: no Anthropic credential for Claude Code:"
        f" export {OAUTH_VARS[0]} (from `claude setup-token`) or {API_KEY_VAR}",
        hint="or give the bottle a cred_proxy route with role 'anthropic-base-url';"
        " `-- claude` runs Claude Code without one (log in inside the bottle)",
    )
