"""`rbottle hosts`: the hosts the manifest knows, and `hosts trust` for their keys."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_manifest_option,
    load_manifest,
)
from remotebottle.errors import HostError, RemoteBottleError, UsageError

if TYPE_CHECKING:  # imported where used: paramiko only when a host key is looked at
    from remotebottle.hosts.resolve import HostEntry, HostTarget
    from remotebottle.transport.ssh import SshTarget

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


def host_key_status(name: str, entry: HostEntry) -> str | None:
    """For an SSH host: `known` or `unknown` (from known_hosts alone); None otherwise."""
    if entry.provider != "ssh":
        return None
    from remotebottle.hosts.resolve import ssh_endpoint
    from remotebottle.manifest import SshHost
    from remotebottle.transport.known_hosts import load_known
    from remotebottle.transport.ssh import resolve_target

    if not isinstance(entry, SshHost):  # narrowing: provider "ssh" is always an SshHost
        return None
    try:
        t = resolve_target(ssh_endpoint(entry), name=name)
    except RemoteBottleError:
        return "unknown"
    known = load_known(t.known_hosts_files, t.known_hosts_name)
    return "known" if any(not k.revoked for k in known) else "unknown"


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle.hosts.resolve import resolve_host

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
    """Fetch `host`'s key, show it, and record it after a y/N, unless known or changed.

    Raises:
        UsageError: the host is local, or no terminal to ask on without --yes.
        HostError: the key is revoked, or another key is recorded for the host.
        NotAvailableYet: a cloud host (its key comes from the provider, not from you).
        ConnectError: the host cannot be reached.
    """
    from remotebottle.hosts.engine import ssh_entry
    from remotebottle.transport import known_hosts as kh
    from remotebottle.transport.ssh import fetch_host_key, resolve_target

    if host.is_local:
        raise UsageError(
            "`local` is this machine's engine: there is no SSH host key to trust",
            hint="trust a remote host: rbottle hosts trust vm1",
        )
    entry = ssh_entry(host)
    t = resolve_target(entry, name=host.name)
    console.info(f"asking {t.label} for its SSH host key")
    key = fetch_host_key(entry, name=host.name)
    shown = kh.describe(key)
    state, known = kh.key_state(kh.load_known(t.known_hosts_files, t.known_hosts_name), key)
    where = known.where if known else str(t.user_known_hosts)
    if state is kh.KeyState.TRUSTED:
        console.info(f"{t.label}: its {shown} is already trusted ({where}); nothing to do")
        return 0
    if state is kh.KeyState.REVOKED:
        raise HostError(
            f"{t.label} presents {shown}, which is marked @revoked in {where}: not trusting it",
            hint="the host's key was revoked: do not connect to it",
        )
    if state is kh.KeyState.CHANGED and known is not None:
        raise kh.changed_error(t.label, host.name, key, known, refusing=True)
    path = _writable_known_hosts(t)
    how = "a hashed entry" if t.hash_known_hosts else t.known_hosts_name
    console.info(f"{t.label} presents this host key:")
    console.info(f"  {key.get_name()} {key.fingerprint}")
    console.info(f"if you trust it, it is recorded in {path} as {how}")
    _confirm(f"Is {key.fingerprint} the host key of {host.name}?", yes=yes)
    kh.record(t.known_hosts_name, key, path, hashed=t.hash_known_hosts)
    console.info(f"trusted {host.name}: recorded its {shown} in {path}")
    return 0


def _writable_known_hosts(t: SshTarget) -> str:
    path = t.user_known_hosts
    if path.exists() and not path.is_file():
        raise HostError(
            f"cannot record the key in {path}: it is not a regular file",
            hint="set UserKnownHostsFile in ~/.ssh/config to a real file",
        )
    return str(path)


def _confirm(question: str, *, yes: bool) -> None:
    """y/N unless --yes; with no terminal to ask on, refuse rather than guess."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "no terminal to confirm the host key on",
            hint="check the fingerprint out of band, then pass --yes",
        )
    if not console.confirm(question):
        raise RemoteBottleError("not trusted: you answered no")
