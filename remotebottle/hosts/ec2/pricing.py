"""What an EC2 instance type is and costs: its CPU architecture, an approximate hourly list
price, and the preflight's summary of what a hosts entry is about to pay for.

The prices are a small static table for the preflight's "what you are about to pay"
line, never a bill: on-demand Linux list prices in us-east-1 (N. Virginia) from the AWS
EC2 on-demand pricing page, as recorded in 2024. Other regions cost up to ~30% more, spot
usually much less, and the root volume (20 GiB gp3, ~$0.0022/h) comes on top.
"""

from __future__ import annotations

import re

from remotebottle.manifest import Ec2Host

PRICE_SOURCE = "approximate us-east-1 on-demand Linux list price (AWS pricing page, 2024)"

# USD per hour.
HOURLY_USD: dict[str, float] = {
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "t3.xlarge": 0.1664,
    "t3.2xlarge": 0.3328,
    "t3a.medium": 0.0376,
    "t3a.large": 0.0752,
    "t3a.xlarge": 0.1504,
    "t4g.small": 0.0168,
    "t4g.medium": 0.0336,
    "t4g.large": 0.0672,
    "t4g.xlarge": 0.1344,
    "t4g.2xlarge": 0.2688,
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "m7i.large": 0.1008,
    "m7i.xlarge": 0.2016,
    "m6g.large": 0.077,
    "m6g.xlarge": 0.154,
    "m7g.large": 0.0816,
    "m7g.xlarge": 0.1632,
    "c5.large": 0.085,
    "c5.xlarge": 0.17,
    "c6i.large": 0.085,
    "c6i.xlarge": 0.17,
    "c6g.large": 0.068,
    "c6g.xlarge": 0.136,
    "c7g.large": 0.0725,
    "c7g.xlarge": 0.145,
    "r6i.large": 0.126,
    "r6g.large": 0.1008,
}

# Graviton families carry a `g` right after the generation digit: t4g, m7gd, c6gn, x2gd,
# im4gn, is4gen, g5g; `a1` is the first-generation Graviton.
_GRAVITON_RE = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)\.")


def hourly_price(instance_type: str) -> str:
    """`~$0.0416/h`, or "unknown" for a type the table does not list."""
    price = HOURLY_USD.get(instance_type)
    return f"~${price:.4f}/h" if price is not None else "unknown"


def guess_architecture(instance_type: str) -> str:
    """`arm64` for a Graviton type, else `x86_64`: the fallback when EC2 cannot be asked
    (DescribeInstanceTypes is the authority)."""
    return "arm64" if _GRAVITON_RE.match(instance_type) else "x86_64"


def preflight(entry: Ec2Host, region: str) -> dict[str, str]:
    """What the user is about to pay for; local only (no AWS call).

    Args:
        entry: the hosts entry.
        region: the client's region, or "" when it is not known yet.
    """
    price = hourly_price(entry.instance_type)
    if price != "unknown":
        price = f"{price} ({PRICE_SOURCE})"
    if entry.spot:
        price = f"spot: usually below on-demand {price}"
    return {
        "provider": "ec2",
        "instance_type": entry.instance_type,
        "region": entry.region or region or "from the AWS profile / AWS_REGION",
        "ttl": f"powers off after {entry.ttl_minutes} min without a heartbeat",
        "ami": entry.ami or "newest Debian 13 (resolved at launch)",
        "market": "spot" if entry.spot else "on-demand",
        "hourly_price": price,
    }
