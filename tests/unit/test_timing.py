"""`timing.phase`: one DEBUG record per phase, nested names, nothing without DEBUG."""

from __future__ import annotations

import logging
import re

import pytest

from remotebottle.timing import phase

pytestmark = pytest.mark.unit


def test_each_phase_logs_its_time_once_under_its_outer_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="remotebottle.phases")
    with phase("launch"):
        with phase("egress proxy"):
            pass
        with pytest.raises(ValueError, match="boom"), phase("agent"):
            raise ValueError("boom")
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in messages] == [
        "phase launch/egress proxy",
        "phase launch/agent",
        "phase launch",
    ]
    assert all(re.fullmatch(r"phase [a-z /]+: \d+ ms", m) for m in messages), messages
    with phase("after"):
        pass
    assert caplog.records[-1].getMessage().startswith("phase after:"), "the nesting unwound"


def test_without_debug_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="remotebottle.phases")
    with phase("launch"):
        pass
    assert caplog.records == []
