"""Images held by ID on a VM: placing them, and the checks that refuse a moved tag."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import docker.errors
import pytest

from remotebottle import state
from remotebottle.backend.docker.images import derived_image
from remotebottle.backend.docker.labels import IDENTITY
from remotebottle.backend.spec import BottlePlan, BottleSpec, Command, ImageRefs
from remotebottle.errors import BottleError, ImageMismatchError
from remotebottle.hosts.engine import Engine
from remotebottle.hosts.resolve import HostTarget
from remotebottle.image_pins import check_containers, check_tag, short
from remotebottle.manifest import LocalHost, SshHost
from remotebottle.ops import images as remote_images
from remotebottle.ops.images import Placed, place_images

pytestmark = pytest.mark.unit

AGENT = "remotebottle/agent:cc-1-abc"
GATE = "remotebottle/git-gate:def"
EGRESS = "ghcr.io/luckypipewrench/pipelock:2.3.0"
IDENT = "worker-ab12c"
LINES = 'RUN ["true"]\n'


def image_id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


@dataclass
class FakeImage:
    id: str


@dataclass
class FakeImages:
    tags: dict[str, str] = field(default_factory=dict)

    def get(self, ref: str) -> FakeImage:
        if ref not in self.tags:
            raise docker.errors.ImageNotFound(ref)
        return FakeImage(self.tags[ref])


@dataclass
class FakeContainer:
    name: str
    attrs: dict[str, Any]


@dataclass
class FakeContainers:
    running: list[FakeContainer] = field(default_factory=list)
    asked: list[dict[str, Any]] = field(default_factory=list)

    def list(self, **kwargs: Any) -> list[FakeContainer]:
        self.asked.append(kwargs)
        return self.running


class FakeApi:
    timeout = 60


@dataclass
class FakeEngineClient:
    """Just what the placing and the checks ask of a docker.DockerClient."""

    images: FakeImages = field(default_factory=FakeImages)
    containers: FakeContainers = field(default_factory=FakeContainers)
    api: FakeApi = field(default_factory=FakeApi)

    def close(self) -> None:
        pass


def plan(*, git: bool = False, egress: bool = True) -> BottlePlan:
    spec = BottleSpec(
        identity=IDENT, agent="worker", bottle="b", command=Command(mode="interactive")
    )
    refs = ImageRefs(agent=AGENT, egress=EGRESS if egress else None, git_gate=GATE if git else None)
    return BottlePlan(spec=spec, images=refs, runtime="runc")


def vm_engine(client: FakeEngineClient, images: str = "ship") -> Engine:
    host = HostTarget("vm1", SshHost(provider="ssh", address="vm1.example", images=images))
    return Engine(host, cast(Any, client), remote=cast(Any, object()))


@dataclass
class Made:
    """Stands in for building and pulling: records what was made, on which engine."""

    vm: FakeEngineClient
    local: FakeEngineClient
    made: list[tuple[str, str]] = field(default_factory=list)

    def on(self, client: Any) -> str:
        return "vm" if client is self.vm else "local"

    def tag(self, client: Any, ref: str) -> str:
        self.made.append((self.on(client), ref))
        images: FakeImages = client.images
        images.tags.setdefault(ref, image_id(f"{self.on(client)}:{ref}"))
        return ref


@pytest.fixture
def vm() -> FakeEngineClient:
    return FakeEngineClient()


@pytest.fixture
def local() -> FakeEngineClient:
    return FakeEngineClient()


@pytest.fixture
def made(vm: FakeEngineClient, local: FakeEngineClient, monkeypatch: pytest.MonkeyPatch) -> Made:
    record = Made(vm, local)

    def ship(source: Any, target: Any, refs: list[str], **_: Any) -> list[str]:
        sent = [r for r in refs if target.images.tags.get(r) != source.images.tags[r]]
        for ref in sent:
            target.images.tags[ref] = source.images.tags[ref]
        return sent

    monkeypatch.setattr(remote_images, "connect_local_engine", lambda: local)
    monkeypatch.setattr(remote_images, "ship_images", ship)
    monkeypatch.setattr(remote_images, "build_agent_image", lambda c, _p: record.tag(c, AGENT))
    monkeypatch.setattr(remote_images, "build_git_gate_image", lambda c, _p: record.tag(c, GATE))
    monkeypatch.setattr(remote_images, "ensure_pulled", lambda c, ref, _p: record.tag(c, ref))
    monkeypatch.setattr(
        remote_images,
        "build_derived_image",
        lambda c, base, lines, _p: record.tag(c, derived_image(base, lines)),
    )
    monkeypatch.setattr(remote_images, "has_image", lambda c, ref: ref in c.images.tags)
    return record


def place(
    engine: Engine, *, recorded: dict[str, str] | None = None, lines: str | None = None, **kw: Any
) -> tuple[Placed, list[str]]:
    said: list[str] = []
    placed = place_images(
        engine, plan(**kw), progress=said.append, image_lines=lines, recorded=recorded
    )
    return placed, said


# -- the checks ---------------------------------------------------------------------------


def test_short_is_what_docker_image_ls_shows() -> None:
    assert short("sha256:" + "0123456789ab" + "f" * 52) == "0123456789ab"


def test_check_tag_refuses_only_a_known_tag_that_moved() -> None:
    one, other = image_id("one"), image_id("other")
    check_tag("vm1", IDENT, AGENT, None, {AGENT: one})  # not on the VM: made afresh
    check_tag("vm1", IDENT, AGENT, other, {})  # first use: nothing to hold it to
    check_tag("vm1", IDENT, AGENT, one, {AGENT: one})
    with pytest.raises(ImageMismatchError) as err:
        check_tag("vm1", IDENT, AGENT, other, {AGENT: one})
    assert err.value.message == (
        f"vm1 has image {short(other)} under {AGENT}, not {short(one)} as recorded for {IDENT}:"
        " refusing to run it"
    )
    assert f"`docker image rm {AGENT}`" in err.value.hint
    assert "`rbottle env vm1`" in err.value.hint
    assert "\n" not in err.value.message + err.value.hint


def test_check_containers_holds_every_container_of_the_bottle_to_recorded_ids() -> None:
    client = FakeEngineClient()
    recorded = {AGENT: image_id("agent"), EGRESS: image_id("egress")}
    client.containers.running = [
        FakeContainer(f"rb-{IDENT}", {"Image": image_id("agent")}),
        FakeContainer(f"rb-{IDENT}-egress", {"Image": image_id("egress")}),
    ]
    check_containers(cast(Any, client), "vm1", IDENT, recorded)
    assert client.containers.asked[-1]["filters"] == {"label": f"{IDENTITY}={IDENT}"}
    assert client.containers.asked[-1]["all"] is True

    client.containers.running.append(FakeContainer(f"rb-{IDENT}-gate", {"Image": image_id("x")}))
    with pytest.raises(ImageMismatchError) as err:
        check_containers(cast(Any, client), "vm1", IDENT, recorded)
    assert err.value.message.startswith(
        f"rb-{IDENT}-gate of {IDENT} on vm1 runs image {short(image_id('x'))}, not one recorded"
    )


def test_check_containers_without_records_asks_nothing() -> None:
    client = FakeEngineClient()
    check_containers(cast(Any, client), "local", IDENT, {})
    assert client.containers.asked == []


# -- placing ------------------------------------------------------------------------------


def test_the_local_engine_places_and_records_nothing(made: Made) -> None:
    engine = Engine(HostTarget("local", LocalHost(provider="local")), cast(Any, made.local))
    assert place(engine) == (Placed(), [])
    assert made.made == []


def test_shipping_replaces_another_image_under_the_tag_and_says_so(made: Made) -> None:
    made.local.images.tags[EGRESS] = image_id("local:pipelock")
    impostor = image_id("impostor")
    made.vm.images.tags[AGENT] = impostor

    placed, said = place(vm_engine(made.vm))

    want = image_id(f"local:{AGENT}")
    assert placed.shipped == [AGENT, EGRESS]
    assert placed.ids == {AGENT: want, EGRESS: image_id("local:pipelock")}
    assert made.vm.images.tags[AGENT] == want
    assert said == [
        f"vm1 has image {short(impostor)} under {AGENT}, not this machine's {short(want)}:"
        " replacing it with this machine's"
    ]


def test_shipping_what_the_vm_has_by_id_sends_nothing(made: Made) -> None:
    made.local.images.tags[EGRESS] = image_id("pipelock")
    made.vm.images.tags.update({AGENT: image_id(f"local:{AGENT}"), EGRESS: image_id("pipelock")})
    placed, said = place(vm_engine(made.vm))
    assert placed.shipped == [] and said == []
    assert placed.ids == made.vm.images.tags


def test_egress_pulled_on_the_vm_is_held_to_its_record(made: Made) -> None:
    """The local engine has no pipelock: the VM pulls it, or has it from an earlier
    session, which must be the same image."""
    first, _ = place(vm_engine(made.vm))
    assert ("vm", EGRESS) in made.made
    assert first.ids[EGRESS] == image_id(f"vm:{EGRESS}")

    made.vm.images.tags[EGRESS] = image_id("impostor")
    with pytest.raises(ImageMismatchError, match=f"under {EGRESS}, not"):
        place(vm_engine(made.vm), recorded=first.ids)


def test_build_mode_checks_every_tag_before_making_anything(made: Made) -> None:
    made.vm.images.tags[GATE] = image_id("impostor")
    recorded = {AGENT: image_id("agent"), GATE: image_id("gate")}
    with pytest.raises(ImageMismatchError, match=f"under {GATE}"):
        place(vm_engine(made.vm, "build"), recorded=recorded, git=True)
    assert made.made == []
    assert made.local.images.tags == {}  # nothing shipped from here either


def test_build_mode_first_use_records_what_the_vm_has(made: Made) -> None:
    found = image_id("there already")
    made.vm.images.tags[AGENT] = found
    placed, _ = place(vm_engine(made.vm, "build"), egress=False)
    assert placed == Placed([], {AGENT: found})


def test_an_image_gone_from_the_vm_is_made_again_and_recorded_anew(made: Made) -> None:
    placed, _ = place(vm_engine(made.vm, "build"), recorded={AGENT: image_id("old")}, egress=False)
    assert placed.ids == {AGENT: image_id(f"vm:{AGENT}")}


def test_the_bottles_own_image_is_built_on_the_vm_and_held_to_its_record(made: Made) -> None:
    derived = derived_image(AGENT, LINES)
    first, _ = place(vm_engine(made.vm), lines=LINES, egress=False)
    assert ("vm", derived) in made.made
    assert first.ids == {AGENT: image_id(f"local:{AGENT}"), derived: image_id(f"vm:{derived}")}

    again, _ = place(vm_engine(made.vm), lines=LINES, egress=False, recorded=first.ids)
    assert again.ids == first.ids

    made.vm.images.tags[derived] = image_id("impostor")
    with pytest.raises(ImageMismatchError, match=f"under {derived}, not"):
        place(vm_engine(made.vm), lines=LINES, egress=False, recorded=first.ids)


def test_a_tag_that_moves_while_placing_is_refused(
    made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    made.vm.images.tags[AGENT] = image_id("first")

    def moved(client: Any, _progress: Callable[[str], None]) -> str:
        client.images.tags[AGENT] = image_id("second")
        return AGENT

    monkeypatch.setattr(remote_images, "build_agent_image", moved)
    with pytest.raises(ImageMismatchError, match=f"under {AGENT}"):
        place(vm_engine(made.vm, "build"), egress=False)


# -- recorded in the bottle's state ---------------------------------------------------------


def test_metadata_keeps_the_image_ids() -> None:
    meta = state.Metadata(
        identity=IDENT, agent="worker", host="vm1", started_at=state.now(), images={AGENT: "x"}
    )
    path = state.write_metadata(meta)
    assert state.read_metadata(IDENT) == meta
    data = json.loads(path.read_text())
    data["images"] = {AGENT: 7}
    path.write_text(json.dumps(data))
    with pytest.raises(BottleError, match="`images` is not a map of image IDs"):
        state.read_metadata(IDENT)
