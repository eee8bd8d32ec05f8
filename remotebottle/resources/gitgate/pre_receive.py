#!/usr/bin/python3
"""The git gate's pre-receive hook: check and scan everything a push adds, then push upstream.

Installed as `pre-receive` in every mirror (core.hooksPath). The pushed objects are still in
git's quarantine here, visible to the git commands this hook runs. A push is refused when:
- it deletes a ref, rewrites one (not a fast-forward, or a moved tag) or adds a commit that
  changes a CI definition, unless the remote allows it (the mirror's `gitgate.allow*` keys,
  which the gate server sets from the manifest);
- a ref would not lead to a commit (a tag of a blob or a tree): nothing to check it by;
- gitleaks finds a secret in any object it adds (`rev-list --objects <new> --not --all`):
  every blob, whatever reaches it, and the commits, tags and trees themselves (messages,
  file names);
- the scan fails, or cannot show it read every object: refusing is the only safe answer.

Each object is copied into a scratch directory behind a marker line and scanned by
`gitleaks dir` with a config that has no path allowlists, written when the image is built
(`pre-receive --write-gitleaks-config PATH`). The marker shifts the content off the offsets
where gitleaks looks for the magic numbers of binary files it skips, and a marker finding in
every copy proves gitleaks read it. A clean push is forwarded upstream with a lease on each
ref's old value; the mirror's refs move only if the upstream accepted, since this hook's exit
status decides.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

UPSTREAM_TIMEOUT = 600
GITLEAKS_CONFIG = Path("/opt/gitgate/gitleaks.toml")
MARKER_RULE = "git-gate-read-marker"
MARKER = b"git-gate-read-marker\n"
LEAKS_EXIT = 99  # gitleaks' exit status on findings; errors exit 1
BATCH_BYTES = 64 << 20
# Where the well-known CI systems read their definitions (paths from the repository root).
CI_DEFINITION = re.compile(
    r"(?:\.github/(?:workflows|actions)|\.circleci|\.buildkite|\.azure-pipelines)/"
    r"|(?:\.gitlab-ci|azure-pipelines|\.travis|bitbucket-pipelines|\.drone)\.ya?ml$"
    r"|jenkinsfile$",
    re.IGNORECASE,
)
# gitleaks takes a file whose name merely contains one of these for an archive, and skips it.
ARCHIVE_NAMES = (
    *(".7z", ".br", ".bz2", ".gz", ".lz", ".mz", ".rar"),
    *(".s2", ".sz", ".tar", ".xz", ".zip", ".zst", ".zz"),
)
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


class Refusal(Exception):
    """A reason to refuse the push that ends the checks (they cannot go on)."""


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def deletes(self) -> bool:
        return is_zero(self.new)

    @property
    def creates(self) -> bool:
        return is_zero(self.old)


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


def is_zero(oid: str) -> bool:
    return set(oid) == {"0"}


def say(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        sys.stderr.write(f"git-gate: {line}\n")
    sys.stderr.flush()


def git(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        timeout=UPSTREAM_TIMEOUT,
    )


def git_out(*args: str, stdin: str = "") -> str:
    result = git(*args, stdin=stdin)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise Refusal(f"push refused: git {args[0]} failed: {detail[0]}")
    return result.stdout


def allowed(key: str) -> bool:
    return git("config", "--type=bool", "--get", f"gitgate.{key}").stdout.strip() == "true"


# Ref policy -----------------------------------------------------------------------------


def leads_to(oid: str) -> str:
    """The type of the object `oid` leads to once tags are peeled."""
    return git("cat-file", "-t", f"{oid}^{{}}").stdout.strip() or "missing object"


def rewrites(update: Update) -> bool:
    """Whether the update is not a fast-forward (moving a tag always is)."""
    if update.ref.startswith("refs/tags/"):
        return True
    result = git("merge-base", "--is-ancestor", update.old, update.new)
    return result.returncode != 0


def check_ref(u: Update, kind: str) -> str | None:
    """Why this ref update is refused, if it is; `kind` is what its new value leads to."""
    if u.deletes:
        if allowed("allowDeletes"):
            return None
        return f"push refused: {u.ref}: this remote does not allow deleting refs (AllowDeletes)"
    if kind != "commit":
        return (
            f"push refused: {u.ref} leads to a {kind}, not a commit: the gate forwards"
            " branches and tags of commits only"
        )
    if u.creates or not rewrites(u) or allowed("allowForcePush"):
        return None
    what = "moves a tag" if u.ref.startswith("refs/tags/") else "is not a fast-forward"
    return f"push refused: {u.ref} {what}: this remote does not allow force-pushes (AllowForcePush)"


def check_ci(commits: list[str]) -> list[str]:
    """A refusal per commit that changes a CI definition (for a merge: differs from every
    parent there), unless the remote allows it."""
    if not commits or allowed("allowCIChanges"):
        return []
    out = git_out(
        "diff-tree",
        "--stdin",
        "-r",
        "--root",
        "-c",
        "--name-only",
        "-z",
        stdin="\n".join(commits) + "\n",
    )
    new = set(commits)
    touched: dict[str, list[str]] = {}
    commit = ""
    for token in out.split("\0"):
        if token in new:
            commit = token
        elif CI_DEFINITION.match(token):
            touched.setdefault(commit, []).append(token)
    return [
        f"push refused: commit {c[:12]} changes CI definitions ({', '.join(paths[:3])}):"
        " this remote does not allow CI changes (AllowCIChanges)"
        for c, paths in touched.items()
    ]


# Secret scan ----------------------------------------------------------------------------


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


# Forwarding -----------------------------------------------------------------------------


def upstream_env() -> dict[str, str]:
    """This hook's environment minus the quarantine's ref lock: an upstream reached by path
    runs its receive-pack under it. A push to a URL updates no ref here."""
    return {k: v for k, v in os.environ.items() if k != "GIT_QUARANTINE_PATH"}


def forward(updates: list[Update]) -> int:
    url = git("config", "--get", "remote.origin.url").stdout.strip()
    leases = [f"--force-with-lease={u.ref}:{'' if u.creates else u.old}" for u in updates]
    refspecs = [f":{u.ref}" if u.deletes else f"{u.new}:{u.ref}" for u in updates]
    atomic = ["--atomic"] if len(updates) > 1 else []  # all refs or none, as in the mirror
    try:
        result = git("push", "--porcelain", *atomic, *leases, url, *refspecs, env=upstream_env())
    except subprocess.TimeoutExpired:
        say(f"push refused: the upstream did not answer in {UPSTREAM_TIMEOUT}s")
        return 1
    say(f"upstream {'accepted' if result.returncode == 0 else 'refused'} the push:")
    say(result.stdout + result.stderr)
    return 0 if result.returncode == 0 else 1


def read_updates(text: str) -> list[Update]:
    updates: list[Update] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            updates.append(Update(*fields))
    return updates


def check(updates: list[Update]) -> list[str]:
    """Every reason to refuse these updates; none means forward them."""
    kinds = {u.new: leads_to(u.new) for u in updates if not u.deletes}
    problems = [p for u in updates if (p := check_ref(u, kinds.get(u.new, "")))]
    try:
        if commits := [new for new, kind in kinds.items() if kind == "commit"]:
            added = git_out("rev-list", "--stdin", "--not", "--all", stdin="\n".join(commits))
            problems += check_ci(added.split())
        if kinds:
            problems += scan(new_objects(list(kinds)))
    except Refusal as exc:
        problems.append(str(exc))
    return problems


def main() -> int:
    updates = read_updates(sys.stdin.read())
    if not updates:
        return 0
    try:
        problems = check(updates)
    except subprocess.TimeoutExpired:
        problems = [f"push refused: checking the push took over {UPSTREAM_TIMEOUT}s"]
    except (OSError, ValueError) as exc:
        problems = [f"push refused: checking the push failed: {exc}"]
    if problems:
        for problem in problems:
            say(problem)
        say("nothing was sent upstream")
        return 1
    return forward(updates)


# Image build: the gitleaks config ---------------------------------------------------------

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


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-gitleaks-config"] and len(sys.argv) == 3:
        write_gitleaks_config(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
