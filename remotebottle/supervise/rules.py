"""The rules a proposal's payload is held to: the supervisor sidecar's own validators.

The operator's machine checks a payload (perhaps edited by the operator) by the very code
the sidecar filed it with, so that what is applied is what the agent is told.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib import resources
from typing import Any, get_args

from remotebottle import hostnames
from remotebottle.errors import BottleError, printable
from remotebottle.supervise.model import Kind

_KINDS = frozenset(get_args(Kind))


def check(kind: str, payload: dict[str, Any], *, operator: bool) -> dict[str, Any]:
    """`payload` in canonical form; `operator`: the operator wrote or edited it (mixed-script
    and internal host names are theirs to allow), else it is the agent's as filed."""
    script = _script()
    shown = kind if kind in _KINDS else "a"
    if not isinstance(payload, dict):
        raise BottleError(f"{shown} proposal: payload must be an object")
    try:
        rules = script.Rules(operator=operator, plain_http=hostnames.plain_http_for_tests())
        return dict(script.validate(kind, dict(payload), rules))
    except ValueError as exc:
        raise BottleError(f"{shown} proposal: {printable(str(exc))}") from None


@functools.cache
def _script() -> Any:
    """The supervisor's proposals module (standard library and `remotebottle.hostnames`)."""
    source = resources.files("remotebottle").joinpath("resources/supervisor/proposals.py")
    with resources.as_file(source) as path:
        spec = importlib.util.spec_from_file_location("rbottle_supervisor_rules", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module
