"""Reading manifest files: `$HOME/claude-bottle.json` and `./claude-bottle.json`.

Each is validated on its own (so errors name the right file), then the two are merged
entry by entry with the project file winning, relative paths are anchored to the file
that wrote them, then cross-references (an agent's bottle) are checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from remotebottle.errors import ManifestError
from remotebottle.manifest.errors import SCHEMA_HINT, describe
from remotebottle.manifest.models import MANIFEST_NAME, Agent, Manifest, ManifestFile


def default_paths(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """The manifest files to read, home first so the project file wins."""
    home_file = (home or Path(os.path.expanduser("~"))) / MANIFEST_NAME
    project_file = (cwd or Path.cwd()) / MANIFEST_NAME
    paths = [home_file]
    if project_file.resolve() != home_file.resolve():
        paths.append(project_file)
    return paths


def load(paths: list[Path] | None = None) -> Manifest:
    """Load, validate and merge manifest files; missing files are skipped.

    Raises:
        ManifestError: a file is unreadable, not JSON, or does not validate, or an
            agent names a bottle no file defines.
    """
    merged: dict[str, dict[str, Any]] = {"bottles": {}, "agents": {}, "hosts": {}}
    origins: dict[str, Path] = {}
    files: list[Path] = []
    for path in paths if paths is not None else default_paths():
        try:
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{path}: cannot read: {exc}") from None
        except OSError as exc:
            raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
        parsed = parse(text, str(path))
        files.append(path)
        for section in merged:
            for name, entry in getattr(parsed, section).items():
                merged[section][name] = _anchored(entry, path, f"{section}.{name}")
                origins[f"{section}.{name}"] = path
    manifest = Manifest(
        bottles=merged["bottles"],
        agents=merged["agents"],
        hosts=merged["hosts"],
        origins=origins,
        files=tuple(files),
    )
    _check_references(manifest)
    return manifest


def parse(text: str, source: str = MANIFEST_NAME) -> ManifestFile:
    """Parse and validate the text of one manifest file named `source`.

    Raises:
        ManifestError: with one line per problem, each naming `source` and the JSON path.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the JSON syntax (no comments or trailing commas)",
        ) from None
    except RecursionError:
        raise ManifestError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError:  # past Python's limit on the digits of an integer
        raise ManifestError(f"{source}: invalid JSON: a number with too many digits") from None
    if not isinstance(data, dict):
        raise ManifestError(
            f"{source}: (top level): expected a JSON object with bottles, agents, hosts",
            hint=SCHEMA_HINT,
        )
    _refuse_legacy(data, source)
    try:
        return ManifestFile.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(describe(exc, source), hint=SCHEMA_HINT) from None


def _refuse_legacy(data: dict[str, Any], source: str) -> None:
    if "runtime" in data:
        raise ManifestError(
            f"{source}: runtime: no longer supported: gVisor is auto-detected",
            hint="delete `runtime`; runsc is used whenever the engine has it",
        )
    bottles = data.get("bottles")
    if not isinstance(bottles, dict):
        return
    for name, bottle in bottles.items():
        if not isinstance(bottle, dict):
            continue
        if "ssh" in bottle:
            raise ManifestError(
                f"{source}: bottles.{name}.ssh: no longer supported: use `git`",
                hint=f"move each entry to bottles.{name}.git as"
                " {Host, Hostname, User, Port, IdentityFile, KnownHostKey, ExtraHosts}",
            )
        if "runtime" in bottle:
            raise ManifestError(
                f"{source}: bottles.{name}.runtime: no longer supported: gVisor is auto-detected",
                hint="delete `runtime`; runsc is used whenever the engine has it",
            )


def _anchored(entry: Any, path: Path, where: str) -> Any:
    """`_anchor`, a path the system cannot look at (too long, a NUL) refused by name."""
    try:
        return _anchor(entry, path.parent)
    except (OSError, ValueError) as exc:
        why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        raise ManifestError(
            f"{path}: {where}: a file path cannot be used: {why}",
            hint="skills and prompt_file are paths to existing files and directories",
        ) from None


def _anchor(entry: Any, base: Path) -> Any:
    """Make an agent's relative file paths relative to its manifest's directory."""
    if not isinstance(entry, Agent):
        return entry
    skills = [str(_skill_path(base, s)) for s in entry.skills]
    prompt_file = str(_resolve(base, entry.prompt_file)) if entry.prompt_file else None
    return entry.model_copy(update={"skills": skills, "prompt_file": prompt_file})


def _skill_path(base: Path, value: str) -> Path:
    """A skill directory: a path relative to the manifest, or a bare name (as claude-bottle
    writes them) found next to the manifest, in its `.claude/skills/`, or in
    `~/.claude/skills/`, the first that holds a SKILL.md."""
    if not _is_bare_name(value):
        return _resolve(base, value)
    places = [base / value, base / ".claude" / "skills" / value, personal_skills_dir() / value]
    return next((p.resolve() for p in places if (p / "SKILL.md").is_file()), places[0].resolve())


def _is_bare_name(value: str) -> bool:
    return bool(value) and "/" not in value and not value.startswith((".", "~"))


def personal_skills_dir() -> Path:
    """Claude Code's personal skills, where a bare skill name is looked up last."""
    return Path(os.path.expanduser("~")) / ".claude" / "skills"


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def _check_references(manifest: Manifest) -> None:
    for name, agent in manifest.agents.items():
        if agent.bottle not in manifest.bottles:
            source = manifest.origin("agents", name)
            known = ", ".join(sorted(manifest.bottles)) or "none defined"
            raise ManifestError(
                f"{source}: agents.{name}.bottle: no bottle named {agent.bottle!r}"
                f" (known bottles: {known})",
                hint=f"define bottles.{agent.bottle}, or point the agent at an existing bottle",
            )
