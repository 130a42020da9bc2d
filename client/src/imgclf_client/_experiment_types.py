"""Experiment definitions, reports, feedback and comparisons: frozen dataclasses.

`ModelRef` names a model and at most one of a version or a label; `ModelRef.parse` reads the
short forms "cnn", "cnn:2" (version 2) and "cnn@canary" (label canary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ._exceptions import InvalidInput, ServerError
from ._types import Classification


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model and, at most one of, a version number or a version label."""

    model: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """ "cnn", "cnn:2" or "cnn@stable"."""
        if "@" in text:
            model, _, label = text.partition("@")
            return cls(model, label=label)
        if ":" in text:
            model, _, version = text.partition(":")
            if not version.isdigit():
                raise InvalidInput(f"'{text}': the version after ':' must be a number")
            return cls(model, version=int(version))
        return cls(text)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.model}:{self.version}"
        if self.label is not None:
            return f"{self.model}@{self.label}"
        return self.model


@dataclass(frozen=True, slots=True)
class ExperimentArm:
    """An arm: its name, the model reference it serves with, and its traffic weight."""

    name: str
    model: ModelRef
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ShadowArm:
    """A shadow arm: gets a copy of `sample_rate` of the calls, off the caller's path."""

    name: str
    model: ModelRef
    sample_rate: float = 1.0


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """The verdict's sequential test; 0 means the gateway's default."""

    alpha: float = 0.0
    min_samples: int = 0
    mixture_sd: float = 0.0


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment definition; `revision`, `ended` and `started_at` are set by the gateway."""

    name: str
    arms: list[ExperimentArm]
    shadows: list[ShadowArm] = field(default_factory=list)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    description: str = ""
    revision: int = 0
    ended: bool = False
    started_at: datetime | None = None

    def with_weights(self, weights: dict[str, float]) -> Experiment:
        """A copy with some arms' weights changed (arm name -> weight)."""
        unknown = sorted(set(weights) - {a.name for a in self.arms})
        if unknown:
            raise InvalidInput(f"experiment '{self.name}' has no arm(s) {', '.join(unknown)}")
        arms = [ExperimentArm(a.name, a.model, weights.get(a.name, a.weight)) for a in self.arms]
        return Experiment(
            self.name, arms, list(self.shadows), self.analysis, self.description, self.revision
        )


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """What `feedback` stored: `duplicate` when the same answer was already there."""

    duplicate: bool
    class_index: int
    class_name: str
    experiment: str


@dataclass(frozen=True, slots=True)
class CompareAnswer:
    """One model reference's answer in `compare`: a `Classification` or its `ServerError`."""

    model: ModelRef
    result: Classification | ServerError
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency of OK calls in milliseconds (NaN when there are none)."""

    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class ClassCount:
    index: int
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class ArmReport:
    """One arm's figures; `accuracy_interval` is a 95% Wilson interval (low, high)."""

    name: str
    model: ModelRef | None
    weight: float
    requests: int
    errors: dict[str, int]
    latency: Latency
    versions: dict[int, int]
    predicted_classes: list[ClassCount]
    mean_confidence: float
    feedback: int
    correct: int
    accuracy: float
    accuracy_interval: tuple[float, float]


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """A shadow arm compared with the primary on the same calls (agreement and McNemar)."""

    name: str
    model: ModelRef | None
    sample_rate: float
    requests: int
    errors: dict[str, int]
    latency: Latency
    pairs: int
    agreements: int
    agreement: float
    agreement_interval: tuple[float, float]
    paired_feedback: int
    shadow_correct: int
    primary_correct: int
    mcnemar_b: int
    mcnemar_c: int
    mcnemar_p: float
    accuracy_difference: float


@dataclass(frozen=True, slots=True)
class ArmComparison:
    control: str
    challenger: str
    difference: float
    p_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """`outcome`: "INSUFFICIENT_DATA", "NO_DIFFERENCE" or "WINNER" (then `winner` is set)."""

    outcome: str
    winner: str
    p_value: float
    summary: str
    test: str
    alpha: float
    mixture_sd: float
    min_samples: int
    samples: dict[str, int]
    needed: int
    comparisons: list[ArmComparison]


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: Experiment
    generated_at: datetime
    arms: list[ArmReport]
    shadows: list[ShadowReport]
    verdict: Verdict
