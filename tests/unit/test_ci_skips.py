"""Under CI a skipped test fails the run; only opt-in live-cloud tests may skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SAMPLE = """
import pytest

def test_needs_a_missing_part():
    pytest.skip("pipelock is not on the engine")

@pytest.mark.live_cloud
def test_opt_in_cloud():
    pytest.skip("live EC2 test: opt in with RBOTTLE_LIVE_EC2=1")

def test_passes():
    assert True
"""


def run_sample(tmp_path: Path, ci: bool) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            os.devnull,
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


def test_a_skip_under_ci_fails_the_run(tmp_path: Path) -> None:
    out = run_sample(tmp_path, ci=True)
    assert "1 failed, 1 passed, 1 skipped" in out, out
    assert "FAILED" in out and "test_needs_a_missing_part" in out
    assert "pipelock is not on the engine" in out  # the reason is kept


def test_outside_ci_a_skip_is_a_skip(tmp_path: Path) -> None:
    out = run_sample(tmp_path, ci=False)
    assert "1 passed, 2 skipped" in out, out
