"""The gitleaks config the pre-receive hook scans with, made when the gate image is built:
gitleaks' own default rules without their path allowlists, plus the hook's marker rule."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from remotebottle.resources.gitgate.hook_scan import MARKER, MARKER_RULE

DEFAULT_CONFIG_HEAD = b"# This file has been auto-generated. Do not edit manually."
_TEXT = re.compile(rb"[\t\n\r\x20-\x7e]*")


def default_config(binary: bytes) -> str:
    """gitleaks' default config, as embedded in its binary (it has no command to print it)."""
    start = binary.find(DEFAULT_CONFIG_HEAD)
    if start < 0 or binary.find(DEFAULT_CONFIG_HEAD, start + 1) >= 0:
        raise SystemExit("cannot find gitleaks' default config in its binary")
    match = _TEXT.match(binary, start)
    assert match is not None
    return match.group().decode("ascii")


def without_path_allowlists(config: dict[str, Any]) -> dict[str, Any]:
    """The config minus every exemption by path (global or per rule), plus the marker rule."""
    config = dict(config)
    config["allowlists"] = _kept(_pop_allowlists(config))
    rules = []
    for rule in config["rules"]:
        rule = dict(rule)
        if kept := _kept(_pop_allowlists(rule)):
            rule["allowlists"] = kept
        rules.append(rule)
    marker = MARKER.decode().strip()
    config["rules"] = [
        *rules,
        {
            "id": MARKER_RULE,
            "description": "The git gate's marker line: proves gitleaks read a file.",
            "regex": re.escape(marker),
            "keywords": [marker],
        },
    ]
    return config


def _pop_allowlists(table: dict[str, Any]) -> list[dict[str, Any]]:
    single = table.pop("allowlist", None)  # the older spelling
    return ([single] if single else []) + list(table.pop("allowlists", []))


def _kept(allowlists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Allowlists without their paths. Where paths are one condition of several (AND), the
    whole allowlist goes: without them it would allow more."""
    kept = []
    for allowlist in allowlists:
        if "paths" in allowlist and str(allowlist.get("condition", "")).upper() in ("AND", "&&"):
            continue
        rest = {k: v for k, v in allowlist.items() if k != "paths"}
        if any(rest.get(k) for k in ("commits", "regexes", "stopwords")):
            kept.append(rest)
    return kept


def to_toml(table: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
            raise SystemExit(f"unexpected key in gitleaks' config: {key!r}")
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in nested:
        name = prefix + key
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *to_toml(value, name + ".")]
        else:
            for item in value:
                lines += ["", f"[[{name}]]", *to_toml(item, name + ".")]
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise SystemExit(f"unexpected value in gitleaks' config: {value!r}")


def rule_ids(config: Path | None) -> set[str]:
    """The rules gitleaks loads from `config` (its default when None), from a SARIF report."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "rules.sarif"
        (Path(scratch) / "empty").mkdir()
        argv = ["gitleaks", "dir", "--no-banner", "--report-format", "sarif"]
        argv += ["--report-path", str(report), *(["--config", str(config)] if config else [])]
        subprocess.run([*argv, str(Path(scratch) / "empty")], check=True, capture_output=True)
        rules = json.loads(report.read_text())["runs"][0]["tool"]["driver"]["rules"]
    return {str(r["id"]) for r in rules}


def write_gitleaks_config(target: Path) -> None:
    """At image build time: gitleaks' default rules, no path allowlists, and the marker."""
    gitleaks = shutil.which("gitleaks")
    if gitleaks is None:
        raise SystemExit("gitleaks is not on PATH")
    default = tomllib.loads(default_config(Path(gitleaks).read_bytes()))
    config = without_path_allowlists(default)
    text = "\n".join(to_toml(config)) + "\n"
    if tomllib.loads(text) != config:
        raise SystemExit("the gitleaks config did not survive being written out")
    target.write_text(text)
    if rule_ids(target) != rule_ids(None) | {MARKER_RULE}:
        raise SystemExit("the gitleaks config does not have exactly gitleaks' default rules")
