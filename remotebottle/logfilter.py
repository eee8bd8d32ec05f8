"""Credentials out of log records, whichever logger wrote them.

With `--debug` every library logs to stderr, and some of them log credentials: botocore
prints each request's headers (`Authorization: AWS4-HMAC-SHA256 Credential=AKIA…,
Signature=…`, `X-Amz-Security-Token`), its canonical request (the session token again) and
the signature; an STS or SSO response body holds a secret key and a session token. The
`RedactSecrets` filter rewrites each record's text with those values replaced by
`[redacted]`, so the rest of the line stays useful.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
# Shorter values are left alone: replacing every "testing" would garble the log.
MIN_LITERAL = 12
# Environment variables whose values are credentials wherever they show up.
SECRET_ENV = re.compile(r"(TOKEN|SECRET|SECRET_ACCESS_KEY|API_KEY|PASSWORD)$")

# What follows a credential's name: `: `, `=`, `': b'`, `": "`, or the end of an XML tag.
# Atomic, so that a value already redacted is not matched again from a shorter separator.
_SEPARATOR = r"""(?>\\?['"]?\s*[:=]\s*(?:b?\\?['"])?|>)"""
_VALUE = rf"(?!{re.escape(REDACTED)})[^\s'\"<>&,;)}}\]\\]+"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A whole Authorization header value (AWS SigV4, Bearer, Basic, FlyV1), to its end.
    (
        re.compile(
            rf"(?i)\b((?:proxy-)?authorization{_SEPARATOR})"
            rf"(?!{re.escape(REDACTED)})[^'\"\\\r\n]+"
        ),
        rf"\1{REDACTED}",
    ),
    # A value named as a credential: header, query parameter, JSON or XML field, log line
    # (`x-amz-security-token:…`, `X-Amz-Signature=…`, `<SessionToken>…`,
    # `"secretAccessKey": "…"`, botocore's `Signature:\n…`).
    (
        re.compile(
            r"(?i)([\w-]*?(?:token|secret|secret[_-]?(?:access[_-]?)?key|password|passphrase"
            rf"|signature|credential|api[_-]?key|private[_-]?key|keymaterial){_SEPARATOR})"
            rf"{_VALUE}"
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|flyv1)\s+[^\s'\"]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bfm\d_[A-Za-z0-9_+/=-]{8,}"), REDACTED),  # Fly macaroon tokens
    # AWS access key ids (long-term AKIA…, temporary ASIA…, and the other kinds).
    (
        re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|APKA|ABIA|ACCA|AIPA)[A-Z0-9]{12,}\b"),
        REDACTED,
    ),
)


def redact(text: str, literals: Iterable[str] = ()) -> str:
    """`text` with every credential it shows replaced by `[redacted]`."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for literal in literals:
        text = text.replace(literal, REDACTED)
    return text


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of credential-named environment variables, longest first."""
    values = {
        value.strip()
        for name, value in environ.items()
        if SECRET_ENV.search(name.upper()) and len(value.strip()) >= MIN_LITERAL
    }
    return sorted(values, key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """A handler filter that redacts credentials in each record's message, exception
    and stack text; `literals` are known secret values redacted wherever they appear."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        super().__init__()
        self.literals = tuple(literals)

    @classmethod
    def from_environment(cls) -> RedactSecrets:
        return cls(secret_values(os.environ))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed record must not crash us
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self._clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True

    def _clean(self, text: str) -> str:
        return redact(text, self.literals)
