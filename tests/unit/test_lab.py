"""The egress proxy's SSRF relaxation for the demo's and the tests' own upstreams: only a
plan made by `backend/docker/lab.py` carries it, and no session code can make one."""

from __future__ import annotations

import pytest

from remotebottle.backend.docker import lab
from remotebottle.backend.docker.engine import EngineFacts, GvisorCheck
from remotebottle.backend.docker.planner import checked, plan
from remotebottle.backend.spec import BottleSpec
from tests.unit.test_layers import imports, modules

pytestmark = pytest.mark.unit

LAB = "remotebottle.backend.docker.lab"
# The demo (`rbottle demo`) and the egress sidecar, which reads the hosts off the plan.
MAY_IMPORT_LAB = {"remotebottle.demo", "remotebottle.backend.docker.egress"}


def spec() -> BottleSpec:
    return BottleSpec(identity="t-abcde", agent="t", bottle="b", egress_allowlist=("up",))


def test_a_plan_trusts_no_private_upstream_unless_lab_made_it() -> None:
    facts = EngineFacts(version="28.2.2", runtimes=frozenset({"runc", "runsc"}))
    made = plan(spec(), facts)
    assert lab.private_upstreams(made) == ()
    trusting = lab.trusting_private_upstreams(made, ["up"])
    assert lab.private_upstreams(trusting) == ("up",)
    assert trusting.to_dict() == made.to_dict()
    # Launch re-plans once gVisor was checked: the relaxation goes with the plan.
    assert made.engine is not None and made.engine.gvisor == "unchecked"
    rechecked = checked(trusting, facts, GvisorCheck(works=False, reason="no"))
    assert rechecked.runtime == "runc"
    assert lab.private_upstreams(rechecked) == ("up",)


def test_only_the_demo_reaches_for_the_relaxation() -> None:
    importers = {m for m in modules() if m != LAB and LAB in imports(m)}
    assert importers == MAY_IMPORT_LAB
