"""The pre-receive hook's secret scan: every object a push adds, copied behind a marker line
and scanned by gitleaks (see pre_receive.py for why the marker)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from remotebottle.resources.gitgate.hook_git import UPSTREAM_TIMEOUT, Refusal, git_out

GITLEAKS_CONFIG = Path("/opt/gitgate/gitleaks.toml")
MARKER_RULE = "git-gate-read-marker"
MARKER = b"git-gate-read-marker\n"
LEAKS_EXIT = 99  # gitleaks' exit status on findings; errors exit 1
BATCH_BYTES = 64 << 20
# gitleaks takes a file whose name merely contains one of these for an archive, and skips it.
ARCHIVE_NAMES = (
    *(".7z", ".br", ".bz2", ".gz", ".lz", ".mz", ".rar"),
    *(".s2", ".sz", ".tar", ".xz", ".zip", ".zst", ".zz"),
)
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    match: str


@dataclass
class Pushed:
    """The objects a push adds: where each is reached from (a path, a tag's name, or
    nothing), and its type once read."""

    names: dict[str, str]
    kinds: dict[str, str] = field(default_factory=dict)

    def label(self, oid: str, line: int = 0) -> str:
        """Where in the push an object is, in terms the agent can find: a file's path (and
        line), else the object's type and id."""
        kind, name = self.kinds.get(oid, "object"), self.names.get(oid, "")
        at = f":{line}" if line else ""
        if kind == "blob":
            return f"{name}{at} (blob {oid[:12]})" if name else f"blob {oid[:12]}{at}"
        what = f"tag {name} ({oid[:12]})" if kind == "tag" and name else f"{kind} {oid[:12]}"
        return f"{what}, in {'a file name' if kind == 'tree' else 'its header or message'}"


def new_objects(tips: list[str]) -> Pushed:
    """Every object the push adds, with a path (or tag name) where one reaches it."""
    out = git_out("rev-list", "--objects", "--stdin", "--not", "--all", stdin="\n".join(tips))
    names: dict[str, str] = {}
    for line in out.splitlines():
        oid, _, name = line.partition(" ")
        if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", oid):
            names.setdefault(oid, name)
    return Pushed(names)


def copy_name(path: str) -> str:
    """The name of an object's scratch copy: its own, where path-scoped rules need it and
    gitleaks would not mistake it for an archive."""
    base = path.rsplit("/", 1)[-1]
    lowered = base.lower()
    if PLAIN_NAME.fullmatch(base) and not any(a in lowered for a in ARCHIVE_NAMES):
        return base
    return "object"


def read_objects(oids: Iterable[str]) -> Iterator[tuple[str, str, IO[bytes], int]]:
    """(oid, type, stream, size) for each object, from one `git cat-file --batch`; the
    stream must be read to its size before the next object is asked for."""
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for oid in oids:
            proc.stdin.write(oid.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().decode(errors="replace").split()
            if len(header) != 3 or header[0] != oid:
                raise Refusal(f"push refused: cannot read object {oid[:12]}: {' '.join(header)}")
            yield oid, header[1], proc.stdout, int(header[2])
            proc.stdout.read(1)  # the newline after the content
    finally:
        proc.stdin.close()
        proc.stdout.close()
        proc.wait(timeout=30)


def copy_exactly(source: IO[bytes], sink: IO[bytes], size: int) -> None:
    while size > 0:
        chunk = source.read(min(size, 1 << 20))
        if not chunk:
            raise Refusal("push refused: git cat-file ended early")
        sink.write(chunk)
        size -= len(chunk)


def scan(pushed: Pushed) -> list[str]:
    """The refusal for what gitleaks finds in the pushed objects, if it finds anything.
    The copies go next to the mirror (the hook's working directory), in batches."""
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="gate-scan-", dir=".") as scratch:
        root = Path(scratch).resolve() / "objects"
        root.mkdir()
        batch: dict[Path, str] = {}
        size = 0
        for oid, kind, stream, length in read_objects(pushed.names):
            pushed.kinds[oid] = kind
            copy = root / oid / (copy_name(pushed.names[oid]) if kind == "blob" else "object")
            copy.parent.mkdir()
            with copy.open("wb") as sink:
                sink.write(MARKER)
                copy_exactly(stream, sink, length)
            batch[copy] = oid
            size += length + len(MARKER)
            if size >= BATCH_BYTES:
                findings += run_gitleaks(root, batch, pushed)
                batch, size = {}, 0
        if batch:
            findings += run_gitleaks(root, batch, pushed)
    return [describe(findings)] if findings else []


def run_gitleaks(root: Path, batch: dict[Path, str], pushed: Pushed) -> list[Finding]:
    """gitleaks over the batch's copies (then removed); every copy must show its marker."""
    report = root.parent / "report.json"
    result = subprocess.run(
        [
            "gitleaks",
            "dir",
            "--config",
            str(GITLEAKS_CONFIG),
            "--no-banner",
            "--no-color",
            "--log-level",
            "error",
            "--redact",
            "--ignore-gitleaks-allow",
            "--exit-code",
            str(LEAKS_EXIT),
            "--report-format",
            "json",
            "--report-path",
            str(report),
            str(root),
        ],
        cwd=root.parent,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=UPSTREAM_TIMEOUT,
    )
    try:
        raw = json.loads(report.read_text())
    except (OSError, ValueError):
        raw = None
    complaint = result.stderr.strip()
    if result.returncode != LEAKS_EXIT or not isinstance(raw, list) or complaint:
        tail = "\n".join(complaint.splitlines()[-4:])
        raise Refusal(
            f"push refused: the secret scan failed (gitleaks exit {result.returncode}):\n{tail}"
        )
    read = {Path(f.get("File", "")) for f in raw if f.get("RuleID") == MARKER_RULE}
    for copy, oid in batch.items():
        if copy not in read:
            raise Refusal(
                f"push refused: gitleaks could not read {pushed.label(oid)}, so the"
                " gate cannot vouch for it"
            )
    found = [
        Finding(
            rule=str(f.get("RuleID")),
            where=pushed.label(Path(f.get("File", "")).parent.name, line_of(f)),
            match=str(f.get("Match", "")).strip()[:120],
        )
        for f in raw
        if f.get("RuleID") != MARKER_RULE
    ]
    for copy in batch:
        shutil.rmtree(copy.parent)
    return found


def line_of(finding: dict[str, Any]) -> int:
    """The finding's line in the object itself (the copy has the marker line first)."""
    return max(1, int(finding.get("StartLine") or 1) - MARKER.count(b"\n"))


def describe(findings: list[Finding]) -> str:
    lines = [f"push refused: gitleaks found {len(findings)} secret(s) in the pushed objects"]
    lines += [f"  {f.rule}: {f.where}  {f.match}" for f in findings]
    return "\n".join(lines)
