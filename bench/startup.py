"""Bench: how long `rbottle --help` takes to start, against Python doing nothing.

Every figure is a median of N runs, alternating between the paths in the same run, each
a fresh interpreter (the same one running this script) with its output discarded:

- `python -c pass` (the baseline: the interpreter's own start-up);
- `python -c "import remotebottle"` (the package, no CLI);
- `python -m remotebottle --help` and `python -m remotebottle start --help` (what a
  user waits for when asking for help).

Then, once, the cumulative `-X importtime` of `remotebottle.cli` (median of N) and the
heavy libraries (docker, paramiko, boto3, requests, pydantic, textual, rich) that the
help path imported, which should be none.

    python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bottle_start import machine as cpu_and_cores  # noqa: E402

PY = sys.executable
PATHS = {
    "python -c pass (baseline)": [PY, "-c", "pass"],
    'python -c "import remotebottle"': [PY, "-c", "import remotebottle"],
    "rbottle --help": [PY, "-m", "remotebottle", "--help"],
    "rbottle start --help": [PY, "-m", "remotebottle", "start", "--help"],
}
HEAVY = ("docker", "paramiko", "boto3", "botocore", "requests", "pydantic", "textual", "rich")
# `import time:     self [us] | cumulative | name`, the name indented by depth.
IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed


def import_profile() -> tuple[float, set[str]]:
    """The cumulative import time of remotebottle.cli (ms) and every top-level package
    imported by `rbottle --help`."""
    done = subprocess.run(
        [PY, "-X", "importtime", "-m", "remotebottle", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    cli_us, packages = 0, set()
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        name = match.group(4)
        packages.add(name.split(".")[0])
        if name == "remotebottle.cli":
            cli_us = int(match.group(2))
    return cli_us / 1000, packages


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu_and_cores()}; Python {platform.python_version()}; load average {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {label: [] for label in PATHS}
    for argv in PATHS.values():  # warm the page cache and the bytecode caches
        timed(argv)
    for _ in range(args.runs):
        for label, argv in PATHS.items():
            samples[label].append(timed(argv))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    base = medians["python -c pass (baseline)"]
    print(f"machine: {machine()}")
    print(f"{'wall time, median of ' + str(args.runs) + ', alternating':44} {'median':>9}  ratio")
    for label, med in medians.items():
        print(f"  {label:42} {med * 1000:7.0f}ms  {med / base:5.2f}")
    profiles = [import_profile() for _ in range(args.runs)]
    cli_ms = statistics.median(ms for ms, _ in profiles)
    heavy = sorted({p for _, packages in profiles for p in packages} & set(HEAVY))
    print(f"import of remotebottle.cli (-X importtime, cumulative, median): {cli_ms:.0f}ms")
    print(f"heavy libraries imported by `rbottle --help`: {', '.join(heavy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
