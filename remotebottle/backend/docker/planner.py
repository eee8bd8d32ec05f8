"""Turn a `BottleSpec` into a `BottlePlan` given what is known of the engine."""

from __future__ import annotations

from remotebottle.backend.docker.engine import EngineFacts
from remotebottle.backend.docker.images import image_refs
from remotebottle.backend.spec import BottlePlan, BottleSpec


def plan(spec: BottleSpec, facts: EngineFacts | None) -> BottlePlan:
    """Resolve images, runtime and warnings. `facts` is None when the engine is not asked."""
    warnings: list[str] = []
    if spec.anthropic_route is None and spec.command.mode != "exec":
        warnings.append(
            "no cred_proxy route has role 'anthropic-base-url': the agent gets no Anthropic"
            " credential (log in inside the bottle, or add a route)"
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
