"""Keep a session on a remote engine through a network cut: notice, reconnect, go on.

`stay_attached` is the session's stream with that around it.

`LinkWatch` pings the VM's engine through the tunnel; when it stops answering, the
watch asks whether the host itself still answers over SSH, then closes the SSH
connection, so that the session's stream over it ends at once instead of hanging.

- The host did not answer (a network cut, a VM gone): `reconnect` connects again with
  backoff (the same `SshConnection` object: the tunnel and the heartbeat carry on over
  it) until the link is back or the limit passes. The bottle on the VM never notices.
- The host answered but its engine did not (dockerd restarting, stopped, wedged): that
  is no network cut, and waiting out the reconnect limit would not help. `await_engine`
  (`ops/engine_wait`) waits a short while for the engine, then looks at the bottle: still
  running (the engine kept it, `live-restore`), the stream goes on; stopped or removed,
  or no engine, the session ends with `BottleLost`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import docker
import docker.errors

from remotebottle.errors import EngineError, RemoteBottleError
from remotebottle.hosts.engine import Engine, RemoteLink
from remotebottle.ops.engine_wait import ENGINE_WAIT, await_engine, judge
from remotebottle.ops.replay import Shown
from remotebottle.ops.stream import SessionEnd, attach_tty, follow_output, replay_ended

Progress = Callable[[str], None]

PING_INTERVAL = 3.0  # seconds between pings
PING_TIMEOUT = 4  # a ping not answered within this counts as a miss
MISSES = 2  # consecutive misses that mean the link is down
RECONNECT_LIMIT = 600.0  # default: give up after 10 minutes without the host
_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)
_CONNECT_TIMEOUT = 10.0
_KEEPALIVE = "keepalive@openssh.com"  # any global request: sshd answers each one
_TUNNEL_LOG = "remotebottle.transport.docker_tunnel"


class LinkGone(RemoteBottleError):
    """The host stayed unreachable for longer than the reconnect limit."""


class LinkWatch:
    """Pings the engine at the end of `link` until stopped; sets `lost` when it goes quiet.

    Use it as a context manager around a session's stream. `rearm()` after a reconnect.
    `host_answered` says whether the host itself still answered over SSH when the engine
    went quiet.
    """

    def __init__(
        self,
        link: RemoteLink,
        *,
        interval: float = PING_INTERVAL,
        timeout: int = PING_TIMEOUT,
        misses: int = MISSES,
        version: str | None = None,
    ) -> None:
        self._link = link
        self._interval = interval
        self._timeout = timeout
        self._misses = misses
        # The engine's API version is known already: asking it again here could time out.
        self._client = docker.DockerClient(
            base_url=link.tunnel.url, timeout=timeout, version=version
        )
        self.lost = threading.Event()
        self.host_answered = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rbottle-link-watch", daemon=True)

    def _run(self) -> None:
        missed = 0
        while not self._stop.wait(self._interval):
            if self.lost.is_set():
                missed = 0
                continue
            if self._answers():
                missed = 0
                continue
            missed += 1
            if missed >= self._misses:
                missed = 0
                self.trip()

    def trip(self) -> None:
        """Mark the link lost, noting whether the host still answers over SSH, and end
        every stream over it (an attach would hang for the kernel's TCP timeouts
        otherwise); `reconnect` opens the connection again. Once until `rearm`."""
        with self._lock:
            if self.lost.is_set():
                return
            self.host_answered = self._host_answers()
            self.lost.set()
            self._link.conn.close()

    def _answers(self) -> bool:
        try:
            self._client.api.ping()
        except (docker.errors.DockerException, OSError):
            return False
        return True

    def _host_answers(self) -> bool:
        """Whether sshd answers a request on the connection within the ping timeout."""
        try:
            transport = self._link.conn.transport
        except RemoteBottleError:
            return False
        answered = threading.Event()

        def ask() -> None:
            try:
                transport.global_request(_KEEPALIVE, wait=True)  # a refusal is an answer too
            except Exception:  # the connection broke: no answer
                return
            if transport.is_active():
                answered.set()

        threading.Thread(target=ask, name="rbottle-link-ask", daemon=True).start()
        return answered.wait(self._timeout)

    def inspect(self, container_id: str) -> Mapping[str, Any]:
        """The container's `State`, asked with the watch's short timeout."""
        state: Mapping[str, Any] = self._client.api.inspect_container(container_id)["State"]
        return state

    def rearm(self) -> None:
        self.host_answered = False
        self.lost.clear()

    def __enter__(self) -> LinkWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)
        self._client.close()


def reconnect(
    link: RemoteLink,
    *,
    host: str,
    limit: float = RECONNECT_LIMIT,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Connect to `host` again, with backoff, for up to `limit` seconds.

    Returns:
        The seconds it took.

    Raises:
        LinkGone: the host did not come back within `limit`.
    """
    started = time.monotonic()
    attempt = 0
    last = ""
    while True:
        try:
            link.conn.connect(timeout=_CONNECT_TIMEOUT)
            link.reconnected()
            return time.monotonic() - started
        except RemoteBottleError as exc:
            last = exc.message
        elapsed = time.monotonic() - started
        if elapsed >= limit:
            raise LinkGone(
                f"lost the link to {host} for {elapsed:.0f} s, giving up: {last}",
            )
        pause = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
        attempt += 1
        sleep(min(pause, max(0.0, limit - elapsed)))


