"""From manifest to plan: effective allowlist, images, runtime, warnings, no secret values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from remotebottle import manifest, pins
from remotebottle.backend.defaults import CLAUDE_CODE_HOSTS, effective_allowlist
from remotebottle.backend.docker.engine import EngineFacts, version_tuple
from remotebottle.backend.docker.images import agent_image, git_gate_image
from remotebottle.backend.docker.planner import plan
from remotebottle.backend.spec import Command
from remotebottle.errors import ManifestError
from remotebottle.resolve import build_spec
from tests.conftest import FULL_MANIFEST, SECRET

pytestmark = pytest.mark.unit

ENV = {"RB_TEST_TOKEN": SECRET}


@pytest.fixture
def loaded(write_manifest: Callable[..., Path]) -> manifest.Manifest:
    return manifest.load([write_manifest(FULL_MANIFEST)])


def test_effective_allowlist_is_defaults_union_sorted_deduplicated() -> None:
    result = effective_allowlist(["pypi.org", "api.anthropic.com", "PyPI.org."])
    assert result == sorted({*CLAUDE_CODE_HOSTS, "pypi.org"})


def test_plan_with_resolved_secrets_never_shows_them(loaded: manifest.Manifest) -> None:
    spec = build_spec(
        loaded,
        "implementer",
        command=Command(),
        environ=ENV,
        prompter=lambda q: "prompted-" + SECRET,
    )
    assert spec.env["TOKEN"].value is not None
    assert spec.env["TOKEN"].value.get_secret_value() == SECRET
    text = json.dumps(plan(spec, None).to_dict())
    assert SECRET not in text
    assert "prompted-" not in text
    assert SECRET not in repr(spec)


def test_dry_run_spec_reads_no_value_and_asks_nothing(loaded: manifest.Manifest) -> None:
    def refuse(question: str) -> str:
        raise AssertionError("a dry run must not ask")

    spec = build_spec(
        loaded,
        "implementer",
        command=Command(),
        environ=ENV,
        resolve_secrets=False,
        prompter=refuse,
    )
    assert all(v.value is None for v in spec.env.values())
    data = plan(spec, None).to_dict()
    assert data["env"] == {
        "GIT_AUTHOR_NAME": "literal",
        "TOKEN": "from $RB_TEST_TOKEN",
        "ASK": "asked at start",
    }
    assert data["cred_routes"] == [
        {
            "name": "anthropic",
            "upstream": "https://api.anthropic.com/",
            "role": "anthropic-base-url",
            "inject": {"x-api-key": "from $RB_TEST_TOKEN"},
            "grants": [],
        }
    ]


def test_dry_run_still_requires_named_variables(loaded: manifest.Manifest) -> None:
    with pytest.raises(
        ManifestError, match=r"bottles.dev.env.TOKEN: \$\{RB_TEST_TOKEN\} is not set"
    ):
        build_spec(loaded, "implementer", command=Command(), environ={}, resolve_secrets=False)


def test_plan_contents(loaded: manifest.Manifest) -> None:
    spec = build_spec(
        loaded,
        "implementer",
        command=Command(mode="print", prompt="hi"),
        environ=ENV,
        resolve_secrets=False,
        host="vm1",
    )
    data = plan(spec, None).to_dict()
    assert data["agent"] == "implementer" and data["bottle"] == "dev" and data["host"] == "vm1"
    assert data["identity"].startswith("implementer-")
    assert data["egress"]["allowlist"] == sorted({*CLAUDE_CODE_HOSTS, "pypi.org"})
    assert data["images"] == {
        "agent": agent_image(),
        "egress": pins.pipelock_image(),
        "git_gate": git_gate_image(),
    }
    assert data["git"][0]["extra_hosts"] == {"git.example.test": "10.1.2.3"}
    assert data["anthropic_credential"] == "via credential proxy route 'anthropic'"
    assert data["command"] == {"mode": "print", "prompt": "hi"}
    assert data["runtime"] == "auto"
    assert data["prompt"] == "inline"


def test_bare_bottle_has_no_gate_and_warns_about_credentials(loaded: manifest.Manifest) -> None:
    spec = build_spec(loaded, "plain", command=Command(), environ={}, resolve_secrets=False)
    result = plan(spec, EngineFacts(version="28.2.2", runtimes=frozenset({"runc"})))
    data = result.to_dict()
    assert "git_gate" not in data["images"]
    assert data["anthropic_credential"] == "none"
    assert data["runtime"] == "runc"
    assert any("no cred_proxy route" in w for w in result.warnings)
    assert any("gVisor" in w for w in result.warnings)
    assert not any("CVE" in w for w in result.warnings)


def test_gvisor_is_chosen_when_the_engine_has_it(loaded: manifest.Manifest) -> None:
    spec = build_spec(loaded, "plain", command=Command(mode="exec", argv=("true",)), environ={})
    result = plan(spec, EngineFacts(version="27.0.1", runtimes=frozenset({"runc", "runsc"})))
    assert result.runtime == "runsc"
    assert result.warnings == ()


def test_old_engines_are_warned_about(loaded: manifest.Manifest) -> None:
    spec = build_spec(loaded, "plain", command=Command(), environ={})
    result = plan(spec, EngineFacts(version="20.10.24+dfsg1", runtimes=frozenset({"runc"})))
    assert any("CVE-2024-29018" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20.10.24+dfsg1", (20, 10, 24)),
        ("25.0.5", (25, 0, 5)),
        ("28.2.2-1", (28, 2, 2)),
        ("26.1", (26, 1)),
        ("dev", (0,)),
    ],
)
def test_version_tuple(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_missing_skill_is_a_clean_error(write_manifest: Callable[..., Path]) -> None:
    path = write_manifest(
        {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b", "skills": ["skills/none"]}}}
    )
    with pytest.raises(ManifestError, match=r"agents.a.skills\[0\]: .* has no SKILL.md"):
        build_spec(manifest.load([path]), "a", command=Command(), environ={})


def test_skill_and_prompt_file_resolve(write_manifest: Callable[..., Path], tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "skills/s").mkdir(parents=True)
    (project / "skills/s/SKILL.md").write_text("---\nname: s\n---\n")
    (project / "p.md").write_text("prompt")
    path = write_manifest(
        {
            "bottles": {"b": {}},
            "agents": {"a": {"bottle": "b", "skills": ["skills/s"], "prompt_file": "p.md"}},
        }
    )
    spec = build_spec(manifest.load([path]), "a", command=Command(), environ={})
    assert spec.skills == (project / "skills/s",)
    assert spec.prompt_file == project / "p.md"


def test_missing_prompt_file_is_a_clean_error(write_manifest: Callable[..., Path]) -> None:
    path = write_manifest(
        {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b", "prompt_file": "x.md"}}}
    )
    with pytest.raises(ManifestError, match=r"agents\.a\.prompt_file: .* does not exist"):
        build_spec(manifest.load([path]), "a", command=Command(), environ={})


def test_pins_the_product_uses_are_concrete() -> None:
    for key in ("BASE_IMAGE", "PIPELOCK_IMAGE", "GITLEAKS_IMAGE", "CLAUDE_CODE_VERSION"):
        value = pins.pin(key)
        assert value and "TBD" not in value, key
    assert pins.pipelock_image() == "ghcr.io/luckypipewrench/pipelock:2.3.0"
    assert pins.gitleaks_image().endswith(":" + pins.pin("GITLEAKS_GO_VERSION"))
