"""`rbottle hosts`: the hosts the manifest knows, and `hosts trust` for their keys."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_manifest_option,
    confirm_or_stop,
    load_manifest,
)
from remotebottle.errors import UsageError

if TYPE_CHECKING:  # imported where used: paramiko only when a host key is looked at
    from remotebottle.hosts.resolve import HostEntry, HostTarget

DESCRIPTION = """\
List the hosts defined in claude-bottle.json (plus `local`, always there), and
for SSH hosts whether ~/.ssh/known_hosts has their host key (no network used).

  rbottle hosts trust HOST   ask HOST for its SSH host key, show its SHA256
                             fingerprint and, once you confirm it, record it in
                             ~/.ssh/known_hosts (hashed if HashKnownHosts is yes)

rbottle checks host keys strictly: an unknown key is refused until you trust
it, and a changed key is refused outright. `hosts trust` never replaces a key
already recorded for the host: remove the old one first (`ssh-keygen -R`).
Compare the fingerprint with the host's own, out of band, before you say yes:
  ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub     (run on the host)

Any ~/.ssh/config alias or ssh://user@host[:port] also works as --host without
an entry; an entry adds settings (image shipping, timeouts, cloud options)."""

EPILOG = """\
examples:
  rbottle hosts
  rbottle hosts trust vm1
  rbottle hosts trust ssh://admin@203.0.113.7:2222 --yes   (no question asked)"""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "hosts",
        help="list hosts; trust a host's SSH key",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "trust"),
        default="list",
        help="list (default) or trust",
    )
    parser.add_argument(
        "host", nargs="?", metavar="HOST", help="for trust: a hosts entry, ssh alias or ssh:// URL"
    )
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="trust: record the key without asking (check the fingerprint first)",
    )
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def describe(entry: HostEntry) -> str:
    if entry.provider == "ssh":
        user = f"{entry.user}@" if entry.user else ""
        port = f":{entry.port}" if entry.port else ""
        return f"{user}{entry.address}{port}"
    if entry.provider == "ec2":
        return f"{entry.instance_type} in {entry.region or 'default region'}"
    if entry.provider == "fly":
        return f"app {entry.app}, {entry.vm_size}"
    return "this machine's Docker engine"


def lifetime(entry: HostEntry) -> str:
    if entry.provider in ("ec2", "fly"):
        return "reused" if getattr(entry, "reuse", False) else "per session"
    return "yours"


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle.hosts.resolve import resolve_host
    from remotebottle.ops.trust import host_key_status

    manifest = load_manifest(args)
    if args.action == "trust":
        if not args.host:
            raise UsageError("`rbottle hosts trust` needs a HOST", hint="rbottle hosts trust vm1")
        return trust_host(resolve_host(args.host, manifest, args.registry), yes=args.yes)
    if args.host:
        raise UsageError(
            f"`rbottle hosts` takes no HOST (got {args.host!r})",
            hint=f"to trust its key: rbottle hosts trust {args.host}",
        )
    entries = {"local": resolve_host(None, manifest, args.registry).entry, **dict(manifest.hosts)}
    keys = {name: host_key_status(name, e) for name, e in entries.items()}
    if args.format == "json":
        console.print_json(
            [
                {
                    "name": name,
                    "provider": e.provider,
                    "where": describe(e),
                    "lifetime": lifetime(e),
                    "host_key": keys[name],
                }
                for name, e in entries.items()
            ]
        )
        return 0
    table = Table("host", "provider", "where", "lifetime", "host key")
    for name, entry in entries.items():
        table.add_row(
            escape(name),
            entry.provider,
            escape(describe(entry)),
            lifetime(entry),
            keys[name] or "-",
        )
    console.out.print(table)
    return 0


# -- hosts trust -----------------------------------------------------------------------------


def trust_host(host: HostTarget, *, yes: bool) -> int:
    """Show `host`'s key and record it after a y/N, unless it is known already."""
    from remotebottle.ops import trust

    presented = trust.examine(host, progress=console.info)
    if presented.trusted_at is not None:
        console.info(
            f"{presented.label}: its {presented.shown} is already trusted"
            f" ({presented.trusted_at}); nothing to do"
        )
        return 0
    fingerprint = presented.key.fingerprint
    how = "a hashed entry" if presented.hashed else presented.known_hosts_name
    console.info(f"{presented.label} presents this host key:")
    console.info(f"  {presented.key.get_name()} {fingerprint}")
    console.info(f"if you trust it, it is recorded in {presented.record_in} as {how}")
    confirm_or_stop(
        f"Is {fingerprint} the host key of {host.name}?",
        yes,
        no_terminal="no terminal to confirm the host key on",
        hint="check the fingerprint out of band, then pass --yes",
        refused="not trusted: you answered no",
    )
    trust.pin(presented)
    console.info(f"trusted {host.name}: recorded its {presented.shown} in {presented.record_in}")
    return 0
