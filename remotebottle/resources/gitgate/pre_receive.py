#!/usr/bin/python3
"""The git gate's pre-receive hook: scan exactly the pushed commits, then push upstream.

Installed as `pre-receive` in every mirror (core.hooksPath). Per ref: deletions are not
scanned; a new ref scans `<new> --not --all`, an update `<old>..<new>`. gitleaks' exit 1
means leaks *or* an error: its JSON report tells them apart, and both refuse the push.
A clean push is forwarded to the upstream with a lease on each ref's old value; the
mirror's refs move only if the upstream accepted, since this hook's exit status decides.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

UPSTREAM_TIMEOUT = 600


def is_zero(oid: str) -> bool:
    return set(oid) == {"0"}


def say(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        sys.stderr.write(f"git-gate: {line}\n")
    sys.stderr.flush()


def describe(findings: list[dict[str, object]]) -> str:
    lines = [f"push refused: gitleaks found {len(findings)} secret(s) in the pushed commits"]
    for f in findings:
        commit = str(f.get("Commit", ""))[:12]
        lines.append(
            f"  {f.get('RuleID')}: {f.get('File')}:{f.get('StartLine')} (commit {commit})"
            f"  {str(f.get('Match', '')).strip()[:120]}"
        )
    lines.append("nothing was sent upstream; remove the secret from these commits and push again")
    return "\n".join(lines)


def scan(log_opts: str) -> str | None:
    """None when gitleaks finds nothing in `git log <log_opts>`, else why to refuse."""
    with tempfile.TemporaryDirectory(prefix="gitleaks-") as scratch:
        report = Path(scratch) / "report.json"
        result = subprocess.run(
            [
                "gitleaks",
                "git",
                "--no-banner",
                "--no-color",
                "--redact",
                "--ignore-gitleaks-allow",
                "--exit-code",
                "1",
                "--report-format",
                "json",
                "--report-path",
                str(report),
                f"--log-opts={log_opts}",
                ".",
            ],
            capture_output=True,
            text=True,
            timeout=UPSTREAM_TIMEOUT,
        )
        if result.returncode == 0:
            return None
        try:
            findings = json.loads(report.read_text())
        except (OSError, ValueError):
            findings = None
    if result.returncode == 1 and isinstance(findings, list) and findings:
        return describe(findings)
    tail = "\n".join(result.stderr.strip().splitlines()[-4:])
    return f"push refused: the secret scan failed (gitleaks exit {result.returncode}):\n{tail}"


def object_type(oid: str) -> str:
    result = subprocess.run(["git", "cat-file", "-t", oid], capture_output=True, text=True)
    return result.stdout.strip()


def forward(updates: list[tuple[str, str, str]]) -> int:
    url = subprocess.run(
        ["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True
    ).stdout.strip()
    leases = [f"--force-with-lease={ref}:{'' if is_zero(old) else old}" for old, _, ref in updates]
    refspecs = [f":{ref}" if is_zero(new) else f"{new}:{ref}" for _, new, ref in updates]
    atomic = ["--atomic"] if len(updates) > 1 else []  # all refs or none, as in the mirror
    try:
        result = subprocess.run(
            ["git", "push", "--porcelain", *atomic, *leases, url, *refspecs],
            capture_output=True,
            text=True,
            timeout=UPSTREAM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        say(f"push refused: the upstream did not answer in {UPSTREAM_TIMEOUT}s")
        return 1
    say(f"upstream {'accepted' if result.returncode == 0 else 'refused'} the push:")
    say(result.stdout + result.stderr)
    return 0 if result.returncode == 0 else 1


def main() -> int:
    updates: list[tuple[str, str, str]] = []
    for line in sys.stdin.read().splitlines():
        fields = line.split()
        if len(fields) == 3:
            updates.append((fields[0], fields[1], fields[2]))
    for old, new, ref in updates:
        if is_zero(new):
            continue
        if object_type(new) == "tag":
            # An annotated tag's message is not a commit: gitleaks' git scan never reads it.
            say(f"push refused: {ref} is an annotated tag; push a lightweight tag instead")
            return 1
        problem = scan(f"{new} --not --all" if is_zero(old) else f"{old}..{new}")
        if problem:
            say(problem)
            return 1
    return forward(updates) if updates else 0


if __name__ == "__main__":
    sys.exit(main())
