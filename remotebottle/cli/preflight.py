"""The human preflight: what a bottle will get, before anything is created."""

from __future__ import annotations

import shlex

from rich.table import Table
from rich.text import Text

from remotebottle.backend.docker.planner import describe_engine, describe_runtime
from remotebottle.backend.spec import Command, GitRemoteSpec
from remotebottle.cli import console
from remotebottle.errors import printable
from remotebottle.ops.plan import ALLOW_OLD_ENGINE_FLAG, StartPlan

RED = "red bold"


def render_preflight(start: StartPlan) -> None:
    plan = start.bottle
    spec = plan.spec
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("agent", f"{spec.agent}  (bottle {spec.bottle}, identity {spec.identity})"),
        ("host", start.host.label()),
        ("vm", _vm(start)),
        ("engine", _engine(start)),
        ("runtime", describe_runtime(plan)),
        ("command", _command(spec.command)),
        ("images", "\n".join(f"{k}: {v}" for k, v in vars(plan.images).items() if v)),
        ("egress", ", ".join(plan.allowlist) if spec.egress_enabled else "none: no route out"),
        ("anthropic", spec.anthropic_credential),
        ("env", "\n".join(f"{k} ({v.source})" for k, v in spec.env.items())),
        ("git", "\n".join(_git(g) for g in spec.git)),
        (
            "cred routes",
            "\n".join(
                f"{r.name} -> {r.upstream}" + (f"  [{r.role}]" if r.role else "")
                for r in spec.routes
            ),
        ),
        ("skills", "\n".join(str(s) for s in spec.skills)),
        ("prompt", "inline" if spec.prompt else str(spec.prompt_file or "")),
        ("workdir", f"copy of {spec.cwd}" if spec.cwd else ""),
    ]
    for label, value in rows:
        style = RED if label == "engine" and _engine_alarming(start) else None
        table.add_row(label, Text(value or "-", style=style or ""))
    if start.allow_old_engine:
        table.add_row(
            Text("old engine", style=RED),
            Text(
                f"allowed ({ALLOW_OLD_ENGINE_FLAG}): on Docker older than 25.0.5 the bottle's"
                " internal network leaks DNS to the host's resolver (CVE-2024-29018)",
                style=RED,
            ),
        )
    console.err.print(table)
    for warning in plan.warnings:
        console.warn(warning)


def _vm(start: StartPlan) -> str:
    """A cloud host's VM: what it is, what it costs, when it goes."""
    if start.vm is None:
        return ""
    vm = dict(start.vm)
    fate = (
        "kept for the next session"
        if getattr(start.host.entry, "reuse", False)
        else ("destroyed when the session ends")
    )
    shown = "\n".join(f"{k}: {v}" for k, v in vm.items())
    return f"{shown}\nnew for this session, {fate}"


def _git(remote: GitRemoteSpec) -> str:
    reached = f" (connects to {remote.target})" if remote.target != remote.host else ""
    return f"{remote.url_prefix} via the git gate{reached}"


def _engine(start: StartPlan) -> str:
    """The engine's version, or for a host (asked only once connected) what it must be."""
    if start.bottle.engine is not None:
        return describe_engine(start.bottle)
    if start.host.is_local:
        return "not answering (see `rbottle doctor`)"
    whose = "the VM's" if start.host.is_cloud else "the host's"
    if start.allow_old_engine:
        return f"{whose}, asked once connected: older than 25.0.5 is used all the same"
    return f"{whose}, asked once connected: older than 25.0.5 is refused (CVE-2024-29018)"


def _engine_alarming(start: StartPlan) -> bool:
    engine = start.bottle.engine
    return (engine is not None and engine.leaks_internal_dns) or (
        engine is None and start.allow_old_engine and not start.host.is_local
    )


def _command(command: Command) -> str:
    """The command line as typed, with what a terminal would act on escaped."""
    if command.mode == "print":
        return printable(f"claude -p {shlex.quote(command.prompt or '')}", limit=400)
    if command.mode == "exec":
        return printable(shlex.join(command.argv), limit=400)
    return "claude (interactive)"
