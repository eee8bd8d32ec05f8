"""What kind of host an entry is, decided in one place: the provider registry.

`local` and `ssh` hosts are engines reached as they are. Every other provider is a
cloud: its VMs come from a `Provider` the registry makes for the entry, one per session
(destroyed when the session ends) unless the entry says `reuse`. Callers ask a
`HostTarget` (`is_cloud`, `per_session`, `cloud_provider()`), which asks its registry.
Tests hand the CLI a registry with a cloud of their own (`Registry.with_cloud`); nothing
is patched in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from remotebottle.errors import HostError

if TYPE_CHECKING:  # the SDKs behind a provider load only when a VM is used
    from remotebottle.hosts.provider import Provider
    from remotebottle.hosts.resolve import HostEntry

ProviderFactory = Callable[["HostEntry"], "Provider"]
Kind = Literal["local", "ssh", "cloud"]


class Registry:
    """Provider name → how to make that cloud's `Provider` for an entry."""

    def __init__(self, clouds: Mapping[str, ProviderFactory]) -> None:
        self._clouds = dict(clouds)

    def with_cloud(self, provider: str, factory: ProviderFactory) -> Registry:
        """This registry with `provider`'s VMs made by `factory` instead."""
        return Registry({**self._clouds, provider: factory})

    def kind(self, entry: HostEntry) -> Kind:
        if entry.provider == "local":
            return "local"
        if entry.provider == "ssh":
            return "ssh"
        if entry.provider in self._clouds:
            return "cloud"
        raise HostError(f"no provider {entry.provider!r} is known to this rbottle")

    def provider(self, name: str, entry: HostEntry) -> Provider:
        """The provider that makes the VMs of cloud host `name`."""
        factory = self._clouds.get(entry.provider)
        if factory is None:
            raise HostError(f"{name} is not a cloud host ({entry.provider})")
        return factory(entry)


def _ec2(entry: HostEntry) -> Provider:
    from remotebottle.hosts.ec2 import Ec2Provider
    from remotebottle.manifest import Ec2Host

    assert isinstance(entry, Ec2Host), entry  # the registry keys providers by name
    return Ec2Provider(entry)


def _fly(entry: HostEntry) -> Provider:
    from remotebottle.hosts.fly import FlyProvider
    from remotebottle.manifest import FlyHost

    assert isinstance(entry, FlyHost), entry
    return FlyProvider(entry)


DEFAULT = Registry({"ec2": _ec2, "fly": _fly})
