"""What rbottle reads of an engine: runtimes with their arguments, and the engine's own
reason when a container does not run under gVisor."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from remotebottle.backend.docker import engine
from remotebottle.backend.docker.engine import EngineFacts, GvisorCheck, engine_facts

pytestmark = pytest.mark.unit

RUNTIMES_26 = {
    "io.containerd.runc.v2": {"path": "runc", "status": {"features": "{}"}},
    "runc": {"path": "runc"},
    "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]},
}


class Engine:
    """`docker info` and `docker version` as Docker 26 answers them."""

    def __init__(self, runtimes: dict[str, Any]) -> None:
        self.runtimes = runtimes

    def info(self) -> dict[str, Any]:
        return {"ID": "ENGINE-ID", "Runtimes": self.runtimes}

    def version(self) -> dict[str, Any]:
        return {"Version": "26.1.5+dfsg1"}


def test_runtimes_are_read_with_their_arguments() -> None:
    facts = engine_facts(Engine(RUNTIMES_26))  # type: ignore[arg-type]
    assert facts.version == "26.1.5+dfsg1" and facts.engine_id == "ENGINE-ID"
    assert facts.has_gvisor and facts.gvisor_args == ("--network=host",)
    assert facts.runtime_args == {"runsc": ("--network=host",)}
    assert facts.described_runtimes() == ["runc", "runsc --network=host"]
    assert not facts.leaks_internal_dns


def test_an_engine_without_runtime_arguments() -> None:
    facts = engine_facts(Engine({"runc": {"path": "runc"}}))  # type: ignore[arg-type]
    assert not facts.has_gvisor and facts.gvisor_args == () and facts.runtime_args == {}


def test_the_engines_reason_is_kept_without_the_oci_boilerplate() -> None:
    error = docker.errors.APIError(
        "500 Server Error",
        explanation=(
            "OCI runtime start failed: starting container: setting up network: creating"
            ' interfaces from net namespace "/proc/1224/ns/net": cannot run with network'
            " enabled in root network namespace: unknown"
        ),
    )
    assert engine._engine_reason(error) == (
        "starting container: setting up network: creating interfaces from net namespace"
        ' "/proc/1224/ns/net": cannot run with network enabled in root network namespace'
    )


def test_a_check_is_remembered_per_engine_and_runsc_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_gvisor_checks", {})
    facts = EngineFacts("26.1.5", frozenset({"runsc"}), {"runsc": ("--network=host",)}, "E1")
    assert engine.known_gvisor_check(facts) is None
    engine._gvisor_checks[("E1", ("--network=host",))] = GvisorCheck(works=True)
    assert engine.known_gvisor_check(facts) == GvisorCheck(works=True)
    bare = EngineFacts("26.1.5", frozenset({"runsc"}), {}, "E1")
    assert engine.known_gvisor_check(bare) is None  # re-registered: checked again
    assert engine.known_gvisor_check(EngineFacts("26.1.5", frozenset({"runsc"}))) is None
