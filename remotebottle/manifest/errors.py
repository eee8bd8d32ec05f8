"""Validation errors as one line each: `file: json.path: what is wrong`.

pydantic's messages name its own locations (`hosts.vm1.ssh.address`, `[key]`) and types
(`Input should be a valid string`); users wrote JSON, so the path and the wording are
translated to what they wrote.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from remotebottle.errors import printable, quoted
from remotebottle.manifest.models import PROVIDERS

SCHEMA_HINT = "run `rbottle schema` for the full schema, or see docs/manifest.md"
MAX_PROBLEMS = 10  # lines; a file wrong everywhere says how many more there are


def describe(exc: ValidationError, source: str) -> str:
    """One line per problem in `exc`, each naming `source` and the JSON path."""
    errors = exc.errors()
    lines = [f"{source}: {_describe(err)}" for err in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"{source}: and {len(errors) - MAX_PROBLEMS} more problems")
    return "\n".join(lines)


def _describe(err: Any) -> str:
    loc: list[str | int] = [p for p in err["loc"] if p != "[key]"]
    # Tagged unions put the tag in the location (hosts.vm1.ssh.address); users never wrote it.
    if len(loc) >= 3 and loc[0] == "hosts" and loc[2] in PROVIDERS:
        del loc[2]
    path = _json_path(loc)
    kind = err["type"]
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "extra_forbidden":
        return f"{path}: unknown field"
    if kind == "union_tag_invalid":
        given = quoted(err["input"].get("provider"))
        return f"{path}.provider: unknown provider {given}; expected one of {', '.join(PROVIDERS)}"
    if kind == "union_tag_not_found":
        return f"{path}: `provider` is required (one of {', '.join(PROVIDERS)})"
    msg = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "expected")
    if kind.endswith("_type"):
        msg = f"{msg}, got {_json_type(err['input'])}"
    return f"{path}: {msg}"


def _json_path(loc: list[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, str):
            part = printable(part, limit=100)  # one short line, whatever the key
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(top level)"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
