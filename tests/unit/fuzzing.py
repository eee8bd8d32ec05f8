"""The parts of the input fuzz (`test_fuzz_inputs.py`): hostile values, mutations of valid
documents, running `rbottle` in this process, and judging what it printed.

Hostile values: unicode control and bidi characters, 1 MB strings, `../` names, NUL, lone
surrogates (what a non-UTF-8 byte of argv becomes), shell metacharacters, rich markup,
malformed `ssh://` URLs. A mutation of a valid document replaces, removes, adds or renames
one to four of its values; its JSON text may then be cut, or spliced with bytes that are
not UTF-8, a 5000-digit number or 50 000 open brackets.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from remotebottle import state
from remotebottle.cli import _LogFormatter, main
from remotebottle.errors import MAX_LINE, RemoteBottleError
from remotebottle.manifest.errors import MAX_PROBLEMS

MEGABYTE = "A" * 1_000_000
# fmt: off
HOSTILE = (
    "", " ", "-", "--help", "..", "../../../etc/passwd", "a/../../b", "~root/.ssh/id_rsa",
    "${HOME}", "$(touch pwned)", "`touch pwned`", "; rm -rf ~", "| cat /etc/shadow &&",
    "'\"\\", "*?[a-z]{a,b}>out<in", "[red]markup[/]", "--", "-h",
    "\x00", "a\x00b", "\x1b[2J\x1b[31mred", "\x1b]0;owned\x07", "\x1b]52;c;cm0gLXJmIH4=\x07",
    "\r\nerror: forged line", "\n", "\t", "\x7f\x9b31m\x85", "\u2028\u2029",
    "evil\u202egnp.exe", "\u2066\u2069\u200b\ufeff\u061c", "\U000e0001", "\udcff\udc80",
    "\ud800", "munchen-\u00fc", "\u0430\u0440\u0440le.com", "\u0130\u00df\ufb01",
    "e\u0301\U0001f44d\U0001f3fd",
    MEGABYTE, "\u00e9" * 500_000, "\x1b" * 10_000, "implementer-" + MEGABYTE, "a" * 300,
    "ssh://", "ssh://@", "ssh://h:99999", "ssh://h:-1", "ssh://[::1", "ssh://u:p@h",
    "ssh://h/path?x#f", "ssh://u\x00@h", "ssh://h\r\n", "ssh://h\x01", "ssh://" + MEGABYTE,
    "ssh://-oProxyCommand=touch%20pwned@h", "ssh://a b;touch pwned",
    "local", "ec2", "fly", "vm1", "cloud", "implementer", "implementer-ab12c",
    "IMPLEMENTER-AB12C", "implementer-ab12c\n", "../implementer-ab12c", "a" * 41 + "-abcde",
)
RAW_SNIPPETS = (
    b"\xff\xfe", b"\x00", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"1" * 5000, b"[" * 50_000,
    b"1e999999", b"NaN", b'"\\ud800"', b'"\\u0000\\u001b[31m"', b"//", b",",
)
# fmt: on

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.builds(str.__add__, st.sampled_from(HOSTILE), st.text(max_size=8)),
    st.builds(str.__add__, st.text(max_size=8), st.sampled_from(HOSTILE)),
)
json_values = st.recursive(
    st.one_of(
        hostile_text,
        st.integers(),
        st.sampled_from([-1, 0, 65536, 10**400, 2**63]),
        st.floats(),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
valid_identities = st.from_regex(state.IDENTITY_RE, fullmatch=True)
identities = st.one_of(
    hostile_text, valid_identities, st.builds(str.__add__, valid_identities, hostile_text)
)

# Inputs tried, by entry point: printed at the end of the run for docs/reliability.md.
TRIED: Counter[str] = Counter()
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` two times in three, else a hostile value: the commands get past their first
    check often enough to reach what comes after it."""
    return st.one_of(valid, valid, hostile_text)


# -- mutating a JSON document ------------------------------------------------------------------


def node_paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from node_paths(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from node_paths(value, (*path, index))


def mutated(base: Any, data: st.DataObject) -> Any:
    """`base` with one to four edits: a value replaced, removed, added or renamed."""
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(list(node_paths(doc))))
        op = data.draw(st.sampled_from(("replace", "delete", "add", "rename")))
        if not path:
            doc = data.draw(json_values) if op == "replace" else doc
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        node = parent[last]
        if op == "replace":
            parent[last] = data.draw(json_values)
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(node, dict):
            node[data.draw(hostile_text)] = data.draw(json_values)
        elif op == "add" and isinstance(node, list):
            node.append(data.draw(json_values))
        elif op == "rename" and isinstance(parent, dict):
            parent[data.draw(hostile_text)] = parent.pop(last)
    return doc


