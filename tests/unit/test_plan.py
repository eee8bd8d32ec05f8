"""From manifest to plan: effective allowlist, images, runtime, warnings, no secret values."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from remotebottle import manifest, pins
from remotebottle.backend.defaults import CLAUDE_CODE_HOSTS, effective_allowlist
from remotebottle.backend.docker.engine import EngineFacts, GvisorCheck, version_tuple
from remotebottle.backend.docker.images import agent_image, git_gate_image
from remotebottle.backend.docker.planner import (
    checked,
    describe,
    describe_engine,
    describe_runtime,
    plan,
)
from remotebottle.backend.spec import BottleSpec, Command
from remotebottle.errors import ManifestError
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest.models import LocalHost, SshHost
from remotebottle.ops.plan import EngineTooOld, check_engine
from remotebottle.resolve import build_spec
from tests.conftest import FULL_MANIFEST, SECRET

pytestmark = pytest.mark.unit

ENV = {"RB_TEST_TOKEN": SECRET}
OAUTH_TOKEN = "sk-ant-oat01-unit-test-token-not-real"
LOGIN = {"CLAUDE_BOTTLE_OAUTH_TOKEN": OAUTH_TOKEN}


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
            "added_from": None,
        }
    ]


def test_the_confirmed_spec_gets_its_values_once_without_rereading_the_manifest(
    loaded: manifest.Manifest,
) -> None:
    asked: list[str] = []
    environ = dict(ENV)
    preview = build_spec(
        loaded,
        "implementer",
        command=Command(),
        environ=environ,
        resolve_secrets=False,
        prompter=lambda q: asked.append(q) or "answer",
    )
    assert asked == [], "the preflight asks nothing"
    environ["RB_TEST_TOKEN"] = SECRET + "-at-start"  # values are read when the session starts
    running = preview.with_values()
    assert asked == ["a question"]
    assert running.identity == preview.identity
    assert plan(running, None).to_dict() == plan(preview, None).to_dict()
    values = {name: v.value.get_secret_value() for name, v in running.env.items() if v.value}
    assert values == {"GIT_AUTHOR_NAME": "Bottled", "TOKEN": SECRET + "-at-start", "ASK": "answer"}
    [route] = running.routes
    assert route.inject["x-api-key"].value is not None
    assert running.with_values() == running and asked == ["a question"], "resolved only once"


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
    assert data["anthropic_credential"] == (
        "via credential proxy route 'anthropic' (x-api-key from $RB_TEST_TOKEN)"
    )
    assert data["command"] == {"mode": "print", "prompt": "hi"}
    assert data["runtime"] == "auto"
    assert data["prompt"] == "inline"


def test_bare_bottle_has_no_gate_and_warns_about_credentials(loaded: manifest.Manifest) -> None:
    spec = build_spec(
        loaded,
        "plain",
        command=Command(mode="exec", argv=("claude",)),
        environ={},
        resolve_secrets=False,
    )
    result = plan(spec, EngineFacts(version="28.2.2", runtimes=frozenset({"runc"})))
    data = result.to_dict()
    assert "git_gate" not in data["images"]
    assert data["anthropic_credential"] == "none"
    assert data["runtime"] == "runc"
    assert any("gVisor" in w for w in result.warnings)
    assert not any("CVE" in w for w in result.warnings)


def test_gvisor_is_chosen_when_the_engine_has_it(loaded: manifest.Manifest) -> None:
    spec = build_spec(loaded, "plain", command=Command(mode="exec", argv=("true",)), environ={})
    result = plan(spec, EngineFacts(version="27.0.1", runtimes=frozenset({"runc", "runsc"})))
    assert result.runtime == "runsc"
    assert result.warnings == ()


def test_old_engines_are_warned_about(loaded: manifest.Manifest) -> None:
    spec = build_spec(loaded, "plain", command=Command(), environ=LOGIN)
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
    spec = build_spec(manifest.load([path]), "a", command=Command(), environ=LOGIN)
    assert spec.skills == (project / "skills/s",)
    assert spec.prompt_file == project / "p.md"


def test_a_bare_skill_name_is_found_as_claude_bottle_finds_it(
    write_manifest: Callable[..., Path], isolated_home: Path, tmp_path: Path
) -> None:
    """Next to the manifest first, then its .claude/skills/, then ~/.claude/skills/."""
    project = tmp_path / "project"
    for where in (project / ".claude/skills/both", isolated_home / ".claude/skills/both"):
        where.mkdir(parents=True)
        (where / "SKILL.md").write_text("---\nname: both\n---\n")
    (isolated_home / ".claude/skills/mine").mkdir(parents=True)
    (isolated_home / ".claude/skills/mine/SKILL.md").write_text("---\nname: mine\n---\n")
    path = write_manifest(
        {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b", "skills": ["both", "mine"]}}}
    )
    spec = build_spec(manifest.load([path]), "a", command=Command(), environ=LOGIN)
    assert spec.skills == (project / ".claude/skills/both", isolated_home / ".claude/skills/mine")
    missing = write_manifest(
        {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b", "skills": ["nowhere"]}}}
    )
    with pytest.raises(ManifestError, match=r"skills\[0\]: .*nowhere has no SKILL.md") as error:
        build_spec(manifest.load([missing]), "a", command=Command(), environ=LOGIN)
    assert "~/.claude/skills/" in str(error.value.hint)


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


BARE = {"bottles": {"b": {}}, "agents": {"a": {"bottle": "b"}}}


@pytest.mark.parametrize(
    ("environ", "variable", "header", "injected"),
    [
        (LOGIN, "CLAUDE_BOTTLE_OAUTH_TOKEN", "Authorization", f"Bearer {OAUTH_TOKEN}"),
        ({"RBOTTLE_OAUTH_TOKEN": OAUTH_TOKEN}, "RBOTTLE_OAUTH_TOKEN", "Authorization", None),
        (LOGIN | {"ANTHROPIC_API_KEY": "sk-ant-api"}, "CLAUDE_BOTTLE_OAUTH_TOKEN", None, None),
        ({"ANTHROPIC_API_KEY": "sk-ant-api\n"}, "ANTHROPIC_API_KEY", "x-api-key", "sk-ant-api"),
    ],
)
def test_a_bottle_without_a_claude_route_logs_in_from_the_local_environment(
    write_manifest: Callable[..., Path],
    environ: dict[str, str],
    variable: str,
    header: str | None,
    injected: str | None,
) -> None:
    loaded = manifest.load([write_manifest(BARE)])
    spec = build_spec(loaded, "a", command=Command(mode="print", prompt="hi"), environ=environ)
    route = spec.anthropic_route
    assert route is not None
    assert (route.name, route.upstream, route.login) == (
        "anthropic",
        "https://api.anthropic.com/",
        variable,
    )
    [(name, value)] = route.inject.items()
    assert name == (header or name) and value.source == f"from ${variable}"
    assert value.value is not None
    if injected:
        assert value.value.get_secret_value() == injected
    kind = "API key" if variable == "ANTHROPIC_API_KEY" else "subscription token"
    data = plan(spec, None).to_dict()
    assert data["anthropic_credential"] == (
        f"{kind} from ${variable}, via the credential proxy to https://api.anthropic.com/"
    )
    assert data["cred_routes"][0]["added_from"] == variable
    assert OAUTH_TOKEN not in json.dumps(data) and "sk-ant-api" not in json.dumps(data)


def test_a_dry_run_names_the_login_variable_and_reads_no_value(
    write_manifest: Callable[..., Path],
) -> None:
    loaded = manifest.load([write_manifest(BARE)])
    spec = build_spec(loaded, "a", command=Command(), environ=LOGIN, resolve_secrets=False)
    route = spec.anthropic_route
    assert route is not None and route.inject["Authorization"].value is None


def test_without_any_credential_claude_code_runs_are_refused_and_commands_are_not(
    write_manifest: Callable[..., Path],
) -> None:
    loaded = manifest.load([write_manifest(BARE)])
    for command in (Command(), Command(mode="print", prompt="hi")):
        with pytest.raises(ManifestError) as info:
            build_spec(loaded, "a", command=command, environ={}, resolve_secrets=False)
        assert "bottles.b: no Anthropic credential for Claude Code: export" in info.value.message
        assert "CLAUDE_BOTTLE_OAUTH_TOKEN" in info.value.message
        assert "\n" not in info.value.message
    spec = build_spec(loaded, "a", command=Command(mode="exec", argv=("true",)), environ={})
    assert spec.routes == ()


def test_a_route_or_an_agent_credential_in_the_manifest_wins_over_the_environment(
    write_manifest: Callable[..., Path],
) -> None:
    route = {
        "name": "anthropic",
        "upstream": "https://gw.example.test",
        "role": "anthropic-base-url",
    }
    plain = {"name": "anthropic", "upstream": "https://other.example.test"}
    loaded = manifest.load(
        [
            write_manifest(
                {
                    "bottles": {
                        "routed": {"cred_proxy": {"routes": [route]}},
                        "keyed": {"env": {"ANTHROPIC_API_KEY": "${MY_KEY}"}},
                        "named": {"cred_proxy": {"routes": [plain]}},
                    },
                    "agents": {
                        "routed": {"bottle": "routed"},
                        "keyed": {"bottle": "keyed"},
                        "named": {"bottle": "named"},
                    },
                }
            )
        ]
    )
    environ = LOGIN | {"MY_KEY": "k"}
    routed = build_spec(loaded, "routed", command=Command(), environ=environ)
    assert [r.login for r in routed.routes] == [None]
    keyed = build_spec(loaded, "keyed", command=Command(), environ=environ)
    assert keyed.routes == ()
    named = build_spec(loaded, "named", command=Command(), environ=environ)
    assert [(r.name, r.login) for r in named.routes] == [
        ("anthropic", None),
        ("rbottle-anthropic", "CLAUDE_BOTTLE_OAUTH_TOKEN"),
    ]


def test_an_anthropic_key_held_by_the_agent_behind_egress_is_warned_about() -> None:
    from pydantic import SecretStr

    from remotebottle.backend.docker.planner import plan as make_plan
    from remotebottle.backend.spec import BottleSpec, Command, Secretish

    def spec(source: str, egress: bool) -> BottleSpec:
        return BottleSpec(
            identity="w-abcde",
            agent="w",
            bottle="b",
            command=Command(mode="exec", argv=("true",)),
            egress_enabled=egress,
            env={"ANTHROPIC_API_KEY": Secretish(source, SecretStr("sk-0123456789abcdef"))},
        )

    def warned(s: BottleSpec) -> bool:
        return any("ANTHROPIC_API_KEY" in w for w in make_plan(s, None).warnings)

    assert warned(spec("from $ANTHROPIC_API_KEY", egress=True))
    assert not warned(spec("literal", egress=True))
    assert not warned(spec("from $ANTHROPIC_API_KEY", egress=False))


HOST_GVISOR = EngineFacts(
    version="26.1.5+dfsg1",
    runtimes=frozenset({"runc", "runsc", "io.containerd.runc.v2"}),
    runtime_args={"runsc": ("--network=host",)},
    engine_id="ENGINE-1",
)
NETNS_REASON = (
    'starting container: setting up network: creating interfaces from net namespace "/proc/7/'
    'ns/net": cannot run with network enabled in root network namespace'
)


def _exec_spec(loaded: manifest.Manifest, host: str = "local") -> BottleSpec:
    return build_spec(
        loaded, "plain", command=Command(mode="exec", argv=("true",)), environ={}, host=host
    )


def test_gvisor_that_ran_a_container_is_the_runtime_with_its_arguments(
    loaded: manifest.Manifest,
) -> None:
    result = plan(_exec_spec(loaded), HOST_GVISOR, GvisorCheck(works=True))
    assert (result.runtime, result.runtime_args, result.warnings) == (
        "runsc",
        ("--network=host",),
        (),
    )
    data = result.to_dict()
    assert data["runtime_args"] == ["--network=host"]
    assert data["engine"] == {
        "version": "26.1.5+dfsg1",
        "cve_2024_29018": "fixed",
        "runtimes": {"runc": [], "runsc": ["--network=host"]},
        "gvisor": "works",
        "gvisor_reason": None,
    }
    assert describe(result) == (
        "engine: Docker 26.1.5+dfsg1 (CVE-2024-29018 fixed); runtime: runsc --network=host"
        " (gVisor) for the agent and its sidecars"
    )


def test_gvisor_not_checked_yet_is_planned_and_said_to_be_checked(
    loaded: manifest.Manifest,
) -> None:
    result = plan(_exec_spec(loaded), HOST_GVISOR)
    assert result.runtime == "runsc" and result.engine is not None
    assert result.engine.gvisor == "unchecked"
    assert describe_runtime(result).endswith(", once a container runs under it (else runc)")


def test_a_registered_gvisor_that_cannot_run_falls_back_to_runc_saying_why(
    loaded: manifest.Manifest,
) -> None:
    facts = replace(HOST_GVISOR, runtime_args={})
    result = plan(_exec_spec(loaded), facts, GvisorCheck(works=False, reason=NETNS_REASON))
    assert result.runtime == "runc" and result.runtime_args == ()
    assert result.engine is not None and result.engine.gvisor == "fails"
    (warning,) = result.warnings
    assert warning.startswith(
        "gVisor (runsc) is registered on the engine but a container did not run under it:"
        " starting container: setting up network"
    )
    assert "google/gvisor#10704" in warning and "--network=host" in warning
    assert "runc (gVisor is registered but a container did not run under it)" in describe(result)


def test_an_unchecked_plan_is_settled_by_the_check_at_launch(loaded: manifest.Manifest) -> None:
    unchecked = plan(_exec_spec(loaded), HOST_GVISOR)
    ran = checked(unchecked, HOST_GVISOR, GvisorCheck(works=True))
    assert ran.runtime == "runsc" and ran.engine is not None and ran.engine.gvisor == "works"
    failed = checked(unchecked, HOST_GVISOR, GvisorCheck(works=False, reason="platform refused"))
    assert failed.runtime == "runc" and failed.engine is not None
    assert (failed.engine.gvisor, failed.engine.gvisor_reason) == ("fails", "platform refused")
    assert failed.warnings[-1].startswith(
        "gVisor (runsc --network=host) is registered on the engine but a container did not run"
        " under it: platform refused: the bottle runs on runc"
    )
    assert "10704" not in failed.warnings[-1]
    assert checked(failed, HOST_GVISOR, GvisorCheck(works=True)) is failed


OLD = EngineFacts(version="20.10.24+dfsg1", runtimes=frozenset({"runc"}))


def test_a_hosts_old_engine_is_refused_unless_allowed() -> None:
    remote = HostTarget("vm1", SshHost(provider="ssh", address="vm1.example"))
    said: list[str] = []
    with pytest.raises(EngineTooOld) as refused:
        check_engine(remote, OLD, allowed=False, progress=said.append)
    assert "Docker 20.10.24+dfsg1 on vm1 is older than 25.0.5" in refused.value.message
    assert "CVE-2024-29018" in refused.value.message
    assert "--allow-old-engine" in refused.value.hint
    check_engine(remote, OLD, allowed=True, progress=said.append)
    assert said == ["Docker 20.10.24+dfsg1 on vm1: started anyway, as --allow-old-engine asks"]
    check_engine(remote, HOST_GVISOR, allowed=False, progress=said.append)
    assert len(said) == 1


def test_this_machines_old_engine_is_warned_about_not_refused(
    loaded: manifest.Manifest,
) -> None:
    said: list[str] = []
    check_engine(
        HostTarget("local", LocalHost(provider="local")), OLD, allowed=False, progress=said.append
    )
    assert said == []
    result = plan(_exec_spec(loaded), OLD)
    assert result.engine is not None and result.engine.leaks_internal_dns
    assert result.to_dict()["engine"]["cve_2024_29018"] == "affected"
    assert any(w.endswith("(CVE-2024-29018): upgrade the engine") for w in result.warnings)
    assert describe_engine(result) == (
        "Docker 20.10.24+dfsg1: older than 25.0.5, leaks DNS from internal networks"
        " (CVE-2024-29018)"
    )
