"""The supervisor's proposals: what an agent may file (validated to a canonical form) and
the board where they wait for the operator's decision. See supervisor.py for the servers.

Proposals carry names and hosts only: a payload with anything that looks like a
secret value (header values, credentials in a URL) is refused when filed. Host names and
upstreams follow `remotebottle.hostnames`, shipped next to the supervisor with the
`publicsuffixlist` it needs; an agent's are held to more than the operator's edits.
The operator's machine checks payloads with this very module (remotebottle.supervise.rules).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import threading
import unicodedata
from typing import Any, NamedTuple

from remotebottle import hostnames

KINDS = ("egress", "cred-route", "capability")
DEFAULT_TIMEOUT = 600
MAX_TIMEOUT = 3600
MAX_PENDING = 16
MAX_REASON = 2000
MAX_HOSTS = 32
MAX_PACKAGES = 64
MAX_DOCKERFILE = 16 * 1024

# Matched whole (`fullmatch`): `$` would let a trailing newline through.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,99}(=[A-Za-z0-9.+~:_-]{1,100})?")
ROLES = (None, "anthropic-base-url")
# A fragment adds to the image: nothing fetched by the build itself (ADD, COPY --from),
# no new stage, user, entrypoint or other change to how the bottle runs.
DOCKERFILE_INSTRUCTIONS = ("RUN", "ENV", "WORKDIR", "ARG", "LABEL")


class Invalid(ValueError):
    """A proposal the supervisor refuses to file; the message goes back to the agent."""


class Rules(NamedTuple):
    """Whose payload is checked: an agent's proposal, or the operator's edit of one.

    `plain_http`: `name:port` upstreams allowed over plain http (the test suite's only).
    """

    operator: bool = False
    plain_http: frozenset[str] = frozenset()


AGENT = Rules()


def _text(value: Any, what: str, limit: int) -> str:
    """Text the operator will read: no terminal control sequences (newlines and tabs pass)."""
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"{what} must be text of at most {limit} characters")
    if any((ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) < 160 for c in value):
        raise Invalid(f"{what} must not contain control characters")
    # Bidi overrides and other invisible format characters could disguise text.
    if any(unicodedata.category(c) == "Cf" for c in value):
        raise Invalid(f"{what} must not contain invisible formatting characters")
    return value


def _keys(payload: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(payload) - allowed)
    if extra:
        raise Invalid(f"unknown payload field(s): {', '.join(extra)}")


def _strings(value: Any, what: str, limit: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{what} must be a list of strings")
    if len(value) > limit:
        raise Invalid(f"at most {limit} {what} per proposal")
    return value


def _host(value: str, rules: Rules) -> str:
    try:
        return hostnames.check_host(value, by_agent=not rules.operator)
    except hostnames.Refused as exc:
        raise Invalid(str(exc)) from None


def _egress(payload: dict[str, Any], rules: Rules) -> dict[str, Any]:
    _keys(payload, {"hosts"})
    hosts = _strings(payload.get("hosts"), "hosts", MAX_HOSTS)
    if not hosts:
        raise Invalid("name at least one host")
    return {"hosts": list(dict.fromkeys(_host(h, rules) for h in hosts))}


def _cred_route(payload: dict[str, Any], rules: Rules) -> dict[str, Any]:
    headers = payload.get("headers", [])
    if isinstance(headers, dict) or any(k in payload for k in ("inject", "secrets", "values")):
        raise Invalid("a proposal carries header names only: the operator supplies the values")
    _keys(payload, {"name", "upstream", "headers", "role"})
    name = payload.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise Invalid("name must be 1-40 lowercase letters, digits, '-' or '_'")
    try:
        upstream = hostnames.check_upstream(
            payload.get("upstream"), by_agent=not rules.operator, plain_http=rules.plain_http
        )
    except hostnames.Refused as exc:
        raise Invalid(str(exc)) from None
    names = _strings(headers, "headers", 16)
    if not names:
        # A route injects something, else it is only an unscanned way out of the bottle.
        raise Invalid("name at least one header the operator will supply a value for")
    bad = [h for h in names if not _HEADER_RE.fullmatch(h)]
    if bad:
        raise Invalid(f"not a header name (values are supplied by the operator): {bad[0]!r}")
    role = payload.get("role")
    if role not in ROLES:
        raise Invalid("role must be null or 'anthropic-base-url'")
    return {"name": name, "upstream": upstream, "headers": names, "role": role}


def _capability(payload: dict[str, Any], _rules: Rules) -> dict[str, Any]:
    _keys(payload, {"packages", "dockerfile"})
    packages = _strings(payload.get("packages", []), "packages", MAX_PACKAGES)
    bad = [p for p in packages if not _PACKAGE_RE.fullmatch(p)]
    if bad:
        raise Invalid(f"not a Debian package name: {bad[0]!r}")
    dockerfile = _text(payload.get("dockerfile", ""), "dockerfile", MAX_DOCKERFILE)
    if len(dockerfile.encode()) > MAX_DOCKERFILE:
        raise Invalid(f"the Dockerfile fragment is over {MAX_DOCKERFILE} bytes")
    if not packages and not dockerfile.strip():
        raise Invalid("name packages, a Dockerfile fragment, or both")
    refused = [i for i in instructions(dockerfile) if i not in DOCKERFILE_INSTRUCTIONS]
    if refused:
        raise Invalid(
            f"Dockerfile instruction {refused[0]} is not allowed in a fragment"
            f" (only {', '.join(DOCKERFILE_INSTRUCTIONS)})"
        )
    return {"packages": packages, "dockerfile": dockerfile}


def instructions(fragment: str) -> list[str]:
    """The instruction of each logical line of a Dockerfile fragment, as the builder reads
    it: comment lines and blank lines inside a continued (`\\`) line do not end it.
    Raises `Invalid` for a fragment that ends inside a continued line."""
    found: list[str] = []
    continued = False
    for raw in fragment.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not continued:
            found.append(line.split(None, 1)[0].upper())
        continued = line.endswith("\\")
    if continued:
        # The lines after the fragment (`USER agent`) would become part of its last one.
        raise Invalid("the Dockerfile fragment must not end with a continued line")
    return found


VALIDATORS = {"egress": _egress, "cred-route": _cred_route, "capability": _capability}


def validate(kind: Any, payload: Any, rules: Rules = AGENT) -> dict[str, Any]:
    """The payload in canonical form, or `Invalid` saying what is wrong."""
    if not isinstance(kind, str) or kind not in VALIDATORS:
        raise Invalid(f"unknown kind {str(kind)[:40]!r}: use one of {', '.join(KINDS)}")
    if not isinstance(payload, dict):
        raise Invalid("payload must be a JSON object")
    return VALIDATORS[kind](payload, rules)


def filing(body: Any, rules: Rules = AGENT) -> tuple[str, dict[str, Any], str, float]:
    """(kind, payload, reason, timeout) of a POST /proposals body."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    unknown = sorted(set(body) - {"kind", "payload", "reason", "timeout"})
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    kind = body.get("kind")
    payload = validate(kind, body.get("payload"), rules)
    reason = _text(body.get("reason", ""), "reason", MAX_REASON)
    timeout = body.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise Invalid("timeout must be a number of seconds")
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise Invalid(f"timeout must be between 1 and {MAX_TIMEOUT} seconds")
    return str(kind), payload, reason, float(timeout)


def log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Pending:
    def __init__(self, kind: str, payload: dict[str, Any], reason: str) -> None:
        self.id = secrets.token_hex(6)
        self.kind = kind
        self.payload = payload
        self.reason = reason
        self.created_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.answered = threading.Event()
        self.answer: dict[str, Any] = {}

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": self.payload,
            "reason": self.reason,
            "created_at": self.created_at,
        }


