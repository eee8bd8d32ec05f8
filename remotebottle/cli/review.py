"""Showing what a resume restores: transcripts, refused entries, and memory files as a diff."""

from __future__ import annotations

from pathlib import Path

from rich.filesize import decimal
from rich.text import Text

from remotebottle.cli import console
from remotebottle.memory import Review, Shown

SHOW_REFUSED = 5
SHOW_TOTAL_LINES = 120  # of memory diffs and contents, across all files


def render_review(review: Review, snapshot: Path) -> None:
    out = console.err
    out.print("snapshot of the last session's ~/.claude/projects:", style="bold")
    out.print(
        f"  transcripts  {_count(review.transcripts, 'file')}, {decimal(review.transcript_bytes)}"
        "  restored (claude --continue reads them)",
        markup=False,
    )
    if review.memory:
        out.print(
            f"  memory       {_count(len(review.memory), 'file')}, {decimal(review.memory_bytes)}"
            "  restored only if you approve them",
            markup=False,
        )
    else:
        out.print("  memory       none", markup=False)
    if review.refused:
        out.print(
            f"  refused      {_count(len(review.refused), 'entry')}, never restored"
            " (only plain files and directories under projects/ are):",
            markup=False,
        )
        for line in review.refused[:SHOW_REFUSED]:
            out.print(f"    {line}", markup=False)
        if len(review.refused) > SHOW_REFUSED:
            out.print(f"    … and {len(review.refused) - SHOW_REFUSED} more", markup=False)
    if review.memory or review.approved:
        _render_memory(review, snapshot)


def _render_memory(review: Review, snapshot: Path) -> None:
    out = console.err
    changes = review.changes()
    if review.approved is None:
        out.print(
            "memory files (in ~/.claude; never approved for this bottle, shown whole):",
            style="bold",
        )
    elif changes.shown:
        out.print(
            f"memory files (in ~/.claude), compared with the copy you approved at"
            f" {review.approved_at}:",
            style="bold",
        )
    else:
        out.print(f"memory files: unchanged since you approved them at {review.approved_at}")
        return
    budget, clipped = SHOW_TOTAL_LINES, bool(changes.more_files)
    for shown in changes.shown:
        printed = _render_file(shown, budget)
        budget -= printed
        clipped = clipped or printed < len(shown.lines) + shown.hidden
    if changes.more_files:
        out.print(f"  … and {_count(changes.more_files, 'more file')} with changes", markup=False)
    if review.approved is not None and changes.unchanged:
        out.print(f"  unchanged since your approval: {_count(changes.unchanged, 'file')}")
    if clipped:
        out.print(f"  to read a whole file: tar -xOf {snapshot} NAME", markup=False)


def _render_file(shown: Shown, budget: int) -> int:
    """Print one file's header and up to `budget` of its lines; return how many were shown."""
    out = console.err
    size = f", {decimal(shown.size)}" if shown.status != "removed" else ""
    out.print(Text(f"  {shown.name}  ({shown.status}{size})", style="bold"))
    lines = shown.lines[: max(0, budget)]
    for line in lines:
        out.print(Text(f"    {line}", style=_style(line)))
    hidden = shown.hidden + len(shown.lines) - len(lines)
    if hidden:
        out.print(f"    … {_count(hidden, 'more line')} not shown", markup=False)
    return len(lines)


def _style(line: str) -> str:
    if line.startswith("@@"):
        return "cyan"
    if line.startswith("+"):
        return "green"
    if line.startswith("-"):
        return "red"
    return ""


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {plural}"
