"""Results as plain JSON-ready data: dataclasses to dicts, `ModelRef`s to their short form,
datetimes to ISO 8601 text, NaN to None."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Any

from ._experiment_types import ModelRef


def to_plain(value: Any) -> Any:
    """`value` (a result of the client, or a list or dict of them) as JSON-ready data."""
    if isinstance(value, ModelRef):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