class Board:
    """The proposals waiting for the operator. Every change happens under one lock, so a
    decision and a timeout (or a hang-up) cannot both win."""

    def __init__(self, rules: Rules = AGENT) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self.rules = rules

    @property
    def _operator(self) -> Rules:
        return self.rules._replace(operator=True)

    def file(self, kind: str, payload: dict[str, Any], reason: str) -> Pending:
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                raise Invalid(f"{MAX_PENDING} proposals are already waiting for the operator")
            item = Pending(kind, payload, reason)
            self._pending[item.id] = item
        log("filed", id=item.id, kind=kind)
        return item

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.public() for p in self._pending.values()]

    def decide(self, pid: str, decision: Any) -> bool:
        """Answer `pid`; False when it is not pending (decided, withdrawn, timed out)."""
        if not isinstance(decision, dict) or not isinstance(decision.get("approve"), bool):
            raise Invalid("a decision needs 'approve': true or false")
        reason = _text(decision.get("reason", ""), "reason", MAX_REASON)
        with self._lock:
            item = self._pending.get(pid)
            if item is None:
                return False
            payload = item.payload
            if decision["approve"] and decision.get("payload") is not None:
                payload = validate(item.kind, decision["payload"], self._operator)
            del self._pending[pid]
            status = "approved" if decision["approve"] else "rejected"
            item.answer = {"id": pid, "status": status, "reason": reason, "payload": payload}
            item.answered.set()
        log("decided", id=pid, status=status)
        return True

    def give_up(self, item: Pending, status: str, reason: str) -> dict[str, Any]:
        """End `item` as `status` unless it was answered first; the final answer."""
        with self._lock:
            if item.answered.is_set():
                return item.answer
            self._pending.pop(item.id, None)
            item.answer = {"id": item.id, "status": status, "reason": reason, "payload": None}
            item.answered.set()
        log(status, id=item.id)
        return item.answer
