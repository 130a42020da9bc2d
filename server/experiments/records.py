"""What the prediction log writes and what the report reads back: plain value types.

A `PredictionRecord` is one answer of one arm to one request: the primary arm that served the
caller, or a shadow arm that saw a copy of the same image (recorded under the primary's request
id). A `PredictionRow` is a record as the store returns it for a report, joined with the ground
truth that `Feedback` attached to its request, if any.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    PRIMARY = "primary"
    SHADOW = "shadow"


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    experiment: str
    arm: str
    role: Role
    model: str
    # None when the call failed before a version was resolved.
    version: int | None
    # The gRPC status code name of the arm's answer: "OK", "NOT_FOUND", "UNAVAILABLE"...
    status: str
    # Top-1 class index and its probability; None when the call failed.
    predicted_class: int | None
    confidence: float | None
    latency_ms: float
    created_at: datetime
    # Which gateway process wrote it (host name and pid), for operators.
    gateway: str


@dataclass(frozen=True)
class PredictionRow:
    request_id: str
    arm: str
    role: Role
    model: str
    version: int | None
    status: str
    predicted_class: int | None
    confidence: float | None
    latency_ms: float
    created_at: datetime
    # The ground truth from Feedback, and the order in which feedback arrived (a store-wide
    # increasing number: the sequential test reads outcomes in this order); None without feedback.
    true_class: int | None = None
    feedback_order: int | None = None
