"""The Fly Machines REST API, as the Fly provider uses it: one authenticated session per
app (token from `FLY_API_TOKEN`, never sent over plain http off loopback or Fly's private
network), JSON in and out, and one-line errors that say what to do.

API reference: https://fly.io/docs/machines/api/.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests

from remotebottle.errors import HostError, ProvisionError

DEFAULT_API = "https://api.machines.dev"


class FlyApiError(ProvisionError):
    """The Machines API refused a request or could not be reached."""

    def __init__(self, message: str, hint: str = "", status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status


class FlyAuthError(HostError):
    """The token is invalid or has no access to the app."""


class FlyAppError(HostError):
    """The configured app does not exist (or the token cannot see it)."""


def _api_base(explicit: str | None) -> str:
    """The API's base URL; plain http only to loopback or Fly's private `_api.internal`."""
    base = (explicit or os.environ.get("FLY_API_HOSTNAME") or DEFAULT_API).rstrip("/")
    if "://" not in base:
        base = "https://" + base
    parsed = urllib.parse.urlsplit(base)
    host = parsed.hostname or ""
    if parsed.scheme == "http" and not (_is_loopback(host) or host.endswith(".internal")):
        raise HostError(
            f"refusing to send the Fly API token over plain http to {host}",
            hint="use https:// in FLY_API_HOSTNAME (or unset it for https://api.machines.dev)",
        )
    if parsed.scheme not in ("http", "https"):
        raise HostError(f"FLY_API_HOSTNAME is not an http(s) URL: {base}")
    return base.removesuffix("/v1") + "/v1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token() -> str:
    token = os.environ.get("FLY_API_TOKEN", "").strip()
    if not token:
        raise HostError(
            "FLY_API_TOKEN is not set: the Fly provider needs an API token",
            hint="export FLY_API_TOKEN=$(fly tokens create deploy -a <app>)  (see docs/fly.md)",
        )
    return token


def _auth_header(token: str) -> str:
    # Macaroon tokens from `fly tokens create` carry their own scheme ("FlyV1 fm2_...").
    return token if token.startswith("FlyV1 ") else f"Bearer {token}"


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    text = body.get("error") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        text = response.text or response.reason or ""
    return " ".join(text.split())[:200]


class FlyApi:
    """The few Machines API calls the provider makes, with one-line errors."""

    def __init__(self, app: str, api_url: str | None = None, request_timeout: float = 30.0) -> None:
        self.app = app
        self.base = _api_base(api_url)
        self.request_timeout = request_timeout
        self._session: requests.Session | None = None

    def _http(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            session.headers["Authorization"] = _auth_header(_token())
            session.headers["User-Agent"] = "remotebottle"
            self._session = session
        return self._session

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        timeout: float | None = None,
        missing_ok: bool = False,
        expect: tuple[int, ...] = (),
    ) -> Any:
        """JSON of a successful response; None for 404 when `missing_ok`, or for a status
        listed in `expect`. Anything else raises FlyApiError (HostError for auth and app)."""
        url = f"{self.base}/apps/{urllib.parse.quote(self.app, safe='')}{path}"
        where = f"{method} /v1/apps/{self.app}{path}"
        try:
            response = self._http().request(
                method,
                url,
                json=body,
                params=params,
                timeout=(10.0, timeout or self.request_timeout),
            )
        except requests.Timeout:
            raise FlyApiError(
                f"the Fly Machines API did not answer in time ({where})",
                hint="retry; if it persists see https://status.flyio.net",
            ) from None
        except requests.RequestException as exc:
            raise FlyApiError(
                f"cannot reach the Fly Machines API at {self.base}: {type(exc).__name__}",
                hint="check the network (or FLY_API_HOSTNAME)",
            ) from None
        status = response.status_code
        if status < 300:
            try:
                return response.json() if response.content else None
            except ValueError:
                raise FlyApiError(
                    f"the Fly Machines API answered {where} with something that is not JSON",
                    hint="check FLY_API_HOSTNAME and any HTTPS proxy in between",
                    status=status,
                ) from None
        if (status == 404 and missing_ok) or status in expect:
            return None
        raise self._error(status, _error_text(response), path, where)

    def _error(self, status: int, text: str, path: str, where: str) -> HostError:
        detail = f": {text}" if text else ""
        if status in (401, 403):
            return FlyAuthError(
                f"Fly rejected the API token ({status}{detail})",
                hint=f"check FLY_API_TOKEN; it needs access to the app {self.app!r}"
                f" (fly tokens create deploy -a {self.app})",
            )
        if status == 404 and path.count("/") > 1:  # a Machine or volume, not the app
            return FlyApiError(
                f"Fly has no such Machine or volume ({where}){detail}",
                hint="it may have been destroyed meanwhile (dead-man timer, another rbottle)",
                status=status,
            )
        if status == 404:
            return FlyAppError(
                f"Fly app {self.app!r} not found ({where}{detail})",
                hint=f"create it: fly apps create {self.app}  (see docs/fly.md)",
            )
        if status in (400, 422):
            return FlyApiError(
                f"Fly refused the request ({status}, {where}){detail}",
                hint="check the host entry's region, vm_size and image (docs/fly.md)",
                status=status,
            )
        if status == 429:
            return FlyApiError(
                f"Fly is rate-limiting this token (429, {where})",
                hint="wait a minute and retry",
                status=status,
            )
        return FlyApiError(
            f"the Fly Machines API failed ({status}, {where}){detail}",
            hint="retry; if it persists see https://status.flyio.net",
            status=status,
        )
