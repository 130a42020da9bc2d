"""The results the client returns: frozen dataclasses, never protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClassScore:
    """One class and its probability."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True, slots=True)
class Classification:
    """The answer to one `classify` call.

    Attributes:
        scores: the returned classes, best first.
        model: the name of the model that served the call.
        version: the version number that served it (resolved from a label or the latest).
        request_id: the id the gateway logged the call under (send it with `feedback`).
        experiment: the experiment that routed the call, when it named one; else "".
        arm: the experiment's arm that served the call; else "".
    """

    scores: list[ClassScore]
    model: str
    version: int
    request_id: str
    experiment: str = ""
    arm: str = ""

    @property
    def top(self) -> ClassScore:
        """The best class; the gateway always returns at least one."""
        return self.scores[0]


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a model as the backend reports it.

    Attributes:
        version: the version number.
        state: "START", "LOADING", "AVAILABLE", "UNLOADING", "END" or "UNSPECIFIED".
        labels: the labels that point at this version.
        error_message: why the version failed to load; empty when it is fine.
    """

    version: int
    state: str
    labels: list[str]
    error_message: str


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model, its versions and its labels (label -> version number)."""

    name: str
    versions: list[ModelVersion]
    labels: dict[str, int]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model version's input size (height, width, channels) and class names by index."""

    name: str
    version: int
    input_size: tuple[int, int, int]
    class_names: list[str]
