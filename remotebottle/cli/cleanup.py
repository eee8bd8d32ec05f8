"""`rbottle cleanup`: remove what is labelled ours and no longer running."""

from __future__ import annotations

import argparse
import datetime
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_host_option,
    add_manifest_option,
    confirm_or_stop,
    load_manifest,
)

if TYPE_CHECKING:
    from remotebottle.hosts.registry import Registry
    from remotebottle.manifest import Manifest

DESCRIPTION = """\
Remove every container, network and volume labelled as remotebottle's whose
bottle is not running, after a y/N question (--yes skips it). Running bottles
are left alone. Saved state (for `rbottle resume`) is kept.

Without --host this is the local engine; --host HOST cleans that host's engine
(what an interrupted session on a VM may have left there).

With --orphans, also cloud VMs, key pairs and security groups tagged as ours
whose session is gone or expired."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "cleanup",
        help="remove stopped bottles and leftovers",
        description=DESCRIPTION,
        epilog=(
            "examples:\n  rbottle cleanup --yes\n  rbottle cleanup --host vm1"
            "\n  rbottle cleanup --orphans"
        ),
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    parser.add_argument(
        "--orphans", action="store_true", help="also sweep cloud VMs and their keys/security groups"
    )
    add_host_option(parser, "the host whose engine to clean (default: the local engine)")
    add_manifest_option(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from remotebottle.hosts.resolve import resolve_host
    from remotebottle.ops.cleanup import cleanup_on

    manifest = load_manifest(args)
    if args.orphans:
        return sweep_orphans(manifest, args.yes, args.registry)
    host = resolve_host(args.host, manifest, args.registry)
    with cleanup_on(host, progress=console.info) as found:
        plan = found.plan
        if plan.empty:
            console.info(f"nothing to clean up on {host.name}")
            return 0
        for line in plan.describe():
            console.info(f"  {line}")
        confirm_or_stop(f"Remove these {len(plan.describe())} objects?", args.yes)
        found.backend.cleanup(plan)
    console.info(f"removed {len(plan.describe())} objects from {host.name}")
    return 0


def sweep_orphans(manifest: Manifest, yes: bool, registry: Registry) -> int:
    """Every cloud host of the manifest: list what its provider holds of ours; sweep orphans."""
    from remotebottle.hosts.resolve import resolve_host
    from remotebottle.ops import orphans

    hosts = [resolve_host(name, manifest, registry) for name in manifest.hosts]
    hosts = [host for host in hosts if host.is_cloud]
    if not hosts:
        console.info("no cloud hosts (ec2, fly) in the manifest: no VMs to look for")
        return 0
    now = datetime.datetime.now(datetime.UTC)
    found = []
    seen: set[tuple[str, str]] = set()
    for host in hosts:
        provider = host.cloud_provider()
        console.info(f"asking {host.label()} for what is ours")
        fresh = [
            r
            for r in orphans.orphans(provider.list_owned(), now)
            if (r.provider, r.resource_id) not in seen
        ]
        seen.update((r.provider, r.resource_id) for r in fresh)
        found.append((provider, fresh))
    listed = [r for _, resources in found for r in resources]
    if not listed:
        console.info("no orphans: every VM of ours belongs to a live session")
        return 0
    for resource in listed:
        console.info(f"  {orphans.describe(resource)}")
    confirm_or_stop(f"Destroy these {len(listed)} cloud resources?", yes)
    orphans.sweep(found, progress=console.info)
    console.info(f"destroyed {len(listed)} cloud resources")
    return 0
