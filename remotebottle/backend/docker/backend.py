"""DockerBottleBackend: a bottle on whatever engine its `docker.DockerClient` reaches.

Launch order: images -> networks -> vault -> sidecars (egress proxy, credential
proxy, git gate; each grants the agent env, files, CAs) -> agent (created, files
put in, started, setup delivered through tmpfs). Teardown finds
everything by the identity label, so a half-made bottle is removed as well
(`removal`); the agent's transcript is saved and restored by `transcript`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from remotebottle.backend.base import Bottle, BottleBackend, BottleInfo, CleanupPlan
from remotebottle.backend.docker import (
    credproxy,
    egress,
    gitgate,
    provision,
    removal,
    supervisor,
    transcript,
)
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
    checked,
    describe,
    gvisor_fallback_warning,
)
from remotebottle.backend.docker.planner import plan as make_plan
from remotebottle.backend.docker.sidecar import HARDENING, AgentGrant, SidecarSite
from remotebottle.backend.docker.streams import exec_with_stdin, put_archive, read_file
from remotebottle.backend.docker.vault import Vault
from remotebottle.backend.spec import BottlePlan, BottleSpec
from remotebottle.errors import BottleError, EngineError, TeardownError
from remotebottle.interrupts import no_interrupts, termination_as_interrupt
from remotebottle.timing import phase

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
    before_agent_start: Callable[[BottleNetworks], None] | None = None
    image_lines: str | None = None
    upstream_ca_certs: tuple[bytes, ...] = ()


INHIBIT_HOST_ADDRESS = "com.docker.network.bridge.inhibit_ipv4"


class DockerBottleBackend(BottleBackend):
    def __init__(self, client: docker.DockerClient, progress: Progress | None = None) -> None:
        self.client = client
        self._progress = progress or (lambda _msg: None)

    # -- planning ---------------------------------------------------------

    def engine_facts(self) -> EngineFacts:
        """The engine's version and runtimes.

        Raises:
            EngineError: the engine did not answer.
        """
        return engine_facts(self.client)

    def settle(self, confirmed: BottlePlan, facts: EngineFacts) -> BottlePlan:
        """The plan the user confirmed, on this engine: the same spec and images, with the
        engine's version and the runtime the bottle gets (whether gVisor runs a container
        here is checked now when the engine has an image to check with, else at launch)."""
        spec = confirmed.spec
        gvisor = known_gvisor_check(facts) if facts.has_gvisor else None
        if facts.has_gvisor and gvisor is None:
            image = gvisor_check_image(self.client)
            if image is not None:
                gvisor = self._check_gvisor(spec, facts, image)
        result = make_plan(spec, facts, gvisor)
        self._progress(describe(result))
        if gvisor is not None and not gvisor.works:
            # Not in any preflight: planning before connecting runs nothing on the engine.
            self._progress(f"warning: {gvisor_fallback_warning(facts, gvisor)}")
        return result

    def prepare(self, spec: BottleSpec) -> BottlePlan:
        """Plan `spec` on this engine in one step (`settle` of a plan made here).

        Raises:
            EngineError: the engine did not answer.
        """
        return self.settle(make_plan(spec, None), self.engine_facts())

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
                with phase("launch"):
                    bottle = self._create(plan, opts)
                yield bottle
        finally:
            if bottle is None or not bottle.keep:
                with no_interrupts():
                    self._progress(f"removing bottle {plan.spec.identity}")
                    with phase("teardown"):
                        self.teardown(plan.spec.identity, settle=bottle is None)

    def _create(self, plan: BottlePlan, opts: LaunchOptions) -> Bottle:
        spec = plan.spec
        ident = spec.identity
        client = self.client
        # Sidecars run on the shipped agent image; only the agent gets its capabilities.
        with phase("images"):
            base_image = build_agent_image(client, self._progress)
            agent_image = base_image
            if opts.image_lines:
                agent_image = build_derived_image(
                    client, base_image, opts.image_lines, self._progress
                )
            if plan.images.egress:
                ensure_pulled(client, plan.images.egress, self._progress)
        if plan.engine is not None and plan.engine.gvisor == "unchecked":
            # Planning found no image to check gVisor with: the agent image is here now.
            with phase("gvisor check"):
                facts = engine_facts(client)
                plan = checked(plan, facts, self._check_gvisor(spec, facts, base_image))
            if plan.runtime != "runsc":
                self._progress(f"warning: {plan.warnings[-1]}")
        # The agent and the sidecars that serve it share the plan's runtime; the vault
        # holder stays on runc (planner.py says why).
        runtime: dict[str, Any] = {"runtime": "runsc"} if plan.runtime == "runsc" else {}

        self._progress("creating the bottle's network")
        with phase("networks"):
            internal = self._network(f"rb-{ident}-internal", spec, internal=True)
            outside = None
            if plan.images.egress or spec.routes or spec.git:
                outside = self._network(f"rb-{ident}-egress", spec, internal=False)
        with phase("vault"):
            vault = Vault(client, ident, spec.agent, base_image)
            vault.open()
        site = SidecarSite(
            client, plan, vault, internal, outside, base_image, runtime, self._progress
        )
        # The supervisor starts beside the rest: nothing needs it before the agent's
        # command runs. Leaving the block waits for it, failed launch or not, so that
        # teardown finds its container.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rbottle-launch") as beside:
            supervising = beside.submit(_timed, "supervisor", supervisor.start, site)
            grant = supervisor.grant()
            if outside is not None:
                proxy_address = None
                upstream_cas = (extra_ca_certs(), *opts.upstream_ca_certs)
                if plan.images.egress:
                    sidecars = (credproxy.ALIAS,) if spec.routes else ()
                    with phase("egress proxy"):
                        proxy_grant, proxy_address = egress.start(site, upstream_cas, sidecars)
                    grant |= proxy_grant
                with phase("credential proxy"):
                    grant |= credproxy.start(site, proxy_address, upstream_cas)
                if spec.git:
                    with phase("git gate"):
                        grant |= gitgate.start(site)
            if opts.before_agent_start:
                opts.before_agent_start(
                    BottleNetworks(ident, spec.agent, internal.id, outside.id if outside else None)
                )
            self._progress("starting the agent")
            with phase("agent"):
                agent_id = self._start_agent(client, plan, opts, agent_image, internal, grant)
            grant |= supervising.result()
        with phase("sidecars ready"):
            for ready in grant.ready:
                ready()
        return Bottle(identity=ident, agent_container=agent_id, plan=plan)

    def _start_agent(
        self,
        client: docker.DockerClient,
        plan: BottlePlan,
        opts: LaunchOptions,
        agent_image: str,
        internal: Any,
        grant: AgentGrant,
    ) -> str:
        """Create, fill and start the agent's container, and run its setup; its id."""
        spec, ident = plan.spec, plan.spec.identity
        runtime: dict[str, Any] = {"runtime": "runsc"} if plan.runtime == "runsc" else {}
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
        put_archive(agent, provision.AGENT_HOME, provision.home_archive(spec, grant.home_files))
        if spec.cwd is not None:
            put_archive(agent, provision.WORKDIR, provision.workdir_archive(spec.cwd))
        if opts.transcript:
            transcript.restore(agent, opts.transcript)
        if grant.ca_certs:
            bundle = read_file(agent, provision.CA_BUNDLE)
            put_archive(
                agent,
                provision.CA_BUNDLE_DIR,
                provision.trust_bundle_archive(bundle, grant.ca_certs),
            )
        agent.start()
        code, out, err = exec_with_stdin(
            client,
            agent.id,
            ["sh", "-c", provision.SETUP_SCRIPT],
            provision.env_file(spec),
            user=str(provision.AGENT_UID),
        )
        if code != 0:
            detail = (err or out).decode(errors="replace").strip()[:300]
            raise BottleError(f"setting up the agent failed (exit {code}): {detail}")
        return str(agent.id)

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
        """Save the agent's ~/.claude/projects to `dest` as a tar (see `transcript.save`)."""
        return transcript.save(self.client, container_id, dest, self._progress)

    def snapshot_transcript(self, container_id: str) -> bytes | None:
        """`save_transcript`, in memory, for callers that want the bytes."""
        return transcript.snapshot(self.client, container_id, self._progress)

    # -- finding and removing ------------------------------------------------

    def teardown(self, identity: str, *, settle: bool = False) -> None:
        """Remove everything labelled with `identity` (see `removal.teardown`)."""
        removal.teardown(self.client, identity, settle=settle)

    def list_active(self) -> list[BottleInfo]:
        return removal.list_active(self.client)

    def prepare_cleanup(self) -> CleanupPlan:
        return removal.leftovers(self.client)

    def cleanup(self, plan: CleanupPlan) -> None:
        leaked = removal.remove(self.client, plan)
        if leaked:
            raise TeardownError(
                f"could not remove {', '.join(leaked)}",
                hint="check `docker ps -a` for what holds them",
            )


def _timed(name: str, run: Callable[[SidecarSite], AgentGrant], site: SidecarSite) -> AgentGrant:
    with phase(name):
        return run(site)
