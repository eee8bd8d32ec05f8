"""How image shipments are shown: one line per image off a terminal, bars on one."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from remotebottle.cli.transfer import render_ship_progress
from remotebottle.ops.ship import ShipProgress

pytestmark = pytest.mark.unit

MB = 1_000_000


def ship_events(ref: str, chunks: int, total: int) -> list[ShipProgress]:
    sent = [0, *(MB * (i + 1) for i in range(chunks))]
    return [ShipProgress(ref, s, total) for s in sent] + [
        ShipProgress(ref, sent[-1], total, done=True)
    ]


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, color_system=None), out


def test_off_a_terminal_each_image_gets_one_line() -> None:
    con, out = console(terminal=False)
    render = render_ship_progress(con)
    events = [
        *ship_events("example/agent:v1", 3, 2 * MB),
        ShipProgress("example/egress:v2", 0, 5 * MB, done=True, skipped=True),
        ShipProgress("example/gate:v3", 0, 5 * MB),
        ShipProgress("example/gate:v3", MB, 5 * MB),
        ShipProgress("example/gate:v3", MB, 5 * MB, done=True, failed=True),
    ]
    for event in events:
        render(event)

    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"example/agent:v1: shipped 3\.0 MB in \d+\.\ds \((.+/s|-)\)", lines[0])
    assert lines[1] == "example/egress:v2: already on the host"
    assert lines[2] == "example/gate:v3: failed after 1.0 MB"


def test_on_a_terminal_a_bar_shows_bytes_and_ends_with_the_image() -> None:
    con, out = console(terminal=True)
    render = render_ship_progress(con)
    for event in ship_events("example/agent:v1", 3, 2 * MB):
        render(event)
    render(ShipProgress("example/egress:v2", 0, 5 * MB, done=True, skipped=True))

    text = out.getvalue()
    assert "example/agent:v1" in text
    assert "3.0/3.0 MB" in text  # the bar's end followed the bytes past the estimate
    assert "example/egress:v2: already on the host" in text
    # The live display was stopped: the cursor it hid is shown again.
    assert text.index("\x1b[?25h") < text.index("example/egress:v2")