class _LeftToTheWatch(logging.Filter):
    """Drops the tunnel's records (unless --debug): while the link watch runs, it says what
    happened to the link, once; the tunnel would log every connection it cannot open,
    mid-screen during a terminal session."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger().isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def _tunnel_quiet() -> Iterator[None]:
    logger, quiet = logging.getLogger(_TUNNEL_LOG), _LeftToTheWatch()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _running(engine: Engine, container_id: str) -> bool:
    try:
        return bool(engine.client.api.inspect_container(container_id)["State"].get("Running"))
    except docker.errors.NotFound:
        return False
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(f"could not inspect {container_id[:12]}: {exc}") from None


def stay_attached(
    engine: Engine,
    container_id: str,
    *,
    tty: bool,
    progress: Progress,
    redraw: bool = False,
    on_attached: Callable[[], None] | None = None,
    limit: float = RECONNECT_LIMIT,
    engine_wait: float = ENGINE_WAIT,
) -> SessionEnd:
    """The session's stream (`attach_tty` or `follow_output`), attached again after each
    network cut until the agent exits, the user detaches, or the host stays away longer
    than `limit` seconds; an engine that goes quiet while its host answers is waited for
    `engine_wait` seconds (`await_engine`).

    Raises:
        LinkGone: the host did not come back in time (the bottle is still there).
        BottleLost: the host answers, but the bottle stopped or vanished with its engine,
            or the engine stays silent.
    """
    shown = Shown()

    def attach(lost: threading.Event | None, again: bool) -> SessionEnd:
        hook = None if again else on_attached
        if again and not _running(engine, container_id):
            # It ended while we were away: its output and status, not a stream.
            return replay_ended(engine.client, container_id, tty=tty, shown=shown)
        if tty:
            return attach_tty(
                engine.client,
                container_id,
                redraw=redraw or again,
                on_attached=hook,
                shown=shown,
                lost=lost,
            )
        return follow_output(engine.client, container_id, on_attached=hook, shown=shown, lost=lost)

    link = engine.remote
    if link is None:
        return attach(None, again=False)
    host = engine.host.name

    def relink() -> None:
        if not link.conn.is_active():
            reconnect(link, host=host, limit=limit)

    with LinkWatch(link, version=engine.client.api.api_version) as watch, _tunnel_quiet():
        again = False
        while True:
            failed: EngineError | None = None
            try:
                end = attach(watch.lost, again=again)
            except EngineError as exc:  # the engine's connection broke before the watch saw
                failed = exc
                watch.trip()
            if failed is None and not end.link_lost:
                return end
            again = True
            if watch.host_answered:
                try:
                    state, at_once = await_engine(
                        lambda: watch.inspect(container_id),
                        host=host,
                        wait=engine_wait,
                        relink=relink,
                        waiting=lambda: progress(
                            f"the Docker engine on {host} stopped answering, though {host}"
                            f" itself does: waiting up to {engine_wait:.0f} s for it"
                        ),
                    )
                except KeyboardInterrupt:
                    raise LinkGone(f"stopped waiting for the Docker engine on {host}") from None
                if failed is not None and at_once:  # the engine was never away
                    if state.get("Running"):
                        raise failed  # the stream failed for reasons of its own
                    return replay_ended(engine.client, container_id, tty=tty, shown=shown)
                if not state.get("Running"):
                    with contextlib.suppress(EngineError):  # the rest of what it printed
                        replay_ended(engine.client, container_id, tty=tty, shown=shown)
                judge(state, host=host)
                progress(f"the Docker engine on {host} answers again: attaching again")
            else:
                progress(
                    f"lost the link to {host}: the bottle keeps running there; reconnecting"
                    f" (for up to {limit / 60:.0f} min; Ctrl-C stops trying)"
                )
                try:
                    took = reconnect(link, host=host, limit=limit)
                except KeyboardInterrupt:
                    raise LinkGone(f"stopped reconnecting to {host}") from None
                progress(f"the link to {host} is back after {took:.0f} s: attaching again")
            watch.rearm()
