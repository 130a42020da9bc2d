"""TF Serving's AvailabilityPreservingPolicy: the next load or unload for one model.

`tensorflow_model_server` manages versions with this policy
(core/availability_preserving_policy.cc): an un-aspired version is unloaded only once an aspired
version is serving (or when nothing is aspired any more, or when more than one un-aspired
version is serving); new aspired versions load highest first. So a new version is loaded before
the old one is unloaded and a model never goes without a servable, and a version that fails to
load leaves the old one serving.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    """Where a managed version is in its life (a coarse LoaderHarness::State)."""

    NEW = "new"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    DONE = "done"


class ActionKind(Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclass(frozen=True)
class VersionSnapshot:
    """What the policy needs to know about one managed version."""

    version: int
    phase: Phase
    aspired: bool


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    version: int


def next_action(versions: Iterable[VersionSnapshot], pinned: Collection[int] = ()) -> Action | None:
    """The next step, or None when the model is where its aspired versions want it.

    `pinned` are the versions a `specific` policy names: TF Serving never unloads those.
    """
    versions = list(versions)
    has_aspired = any(v.aspired for v in versions)
    has_aspired_serving = any(v.aspired and v.phase is Phase.READY for v in versions)
    unaspired_serving = [v for v in versions if not v.aspired and v.phase is Phase.READY]
    if (not has_aspired or has_aspired_serving or len(unaspired_serving) > 1) and unaspired_serving:
        lowest = min(unaspired_serving, key=lambda v: v.version)
        if lowest.version not in pinned:
            return Action(ActionKind.UNLOAD, lowest.version)
    new_aspired = [v.version for v in versions if v.aspired and v.phase is Phase.NEW]
    if new_aspired:
        return Action(ActionKind.LOAD, max(new_aspired))
    return None
