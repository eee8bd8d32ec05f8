"""Print the table for docs/reliability.md from the rows the reliability tests recorded.

    REMOTEBOTTLE_EXTRA_CA_CERTS=... pytest tests/e2e/test_network_cut.py ...   # records rows
    python bench/reliability_table.py [build/reliability.jsonl]

Each test appends one JSON row per case (`tests/figures.py`); the newest row of each
case wins. Extra fields a test measured (ping times, counts) go in the last column.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / "build" / "reliability.jsonl"
COLUMNS = ("case", "done", "seen", "lost", "recover_s")


def rows(path: Path) -> list[dict[str, object]]:
    newest: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            newest[str(row["case"])] = row
    return list(newest.values())


def cell(value: object) -> str:
    if value is None:
        return "n/a"
    return str(value).replace("|", "\\|")


def table(found: list[dict[str, object]]) -> str:
    head = "| case | what was done | what the user saw | lost | recovered in (s) | measured |"
    lines = [head, "|---|---|---|---|---|---|"]
    for row in found:
        extra = ", ".join(f"{k}={v}" for k, v in row.items() if k not in (*COLUMNS, "at"))
        lines.append("| " + " | ".join([*(cell(row.get(c)) for c in COLUMNS), cell(extra)]) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT
    if not path.is_file():
        print(f"no figures at {path}: run the reliability tests first", file=sys.stderr)
        return 1
    print(table(rows(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