def document_bytes(base: Any, data: st.DataObject) -> bytes:
    """A mutated `base` as JSON, sometimes with its text cut or spliced."""
    text = json.dumps(mutated(base, data)).encode()
    how = data.draw(st.sampled_from(("as is", "as is", "cut", "splice")))
    if how == "as is":
        return text
    at = data.draw(st.integers(0, len(text)))
    if how == "cut":
        return text[:at]
    snippet = data.draw(
        st.sampled_from(RAW_SNIPPETS) | hostile_text.map(lambda s: s.encode("utf-8", "replace"))
    )
    return text[:at] + snippet + text[at:]


# -- running the command line and judging what it printed ---------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Outcome:
    """`rbottle ARGV` in this process: stdout strict UTF-8 and stderr backslash-replacing as
    Python's own are, no terminal on stdin, warnings logged to stderr as the CLI does."""
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace")
    handler = logging.StreamHandler(err)
    handler.setFormatter(_LogFormatter(debug=False))
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    stdin, sys.stdin = sys.stdin, io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: --help, --version, a usage error
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        sys.stdin = stdin
        logging.getLogger().removeHandler(handler)
        err.flush()
    return Outcome(code, out_bytes.getvalue().decode(), err_bytes.getvalue().decode())


def unsafe(text: str) -> list[str]:
    """Characters a terminal acts on or does not show (newline aside), as code points."""
    found = {c for c in text if c != "\n" and unicodedata.category(c) in UNSAFE_CATEGORIES}
    return sorted(f"U+{ord(c):04X}" for c in found)


def assert_terminal_safe(text: str, *, debug: bool = False, short: bool = True) -> None:
    """No traceback (unless --debug), no raw control character; with `short`, no line a
    terminal would show as a wall of text (argparse puts `rbottle CMD: error: ` before
    its message, which is cut like every other)."""
    assert debug or "Traceback" not in text, text[-3000:]
    assert not unsafe(text), (unsafe(text), text[:3000])
    longest = max((len(line) for line in text.split("\n")), default=0)
    assert not short or longest <= MAX_LINE + 100, f"a {longest}-character line: {text[:300]}"


def assert_clean(outcome: Outcome, *, debug: bool = False) -> None:
    """Success, or a usage error or the help with no command (status 2), or `error:` lines
    (one per problem) and at most one `hint:`, last; a traceback only with --debug."""
    assert outcome.code in (0, 1, 2), outcome
    failed = outcome.code != 0
    assert_terminal_safe(outcome.out, short=failed)
    assert_terminal_safe(outcome.err, debug=debug, short=failed)
    if not failed:
        return
    lines = outcome.err.rstrip("\n").split("\n")
    if lines[-1].startswith("rbottle") and ": error: " in lines[-1]:
        assert outcome.code == 2, outcome
        return
    if outcome.err.startswith("usage: rbottle ") and "error:" not in outcome.err:
        assert outcome.code == 2, outcome  # no command given: the help
        return
    first = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    assert first is not None, outcome.err[:3000]
    problems = lines[first:-1] if lines[-1].startswith("hint: ") else lines[first:]
    assert all(line.startswith("error: ") for line in problems), outcome.err[:3000]
    assert len(problems) <= MAX_PROBLEMS + 1, outcome.err[:3000]


def assert_clean_message(exc: RemoteBottleError) -> None:
    """An error raised outside the CLI (the dashboard shows these): one safe line."""
    assert "\n" not in exc.message, exc.message[:3000]
    assert_terminal_safe(exc.message)
    assert_terminal_safe(exc.hint)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`, and every directory named as an identity (`rbottle list`
    reads those); an empty `state/` made on the way to a session lock is not counted."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if not p.is_dir() or state.IDENTITY_RE.fullmatch(p.name)
    }


def run_and_judge(kind: str | None, argv: list[str], root: Path) -> Outcome:
    """Run `rbottle ARGV`, judge its output, and check that no file under `root` (HOME, the
    state directory, the project) was written, whatever the outcome. Counted as one input
    of `kind` (None: not counted)."""
    if kind is not None:
        TRIED[kind] += 1
    before = snapshot(root)
    outcome = run_cli(argv)
    assert_clean(outcome, debug="--debug" in argv)
    assert snapshot(root) == before, f"{argv[:3]} changed files under {root}"
    return outcome
