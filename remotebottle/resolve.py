"""Build a `BottleSpec` from the merged manifest, an agent name and the command line.

With `resolve_secrets=False` (the preflight, dry runs) nothing is asked and no value is
read, but every `${VAR}` must still exist so that a dry run predicts a real start; each
value keeps how to resolve it, and `BottleSpec.with_values()` does so once the user has
confirmed that very spec.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from remotebottle import anthropic_login
from remotebottle.backend.spec import (
    ANTHROPIC_ROLE,
    BottleSpec,
    Command,
    GitRemoteSpec,
    RouteSpec,
    Secretish,
)
from remotebottle.errors import ManifestError
from remotebottle.manifest import Manifest
from remotebottle.state import mint_identity
from remotebottle.values import Prompter, ask_no_echo, check_available, resolve, source_of


def build_spec(
    manifest: Manifest,
    agent_name: str,
    *,
    command: Command,
    host: str = "local",
    cwd: Path | None = None,
    identity: str | None = None,
    resolve_secrets: bool = True,
    environ: Mapping[str, str] | None = None,
    prompter: Prompter = ask_no_echo,
) -> BottleSpec:
    """Resolve an agent into a spec.

    Raises:
        ManifestError: the agent is unknown, a skill or prompt file is missing, or a
            value cannot be resolved.
    """
    env = os.environ if environ is None else environ
    agent = manifest.agent(agent_name)
    bottle = manifest.bottles[agent.bottle]
    source = manifest.origin("agents", agent_name)

    def value(raw: str, where: str) -> Secretish:
        check_available(raw, where, env)
        return Secretish(
            source_of(raw).describe(),
            resolver=functools.partial(resolve, raw, where, env, prompter),
        )

    skills = tuple(Path(s) for s in agent.skills)
    for index, skill in enumerate(skills):
        if not (skill / "SKILL.md").is_file():
            raise ManifestError(
                f"{source}: agents.{agent_name}.skills[{index}]: {skill} has no SKILL.md",
                hint="a skill is a directory holding SKILL.md: a path relative to the manifest,"
                " or a bare name found next to it, in its .claude/skills/ or in ~/.claude/skills/",
            )
    prompt_file = Path(agent.prompt_file) if agent.prompt_file else None
    if prompt_file is not None and not prompt_file.is_file():
        raise ManifestError(
            f"{source}: agents.{agent_name}.prompt_file: {prompt_file} does not exist",
            hint="paths are relative to the manifest file that names them",
        )

    bottle_path = f"{manifest.origin('bottles', agent.bottle)}: bottles.{agent.bottle}"
    env_values = {name: value(raw, f"{bottle_path}.env.{name}") for name, raw in bottle.env.items()}
    routes = [
        RouteSpec(
            name=r.name,
            upstream=str(r.upstream),
            role=r.role,
            grants=tuple(r.grants),
            inject={
                header: value(raw, f"{bottle_path}.cred_proxy.routes[{i}].inject.{header}")
                for header, raw in r.inject.items()
            },
        )
        for i, r in enumerate(bottle.cred_proxy.routes)
    ]
    if not any(r.role == ANTHROPIC_ROLE for r in routes) and not any(
        name in bottle.env for name in anthropic_login.AGENT_CREDENTIALS
    ):
        login = anthropic_login.default_route(env, {r.name for r in routes})
        if login is None:
            anthropic_login.require(command, bottle_path)
        else:
            routes.append(login)
    spec = BottleSpec(
        identity=identity or mint_identity(agent_name),
        agent=agent_name,
        bottle=agent.bottle,
        command=command,
        skills=skills,
        prompt=agent.prompt,
        prompt_file=prompt_file,
        env=env_values,
        egress_enabled=bottle.egress.enabled,
        egress_allowlist=tuple(bottle.egress.allowlist),
        git=tuple(
            GitRemoteSpec(
                host=g.host,
                hostname=g.target,
                user=g.user,
                port=g.port,
                known_host_key=g.pinned_key,
                identity_file=Path(g.identity_file).expanduser() if g.identity_file else None,
                extra_hosts=dict(g.extra_hosts),
                allow_force_push=g.allow_force_push,
                allow_deletes=g.allow_deletes,
                allow_ci_changes=g.allow_ci_changes,
            )
            for g in bottle.git
        ),
        routes=tuple(routes),
        host=host,
        cwd=cwd,
    )
    return spec.with_values() if resolve_secrets else spec
