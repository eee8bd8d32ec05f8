"""Turn a `BottleSpec` into a `BottlePlan` given what is known of the engine.

Runtime: where the engine has gVisor (`runsc`) and a container runs under it, the agent
and its sidecars (egress proxy, credential proxy, git gate, supervisor) run under runsc;
each of them reads what the agent sends. The vault holder stays on runc: it has no
network, runs only `sleep`, and nothing of the agent's reaches it (see
docs/threat-model.md). A registered runsc that cannot run a container falls back to runc
with a warning saying the engine's reason.

Engine version: Docker before 25.0.5 leaks DNS from internal networks (CVE-2024-29018);
the plan warns. Whether such an engine may be used at all depends on whose it is, which
the backend does not know: `ops.plan.check_engine` decides.
"""

from __future__ import annotations

from dataclasses import replace

from remotebottle.backend.docker.engine import (
    GVISOR,
    SAFE_ENGINE,
    EngineFacts,
    GvisorCheck,
)
from remotebottle.backend.docker.images import image_refs
from remotebottle.backend.spec import BottlePlan, BottleSpec, EngineReport, GvisorState

# Claude Code's own credential variables: given to the agent, it sends them upstream.
AGENT_HELD_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
# What runsc says when its own network stack takes the container's namespace for the
# host's (releases before 20240807 on Linux 6.11+, google/gvisor#10704).
NETNS_MISREAD = "cannot run with network enabled in root network namespace"


def plan(
    spec: BottleSpec,
    facts: EngineFacts | None,
    gvisor: GvisorCheck | None = None,
) -> BottlePlan:
    """Resolve images, runtime and warnings.

    Args:
        spec: the bottle.
        facts: the engine's facts; None when the engine is not asked (runtime "auto").
        gvisor: the result of running a container under runsc there; None when not run
            yet (runsc is then planned, and checked at launch).
    """
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
    images = image_refs(spec)
    if facts is None:
        return BottlePlan(spec=spec, images=images, runtime="auto", warnings=tuple(warnings))
    state: GvisorState
    if not facts.has_gvisor:
        state, runtime = "absent", "runc"
        warnings.append("gVisor (runsc) is not installed on the engine: using runc")
    elif gvisor is None:
        state, runtime = "unchecked", GVISOR
    elif gvisor.works:
        state, runtime = "works", GVISOR
    else:
        state, runtime = "fails", "runc"
        warnings.append(gvisor_fallback_warning(facts, gvisor))
    if facts.leaks_internal_dns:
        warnings.append(old_engine_warning(facts))
    report = EngineReport(
        version=facts.version,
        leaks_internal_dns=facts.leaks_internal_dns,
        runtimes={
            name: facts.runtime_args.get(name, ())
            for name in sorted(facts.runtimes)
            if not name.startswith("io.containerd.")
        },
        gvisor=state,
        gvisor_reason=gvisor.reason if gvisor and not gvisor.works else "",
    )
    return BottlePlan(
        spec=spec, images=images, runtime=runtime, warnings=tuple(warnings), engine=report
    )


def checked(bottle_plan: BottlePlan, facts: EngineFacts, gvisor: GvisorCheck) -> BottlePlan:
    """`bottle_plan` once runsc was checked at launch: unchanged if it worked, else on runc
    with the warning saying why."""
    if bottle_plan.engine is None or bottle_plan.engine.gvisor != "unchecked":
        return bottle_plan
    if gvisor.works:
        return replace(bottle_plan, engine=replace(bottle_plan.engine, gvisor="works"))
    return replace(
        bottle_plan,
        runtime="runc",
        warnings=(*bottle_plan.warnings, gvisor_fallback_warning(facts, gvisor)),
        engine=replace(bottle_plan.engine, gvisor="fails", gvisor_reason=gvisor.reason),
    )


def gvisor_fallback_warning(facts: EngineFacts, gvisor: GvisorCheck) -> str:
    configured = " ".join((GVISOR, *facts.gvisor_args))
    text = (
        f"gVisor ({configured}) is registered on the engine but a container did not run"
        f" under it: {gvisor.reason}: the bottle runs on runc"
    )
    if NETNS_MISREAD in gvisor.reason:
        text += (
            " (runsc releases before 20240807 misread the network namespace on Linux 6.11+,"
            " google/gvisor#10704: register runsc with --network=host, or install a newer"
            " runsc; docs/remote-hosts.md)"
        )
    return text


def old_engine_warning(facts: EngineFacts) -> str:
    return (
        f"Docker {facts.version} is older than {SAFE_ENGINE} and leaks DNS from internal"
        " networks (CVE-2024-29018): upgrade the engine"
    )


def describe_runtime(bottle_plan: BottlePlan) -> str:
    """The runtime the bottle gets, in one line ("runsc --network=host (gVisor) for ...")."""
    engine = bottle_plan.engine
    if bottle_plan.runtime == "auto" or engine is None:
        return (
            "decided by the engine: runsc (gVisor) for the agent and its sidecars where a"
            " container runs under it, else runc"
        )
    if bottle_plan.runtime == GVISOR:
        configured = " ".join((GVISOR, *bottle_plan.runtime_args))
        text = f"{configured} (gVisor) for the agent and its sidecars"
        if engine.gvisor == "unchecked":
            text += ", once a container runs under it (else runc)"
        return text
    if engine.gvisor == "fails":
        return "runc (gVisor is registered but a container did not run under it)"
    return "runc (the engine has no gVisor)"


def describe_engine(bottle_plan: BottlePlan) -> str:
    """The engine in one line: its version and whether CVE-2024-29018 is fixed in it."""
    engine = bottle_plan.engine
    if engine is None:
        return "not asked yet"
    if engine.leaks_internal_dns:
        return (
            f"Docker {engine.version}: older than {SAFE_ENGINE}, leaks DNS from internal"
            " networks (CVE-2024-29018)"
        )
    return f"Docker {engine.version} (CVE-2024-29018 fixed)"


def describe(bottle_plan: BottlePlan) -> str:
    """What the engine is and what the bottle runs under, for a progress line."""
    return f"engine: {describe_engine(bottle_plan)}; runtime: {describe_runtime(bottle_plan)}"
