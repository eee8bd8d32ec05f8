"""Keep a session on a remote engine through a network cut: notice, reconnect, go on.

`stay_attached` is the session's stream with that around it.

`LinkWatch` pings the VM's engine through the tunnel; when it stops answering, the
watch closes the SSH connection, so that the session's stream over it ends at once
instead of hanging. `reconnect` then connects again with backoff (the same
`SshConnection` object: the tunnel and the heartbeat carry on over it) until the link
is back or the limit passes. The bottle on the VM never notices.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

import docker
import docker.errors

from remotebottle.errors import RemoteBottleError
from remotebottle.hosts.engine import Engine, RemoteLink
from remotebottle.ops.replay import Shown
from remotebottle.ops.stream import SessionEnd, attach_tty, follow_output

Progress = Callable[[str], None]

PING_INTERVAL = 3.0  # seconds between pings
PING_TIMEOUT = 4  # a ping not answered within this counts as a miss
MISSES = 2  # consecutive misses that mean the link is down
RECONNECT_LIMIT = 600.0  # default: give up after 10 minutes without the host
_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)
_CONNECT_TIMEOUT = 10.0


class LinkGone(RemoteBottleError):
    """The host stayed unreachable for longer than the reconnect limit."""


class LinkWatch:
    """Pings the engine at the end of `link` until stopped; sets `lost` when it goes quiet.

    Use it as a context manager around a session's stream. `rearm()` after a reconnect.
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
        self._misses = misses
        # The engine's API version is known already: asking it again here could time out.
        self._client = docker.DockerClient(
            base_url=link.tunnel.url, timeout=timeout, version=version
        )
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rbottle-link-watch", daemon=True)

    def _run(self) -> None:
        missed = 0
        while not self._stop.wait(self._interval):
            if self.lost.is_set():
                continue
            if self._answers():
                missed = 0
                continue
            missed += 1
            if missed >= self._misses:
                missed = 0
                self.lost.set()
                # Ends every stream over the connection now (an attach would hang for the
                # kernel's TCP timeouts otherwise); `reconnect` opens it again.
                self._link.conn.close()

    def _answers(self) -> bool:
        try:
            self._client.api.ping()
        except (docker.errors.DockerException, OSError):
            return False
        return True

    def rearm(self) -> None:
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


def stay_attached(
    engine: Engine,
    container_id: str,
    *,
    tty: bool,
    progress: Progress,
    redraw: bool = False,
    on_attached: Callable[[], None] | None = None,
    limit: float = RECONNECT_LIMIT,
) -> SessionEnd:
    """The session's stream (`attach_tty` or `follow_output`), attached again after each
    network cut until the agent exits, the user detaches, or the host stays away longer
    than `limit` seconds.

    Raises:
        LinkGone: the host did not come back in time (the bottle is still there).
    """
    shown = Shown()

    def attach(lost: threading.Event | None, again: bool) -> SessionEnd:
        hook = None if again else on_attached
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
    with LinkWatch(link, version=engine.client.api.api_version) as watch:
        end = attach(watch.lost, again=False)
        while end.link_lost:
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
            end = attach(watch.lost, again=True)
    return end
