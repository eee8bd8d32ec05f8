"""Turn a `BottleSpec` into a `BottlePlan` given what is known of the engine."""

from __future__ import annotations

from remotebottle.backend.docker.engine import EngineFacts
from remotebottle.backend.docker.images import image_refs
from remotebottle.backend.spec import BottlePlan, BottleSpec

# Claude Code's own credential variables: given to the agent, it sends them upstream.
AGENT_HELD_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def plan(spec: BottleSpec, facts: EngineFacts | None) -> BottlePlan:
    """Resolve images, runtime and warnings. `facts` is None when the engine is not asked."""
    warnings: list[str] = []
    if spec.anthropic_route is None and spec.command.mode != "exec":
        warnings.append(
            "no cred_proxy route has role 'anthropic-base-url': the agent gets no Anthropic"
            " credential (log in inside the bottle, or add a route)"
        )
    held = sorted(
        name
        for name, value in spec.env.items()
        if name in AGENT_HELD_CREDENTIALS and value.source != "literal"
    )
    if held and spec.egress_enabled:
        warnings.append(
            f"the bottle's env gives the agent {', '.join(held)}: the egress proxy's DLP refuses"
            " requests carrying it (its own secrets are matched exactly); let the credential"
            " proxy hold it instead (drop it from env: rbottle adds the route by itself)"
        )
    if facts is None:
        runtime = "auto"
    else:
        runtime = "runsc" if facts.has_gvisor else "runc"
        if not facts.has_gvisor:
            warnings.append("gVisor (runsc) is not installed on the engine: using runc")
        if facts.leaks_internal_dns:
            warnings.append(
                f"Docker {facts.version} is older than 25.0.5 and leaks DNS from internal"
                " networks (CVE-2024-29018): upgrade the engine"
            )
    return BottlePlan(spec=spec, images=image_refs(spec), runtime=runtime, warnings=tuple(warnings))
