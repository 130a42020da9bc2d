"""Transport-free value types the gateway's core works with (no protobuf, no gRPC)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelRef:
    """A model and, at most one of, a version number or a version label."""

    name: str
    version: int | None = None
    label: str | None = None

    def describe(self) -> str:
        if self.version is not None:
            return f"model '{self.name}' version {self.version}"
        if self.label is not None:
            return f"model '{self.name}' label '{self.label}'"
        return f"model '{self.name}' (latest version)"


@dataclass(frozen=True)
class ModelInfo:
    """What the gateway must know of one model version to serve it."""

    name: str
    version: int
    input_size: tuple[int, int, int]
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class RawPixels:
    """Undecoded uint8 pixels, row-major, channels last."""

    pixels: bytes
    height: int
    width: int
    channels: int


@dataclass(frozen=True)
class ClassifyInput:
    image: bytes | RawPixels
    model: ModelRef
    top_k: int = 0
    routing_key: str = ""
    request_id: str = ""
    # When set, the experiment picks the model (and `model` must be empty).
    experiment: str = ""

    def image_bytes(self) -> int:
        """How much memory the image holds, for bounded queues."""
        return len(self.image) if isinstance(self.image, bytes) else len(self.image.pixels)


@dataclass(frozen=True)
class ClassScore:
    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class Classification:
    scores: tuple[ClassScore, ...]
    model: str
    version: int
    request_id: str
    # The experiment and arm that routed the call, when it named an experiment.
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_message: str = ""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    versions: tuple[VersionStatus, ...]
    labels: dict[str, int] = field(default_factory=dict)
