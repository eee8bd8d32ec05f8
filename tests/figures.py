"""Figures the reliability tests measure, kept for docs/reliability.md.

Each test that measures something calls `record(case, ...)`; the rows go, one JSON
object per line, to `build/reliability.jsonl` (or `$RBOTTLE_FIGURES`). After a run,
`python bench/reliability_table.py` turns them into the table in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).resolve().parents[1] / "build" / "reliability.jsonl"


def figures_file() -> Path:
    return Path(os.environ.get("RBOTTLE_FIGURES", str(DEFAULT)))


def record(
    case: str, *, done: str, seen: str, lost: str, recover_s: float | None, **extra: Any
) -> None:
    """One row: what was done to the session, what the user saw, what was lost (must be
    "nothing"), seconds until the session was whole again (None: not applicable)."""
    row = {
        "case": case,
        "done": done,
        "seen": seen,
        "lost": lost,
        "recover_s": None if recover_s is None else round(recover_s, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    path = figures_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
