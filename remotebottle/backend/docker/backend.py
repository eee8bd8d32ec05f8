"""DockerBottleBackend: a bottle on whatever engine its `docker.DockerClient` reaches.

Launch order: images -> networks -> vault -> sidecars (egress proxy, credential
proxy, git gate; each grants the agent env, files, CAs) -> agent (created, files
put in, started, setup delivered through tmpfs). Teardown finds
everything by the identity label, so a half-made bottle is removed as well.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors

from remotebottle.backend.base import (
    Bottle,
    BottleBackend,
    BottleInfo,
    CleanupPlan,
    register,
)
from remotebottle.backend.docker import credproxy, egress, gitgate, provision, supervisor
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.engine import (
    GVISOR_CHECK_ROLE,
    EngineFacts,
    GvisorCheck,
    check_gvisor,
    engine_facts,
    gvisor_check_image,
    known_gvisor_check,
)
from remotebottle.backend.docker.images import (
    build_agent_image,
    build_derived_image,
    ensure_pulled,
    extra_ca_certs,
)
from remotebottle.backend.docker.planner import (
    check_engine_allowed,
    checked,
    describe,
    gvisor_fallback_warning,
)
from remotebottle.backend.docker.planner import plan as make_plan
from remotebottle.backend.docker.sidecar import HARDENING, SidecarSite
from remotebottle.backend.docker.streams import exec_with_stdin
from remotebottle.backend.docker.vault import Vault
from remotebottle.backend.spec import BottlePlan, BottleSpec
from remotebottle.errors import BottleError, EngineError, TeardownError, TranscriptError
from remotebottle.interrupts import no_interrupts, termination_as_interrupt
from remotebottle.safetar import (
    MIB,
    OverCap,
    cap_bytes,
    cap_hint,
    capped,
    capped_file,
    filter_archive,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BottleNetworks:
    """The bottle's network ids: `internal` holds the agent; `egress` is the proxy's way out."""

    identity: str
    agent: str
    internal: str
    egress: str | None


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch, beyond the plan.

    Attributes:
        tty: give the agent a TTY (interactive use); otherwise plain streams.
        transcript: a tar of ~/.claude/projects from an earlier session (resume); only its
            regular files and directories under projects/ are restored.
        trusted_hosts: allowlisted hosts that may resolve to private addresses
            (the demo's and the tests' own upstreams); empty in normal use.
        extra_env: non-secret env for the agent beyond the proxy settings.
        before_agent_start: called with the bottle's networks once they exist, before
            the agent starts (the demo and the tests attach their own upstreams).
        image_lines: Dockerfile lines (run as root) on top of the agent image: the bottle's
            approved capabilities; its own image is built from them.
        upstream_ca_certs: PEM CA certificates the egress and credential proxies trust for
            upstream TLS, beyond their own roots and the user's extra CAs (the tests' own
            upstreams).
    """

    tty: bool = True
    transcript: Path | None = None
    trusted_hosts: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    before_agent_start: Callable[[BottleNetworks], None] | None = None
    image_lines: str | None = None
    upstream_ca_certs: tuple[bytes, ...] = ()


INHIBIT_HOST_ADDRESS = "com.docker.network.bridge.inhibit_ipv4"
# How long an interrupted launch keeps sweeping for objects whose create was still in flight.
_SETTLE_SECONDS = 4.0


# A bottle still launching (images building, sidecars up, agent not yet started) is left
# alone by cleanup for this long.
LAUNCH_GRACE_SECONDS = 15 * 60


