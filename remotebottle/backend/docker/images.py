"""The image references a bottle uses. Production code names the real, pinned refs."""

from __future__ import annotations

from remotebottle import pins
from remotebottle.backend.spec import BottleSpec, ImageRefs

AGENT_REPOSITORY = "remotebottle/agent"


def agent_image() -> str:
    return f"{AGENT_REPOSITORY}:cc-{pins.claude_code_version()}"


def image_refs(spec: BottleSpec) -> ImageRefs:
    return ImageRefs(
        agent=agent_image(),
        egress=pins.pipelock_image(),
        git_gate=pins.gitleaks_image() if spec.git else None,
    )


def all_images() -> list[str]:
    """Every image a bottle may need, for `doctor` and for seeding."""
    return [pins.base_image(), agent_image(), pins.pipelock_image(), pins.gitleaks_image()]
