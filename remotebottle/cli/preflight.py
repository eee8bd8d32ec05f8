"""The human preflight: what a bottle will get, before anything is created."""

from __future__ import annotations

import shlex

from rich.markup import escape
from rich.table import Table

from remotebottle.backend.spec import Command, GitRemoteSpec
from remotebottle.cli import console
from remotebottle.launch import StartPlan


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
        ("runtime", _runtime(plan.runtime)),
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
        table.add_row(label, escape(value or "-"))
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


def _runtime(runtime: str) -> str:
    if runtime == "auto":
        return "auto (runsc when the engine has gVisor, else runc)"
    return runtime


def _command(command: Command) -> str:
    if command.mode == "print":
        return f"claude -p {shlex.quote(command.prompt or '')}"
    if command.mode == "exec":
        return shlex.join(command.argv)
    return "claude (interactive)"
