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

With --orphans, instead: the bottles whose `rbottle` was killed mid-session
(nobody attached since), ended as their session would have ended them (transcript
saved, then removed); and cloud VMs, key pairs and security groups tagged as ours
whose session ended, was abandoned that way, or expired."""


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
        "--orphans",
        action="store_true",
        help="end bottles whose rbottle was killed; sweep cloud VMs and their keys/groups",
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
    """Bottles whose rbottle was killed, then every cloud host of the manifest (and of
    this machine's sessions): list what its provider holds of ours; sweep orphans."""
    end_abandoned_bottles(yes, registry)
    return sweep_cloud_orphans(manifest, yes, registry)


def end_abandoned_bottles(yes: bool, registry: Registry) -> None:
    from remotebottle.errors import RemoteBottleError
    from remotebottle.ops.cleanup import abandoned_bottles, end_abandoned

    bottles = abandoned_bottles(registry)
    if not bottles:
        return
    for bottle in bottles:
        console.info(f"  {bottle.describe()}")
    confirm_or_stop(f"End these {len(bottles)} bottles (transcripts are saved first)?", yes)
    ended = 0
    for bottle in bottles:
        try:
            end_abandoned(bottle, progress=console.info)
            ended += 1
        except RemoteBottleError as exc:
            console.info(f"warning: {bottle.meta.identity} on {bottle.host.name}: {exc}")
    console.info(f"ended {ended} bottles whose rbottle was gone")


def sweep_cloud_orphans(manifest: Manifest, yes: bool, registry: Registry) -> int:
    from remotebottle.ops import orphans

    clouds = orphans.cloud_hosts(manifest, registry)
    if not clouds:
        console.info("no cloud hosts (ec2, fly) in the manifest: no VMs to look for")
        return 0
    now = datetime.datetime.now(datetime.UTC)
    found = []
    live_vms: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for host in clouds:
        provider = host.cloud_provider()
        console.info(f"asking {host.label()} for what is ours")
        owned = provider.list_owned()
        live_vms |= {r.resource_id for r in owned if orphans.is_live_vm(r)}
        fresh = [r for r in orphans.orphans(owned, now) if (r.provider, r.resource_id) not in seen]
        seen.update((r.provider, r.resource_id) for r in fresh)
        found.append((provider, fresh))
    listed = [r for _, resources in found for r in resources]
    if listed:
        for resource in listed:
            console.info(f"  {orphans.describe(resource)}")
        confirm_or_stop(f"Destroy these {len(listed)} cloud resources?", yes)
        orphans.sweep(found, progress=console.info)
        console.info(f"destroyed {len(listed)} cloud resources")
        live_vms -= {r.resource_id for r in listed}
    else:
        console.info("no orphans: every VM of ours belongs to a live session")
    orphans.settle_records([h.name for h in clouds], live_vms, progress=console.info)
    return 0
