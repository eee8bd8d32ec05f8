"""`rbottle schema`: the manifest's JSON Schema, for editors."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command

DESCRIPTION = """\
Print the JSON Schema of claude-bottle.json. Point your editor at it for
completion and validation, e.g. in the manifest:

  { "$schema": "./claude-bottle.schema.json", ... }"""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "schema",
        help="print the manifest's JSON Schema",
        description=DESCRIPTION,
        epilog="example:\n  rbottle schema > claude-bottle.schema.json",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from remotebottle import manifest

    console.print_json(manifest.schema())
    return 0