def _busy_identities(containers: list[Any]) -> set[str]:
    """Bottles cleanup must not touch: the agent runs, or the bottle is still launching
    (no agent that has ended, and a container of it started less than the grace ago)."""
    groups: dict[str, list[Any]] = {}
    for c in containers:
        groups.setdefault(c.labels.get(L.IDENTITY, ""), []).append(c)
    busy = set()
    for identity, group in groups.items():
        agents = [c for c in group if c.labels.get(L.ROLE) == L.ROLE_AGENT]
        running = any(a.status == "running" for a in agents)
        ended = any(a.status in ("exited", "dead") for a in agents)
        launching = not ended and any(
            c.status == "running" and _age_seconds(c) < LAUNCH_GRACE_SECONDS for c in group
        )
        if running or launching:
            busy.add(identity)
    return busy


def _age_seconds(container: Any) -> float:
    created = str(container.attrs.get("Created", ""))[:19]
    try:
        started = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0.0
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return (now - started).total_seconds()


@register("docker")
class DockerBottleBackend(BottleBackend):
    def __init__(self, client: docker.DockerClient, progress: Progress | None = None) -> None:
        self.client = client
        self._progress = progress or (lambda _msg: None)

    # -- planning ---------------------------------------------------------

    def prepare(self, spec: BottleSpec, *, allow_old_engine: bool = False) -> BottlePlan:
        """Plan `spec` on this engine: its version, and whether gVisor runs a container
        here (checked now when the engine has an image to check with, else at launch).

        Raises:
            EngineTooOld: a host's engine (not this machine's) is older than 25.0.5 and
                `allow_old_engine` is not set.
            EngineError: the engine did not answer.
        """
        facts = engine_facts(self.client)
        check_engine_allowed(spec, facts, allowed=allow_old_engine)
        gvisor = known_gvisor_check(facts) if facts.has_gvisor else None
        if facts.has_gvisor and gvisor is None:
            image = gvisor_check_image(self.client)
            if image is not None:
                gvisor = self._check_gvisor(spec, facts, image)
        result = make_plan(spec, facts, gvisor, old_engine_allowed=allow_old_engine)
        self._progress(describe(result))
        if gvisor is not None and not gvisor.works:
            # Not in any preflight: planning before connecting runs nothing on the engine.
            self._progress(f"warning: {gvisor_fallback_warning(facts, gvisor)}")
        return result

    def _check_gvisor(self, spec: BottleSpec, facts: EngineFacts, image: str) -> GvisorCheck:
        self._progress("checking that a container runs under gVisor (runsc) here")
        labels = L.labels(spec.identity, spec.agent, GVISOR_CHECK_ROLE, spec.host)
        return check_gvisor(self.client, facts, image, labels)

    # -- launching --------------------------------------------------------

    @contextlib.contextmanager
    def launch(self, plan: BottlePlan, options: LaunchOptions | None = None) -> Iterator[Bottle]:
        opts = options or LaunchOptions()
        bottle: Bottle | None = None
        try:
            with termination_as_interrupt():
                bottle = self._create(plan, opts)
                yield bottle
        finally:
            if bottle is None or not bottle.keep:
                with no_interrupts():
                    self._progress(f"removing bottle {plan.spec.identity}")
                    self.teardown(plan.spec.identity, settle=bottle is None)

    def _create(self, plan: BottlePlan, opts: LaunchOptions) -> Bottle:
        spec = plan.spec
        ident = spec.identity
        client = self.client
        # Sidecars run on the shipped agent image; only the agent gets its capabilities.
        base_image = build_agent_image(client, self._progress)
        agent_image = base_image
        if opts.image_lines:
            agent_image = build_derived_image(client, base_image, opts.image_lines, self._progress)
        if plan.images.egress:
            ensure_pulled(client, plan.images.egress, self._progress)
        if plan.engine is not None and plan.engine.gvisor == "unchecked":
            # Planning found no image to check gVisor with: the agent image is here now.
            facts = engine_facts(client)
            plan = checked(plan, facts, self._check_gvisor(spec, facts, base_image))
            if plan.runtime != "runsc":
                self._progress(f"warning: {plan.warnings[-1]}")
        # The agent and the sidecars that serve it share the plan's runtime; the vault
        # holder stays on runc (planner.py says why).
        runtime: dict[str, Any] = {"runtime": "runsc"} if plan.runtime == "runsc" else {}

        self._progress("creating the bottle's network")
        internal = self._network(f"rb-{ident}-internal", spec, internal=True)
        vault = Vault(client, ident, spec.agent, base_image)
        vault.open()
        outside = None
        if plan.images.egress or spec.routes or spec.git:
            outside = self._network(f"rb-{ident}-egress", spec, internal=False)
        site = SidecarSite(
            client, plan, vault, internal, outside, base_image, runtime, self._progress
        )
        grant = supervisor.start(site)
        if outside is not None:
            proxy_address = None
            upstream_cas = (extra_ca_certs(), *opts.upstream_ca_certs)
            if plan.images.egress:
                sidecars = (credproxy.ALIAS,) if spec.routes else ()
                proxy_grant, proxy_address = egress.start(
                    site, opts.trusted_hosts, upstream_cas, sidecars
                )
                grant |= proxy_grant
            grant |= credproxy.start(site, proxy_address, upstream_cas)
            if spec.git:
                grant |= gitgate.start(site)
        if opts.before_agent_start:
            opts.before_agent_start(
                BottleNetworks(ident, spec.agent, internal.id, outside.id if outside else None)
            )

        self._progress("starting the agent")
        no_proxy = ",".join(("localhost", "127.0.0.1", *grant.no_proxy))
        agent = self._container(
            agent_image,
            provision.agent_command(spec, resume=opts.transcript is not None),
            name=f"rb-{ident}",
            hostname=ident,
            labels=L.labels(ident, spec.agent, L.ROLE_AGENT, spec.host),
            network=internal.id,
            environment={**grant.env, "NO_PROXY": no_proxy, "no_proxy": no_proxy},
            tty=opts.tty,
            stdin_open=opts.tty,
            tmpfs={provision.SETUP_DIR: f"size=1m,mode=0700,uid={provision.AGENT_UID}"},
            working_dir=provision.WORKDIR,
            mem_limit="4g",
            pids_limit=1024,
            **runtime,
            **HARDENING,
        )
        self._put(agent, provision.AGENT_HOME, provision.home_archive(spec, grant.home_files))
        if spec.cwd is not None:
            self._put(agent, provision.WORKDIR, provision.workdir_archive(spec.cwd))
        if opts.transcript:
            self._restore_transcript(agent, opts.transcript)
        if grant.ca_certs:
            bundle = self._read_file(agent, provision.CA_BUNDLE)
            self._put(
                agent,
                provision.CA_BUNDLE_DIR,
                provision.trust_bundle_archive(bundle, grant.ca_certs),
            )
        agent.start()
        code, out, err = exec_with_stdin(
            client,
            agent.id,
            ["sh", "-c", provision.SETUP_SCRIPT],
            provision.env_file(spec, dict(opts.extra_env)),
            user=str(provision.AGENT_UID),
        )
        if code != 0:
            detail = (err or out).decode(errors="replace").strip()[:300]
            raise BottleError(f"setting up the agent failed (exit {code}): {detail}")
        return Bottle(
            identity=ident,
            agent_container=agent.id,
            plan=plan,
            extras={"sidecars": list(grant.containers)},
        )

    def _network(self, name: str, spec: BottleSpec, *, internal: bool) -> Any:
        # An --internal network still gives the host an address on its bridge (the gateway),
        # where anything the host serves on 0.0.0.0 answers the agent: a VM's sshd, a
        # laptop's dev servers. Without that address the host is not on the network at all.
        options = {INHIBIT_HOST_ADDRESS: "true"} if internal else None
        try:
            return self.client.networks.create(
                name,
                driver="bridge",
                internal=internal,
                options=options,
                labels=L.labels(spec.identity, spec.agent, L.ROLE_NETWORK, spec.host),
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not create network {name}: {exc}") from None

    def _container(self, image: str, command: list[str], **kwargs: Any) -> Any:
        try:
            return self.client.containers.create(image, command, **kwargs)
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not create container {kwargs.get('name')}: {exc}") from None

    def _put(self, container: Any, path: str, archive: bytes | BinaryIO) -> None:
        try:
            container.put_archive(path, archive)
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not copy files to {path} in the agent: {exc}") from None

    def _restore_transcript(self, container: Any, archive: Path) -> None:
        """Put a ~/.claude/projects tar back, filtered again and streamed from disk."""
        limit = cap_bytes()
        with archive.open("rb") as source, tempfile.TemporaryFile(dir=archive.parent) as safe:
            try:
                filter_archive(
                    capped_file(source, limit), safe, root="projects", owner=provision.AGENT_UID
                )
            except OverCap:
                raise TranscriptError(
                    f"{archive} is over the {limit // MIB} MiB cap: not restored",
                    hint=cap_hint("restore it"),
                ) from None
            except tarfile.TarError as exc:
                raise TranscriptError(
                    f"{archive}: not a readable transcript snapshot ({exc})",
                    hint="move it away to resume without the transcript",
                ) from None
            safe.seek(0)
            self._put(container, f"{provision.AGENT_HOME}/.claude", safe)

    def _read_file(self, container: Any, path: str) -> bytes:
        try:
            stream, _ = container.get_archive(path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.next()
                extracted = tar.extractfile(member) if member else None
                return extracted.read() if extracted else b""
        except (docker.errors.DockerException, tarfile.TarError) as exc:
            raise EngineError(f"could not read {path} from the agent image: {exc}") from None

    def release(self, bottle: Bottle) -> None:
        """Let the agent's command start; call once its output is being read."""
        try:
            result = self.client.api.exec_create(
                bottle.agent_container, provision.RELEASE_COMMAND, user=str(provision.AGENT_UID)
            )
            self.client.api.exec_start(result["Id"])
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not start the agent's command: {exc}") from None

    # -- after the session ---------------------------------------------------

    def save_transcript(self, container_id: str, dest: Path) -> bool:
        """Save the agent's ~/.claude/projects (Claude Code's transcripts and memory) to `dest`
        as a tar: streamed, capped, only its regular files and directories. False, with
        `dest` left alone, when it holds no file.

        Raises:
            TranscriptError: it is over the cap; nothing is saved.
        """
        try:
            stream, _ = self.client.api.get_archive(
                container_id, f"{provision.AGENT_HOME}/.claude/projects"
            )
        except docker.errors.NotFound:
            return False
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not copy the transcript out: {exc}") from None
        limit = cap_bytes()
        part = dest.with_name(dest.name + ".part")
        try:
            with part.open("wb") as out:
                kept = filter_archive(
                    capped(stream, limit), out, root="projects", owner=provision.AGENT_UID
                )
        except OverCap:
            part.unlink(missing_ok=True)
            raise TranscriptError(
                f"the agent's ~/.claude/projects is over the {limit // MIB} MiB cap:"
                " its transcript was not saved",
                hint=cap_hint("keep larger transcripts"),
            ) from None
        except (docker.errors.DockerException, tarfile.TarError, OSError) as exc:
            part.unlink(missing_ok=True)
            raise EngineError(f"could not copy the transcript out: {exc}") from None
        finally:
            stream.close()
        if kept.refused:
            more = " …" if len(kept.refused) > 3 else ""
            self._progress(f"transcript snapshot: not kept: {'; '.join(kept.refused[:3])}{more}")
        if not kept.files:
            part.unlink()
            return False
        part.replace(dest)
        return True

    def snapshot_transcript(self, container_id: str) -> bytes | None:
        """`save_transcript`, in memory, for callers that want the bytes."""
        with tempfile.TemporaryDirectory(prefix="rbottle-transcript-") as scratch:
            path = Path(scratch) / "projects.tar"
            return path.read_bytes() if self.save_transcript(container_id, path) else None

    # -- finding and removing ------------------------------------------------

    def teardown(self, identity: str, *, settle: bool = False) -> None:
        """Remove every container, network and volume labelled with `identity`.

        `settle` is for a launch interrupted mid-way: a create request the client gave up on
        may still complete in the engine after the first sweep, so sweep until it stays empty.
        """
        leaked = self._remove_all(L.owned_filter(identity), running_too=True)
        deadline = time.monotonic() + _SETTLE_SECONDS
        while settle and time.monotonic() < deadline:
            # A container created late keeps its volume or network busy: sweep again.
            time.sleep(0.25)
            if leaked or not self._collect(L.owned_filter(identity), running_too=True).empty:
                leaked = self._remove_all(L.owned_filter(identity), running_too=True)
        if leaked:
            raise TeardownError(
                f"could not remove {', '.join(leaked)}",
                hint="retry with `rbottle cleanup --yes`",
            )

    def _remove_all(self, filters: dict[str, Any], *, running_too: bool) -> list[str]:
        plan = self._collect(filters, running_too=running_too)
        return self._remove(plan)

    def _collect(self, filters: dict[str, Any], *, running_too: bool) -> CleanupPlan:
        client = self.client
        try:
            containers = client.containers.list(all=True, filters=filters)
            networks = client.networks.list(filters=filters)
            volumes = client.volumes.list(filters=filters)
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not list bottles: {exc}") from None
        if not running_too:
            busy = _busy_identities(containers)
            containers = [c for c in containers if c.labels.get(L.IDENTITY) not in busy]
            networks = [n for n in networks if n.attrs["Labels"].get(L.IDENTITY) not in busy]
            volumes = [
                v for v in volumes if (v.attrs.get("Labels") or {}).get(L.IDENTITY) not in busy
            ]
        return CleanupPlan(
            containers=tuple((str(c.id), str(c.name)) for c in containers),
            networks=tuple((str(n.id), str(n.name)) for n in networks),
            volumes=tuple((str(v.id), str(v.name)) for v in volumes),
        )

    def _remove(self, plan: CleanupPlan) -> list[str]:
        leaked: list[str] = []
        client = self.client
        for cid, name in plan.containers:
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    client.api.remove_container(cid, force=True, v=True)
                except docker.errors.DockerException:
                    leaked.append(f"container {name}")
        for nid, name in plan.networks:
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    # Whatever else was attached (a debugging container, say) must not pin it.
                    for endpoint in client.api.inspect_network(nid).get("Containers") or {}:
                        with contextlib.suppress(docker.errors.APIError):
                            client.api.disconnect_container_from_network(endpoint, nid, force=True)
                    client.api.remove_network(nid)
                except docker.errors.DockerException:
                    leaked.append(f"network {name}")
        for vid, name in plan.volumes:
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    client.api.remove_volume(vid, force=True)
                except docker.errors.DockerException:
                    leaked.append(f"volume {name}")
        return leaked

    def list_active(self) -> list[BottleInfo]:
        try:
            containers = self.client.containers.list(
                all=True, filters={"label": [f"{L.OWNER}=1", f"{L.ROLE}={L.ROLE_AGENT}"]}
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"could not list bottles: {exc}") from None
        return [
            BottleInfo(
                identity=c.labels.get(L.IDENTITY, "?"),
                agent=c.labels.get(L.AGENT, "?"),
                host=c.labels.get(L.HOST, "local"),
                status=c.status,
                created=str(c.attrs.get("Created", "")),
                containers=(str(c.id),),
            )
            for c in containers
        ]

    def prepare_cleanup(self) -> CleanupPlan:
        return self._collect(L.owned_filter(), running_too=False)

    def cleanup(self, plan: CleanupPlan) -> None:
        leaked = self._remove(plan)
        if leaked:
            raise TeardownError(
                f"could not remove {', '.join(leaked)}",
                hint="check `docker ps -a` for what holds them",
            )
