"""What a Fly Machine of a `vm_size` is and costs: its guest (CPU kind and count, memory
never below what dockerd, the sidecars and Claude Code need), the approximate hourly price
with its volume, and the preflight's summary of what a hosts entry is about to pay for.

The prices are list prices for the preflight line, never a bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remotebottle.errors import HostError
from remotebottle.manifest import FlyHost

VOLUME_GB = 10  # the per-session volume for Docker's data
MIN_MEMORY_MB = 2048  # dockerd, the sidecars and Claude Code do not fit the small presets


@dataclass(frozen=True)
class VmSize:
    cpu_kind: str
    cpus: int
    memory_mb: int  # the preset's own memory
    usd_month: float  # list price of the preset, running all month


# Approximate list prices (USD, running 730 h/month) from https://fly.io/docs/about/pricing/
# as of 2024-2025; regions differ by a few percent. Extra memory is billed at ~$5/GB-month,
# volumes at ~$0.15/GB-month.
VM_SIZES: dict[str, VmSize] = {
    "shared-cpu-1x": VmSize("shared", 1, 256, 1.94),
    "shared-cpu-2x": VmSize("shared", 2, 512, 3.89),
    "shared-cpu-4x": VmSize("shared", 4, 1024, 7.78),
    "shared-cpu-8x": VmSize("shared", 8, 2048, 15.55),
    "performance-1x": VmSize("performance", 1, 2048, 31.00),
    "performance-2x": VmSize("performance", 2, 4096, 62.00),
    "performance-4x": VmSize("performance", 4, 8192, 124.00),
    "performance-8x": VmSize("performance", 8, 16384, 248.00),
    "performance-16x": VmSize("performance", 16, 32768, 496.00),
}
EXTRA_GB_USD_MONTH = 5.0
VOLUME_GB_USD_MONTH = 0.15
HOURS_PER_MONTH = 730.0
PRICE_SOURCE = "approximate, from fly.io/docs/about/pricing (list prices, 2024-2025)"


def vm_size(name: str) -> VmSize:
    """The preset `name`.

    Raises:
        HostError: Fly has no such preset.
    """
    size = VM_SIZES.get(name)
    if size is None:
        known = ", ".join(VM_SIZES)
        raise HostError(f"unknown Fly vm_size {name!r}", hint=f"use one of: {known}")
    return size


def guest(name: str) -> dict[str, Any]:
    """The machine config's `guest` for the preset `name`."""
    size = vm_size(name)
    return {
        "cpu_kind": size.cpu_kind,
        "cpus": size.cpus,
        "memory_mb": max(size.memory_mb, MIN_MEMORY_MB),
    }


def hourly_usd(name: str) -> float:
    """The preset, the memory added up to MIN_MEMORY_MB, and the volume, per hour."""
    size = vm_size(name)
    extra_gb = max(0, MIN_MEMORY_MB - size.memory_mb) / 1024
    month = size.usd_month + extra_gb * EXTRA_GB_USD_MONTH + VOLUME_GB * VOLUME_GB_USD_MONTH
    return month / HOURS_PER_MONTH


def preflight(entry: FlyHost, region: str, image: str) -> dict[str, str]:
    """What the user is about to pay for; local only (no API call)."""
    shape = guest(entry.vm_size)
    return {
        "provider": "fly",
        "app": entry.app,
        "vm_size": f"{entry.vm_size} ({shape['cpus']} {shape['cpu_kind']} CPU,"
        f" {shape['memory_mb']} MB) + a {VOLUME_GB} GB volume for Docker",
        "region": region,
        "ttl": f"ends itself after {entry.ttl_minutes} min without a heartbeat",
        "image": image,
        "hourly_price": f"~${hourly_usd(entry.vm_size):.3f}/h ({PRICE_SOURCE})",
    }
