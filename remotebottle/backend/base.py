"""The backend interface: prepare a plan (no side effects), then launch it as a context.

A backend is handed its engine client from outside; it never learns whether the
engine is local or at the end of a tunnel.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass

from remotebottle.backend.spec import BottlePlan, BottleSpec


@dataclass(frozen=True)
class BottleInfo:
    """One bottle found on an engine by its labels."""

    identity: str
    agent: str
    host: str
    status: str
    created: str
    containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CleanupPlan:
    """What `cleanup` would remove, by engine object id and a readable name."""

    containers: tuple[tuple[str, str], ...] = ()
    networks: tuple[tuple[str, str], ...] = ()
    volumes: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.containers or self.networks or self.volumes)

    def describe(self) -> list[str]:
        return [
            *(f"container {name}" for _, name in self.containers),
            *(f"network {name}" for _, name in self.networks),
            *(f"volume {name}" for _, name in self.volumes),
        ]


@dataclass
class Bottle:
    """A running bottle: what the session layer needs to talk to its agent."""

    identity: str
    agent_container: str
    plan: BottlePlan
    keep: bool = False  # set when the user detaches: the launch context then leaves it running


class BottleBackend(abc.ABC):
    @abc.abstractmethod
    def prepare(self, spec: BottleSpec) -> BottlePlan:
        """Resolve names, validate inputs and write scratch files; create nothing."""

    @abc.abstractmethod
    def launch(self, plan: BottlePlan) -> AbstractContextManager[Bottle]:
        """Create and start the bottle; tear everything down when the context exits."""

    @abc.abstractmethod
    def list_active(self) -> list[BottleInfo]:
        """Bottles on this engine, found by label."""

    @abc.abstractmethod
    def prepare_cleanup(self) -> CleanupPlan:
        """Everything labelled ours that is not running."""

    @abc.abstractmethod
    def cleanup(self, plan: CleanupPlan) -> None:
        """Remove what `prepare_cleanup` found."""
