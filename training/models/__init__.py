"""Model builders by name: each returns an uncompiled Keras model, uint8-valued pixels in,
float32 class probabilities out, with its normalisation inside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from training.models.cnn import build_cnn


def _cnn(
    num_classes: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype_policy: str | None,
    width: int | None = None,
) -> keras.Model:
    options: dict[str, Any] = {} if width is None else {"width": width}
    return build_cnn(num_classes, mean=mean, std=std, dtype_policy=dtype_policy, **options)


# Every builder takes (num_classes, *, mean, std, dtype_policy, width=None).
MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {"cnn": _cnn}


def build_model(
    name: str,
    num_classes: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype_policy: str | None = None,
    width: int | None = None,
) -> keras.Model:
    """Builds the registered model `name`; `width` overrides the builder's default size."""
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {name!r}; choose one of: {known}") from None
    return builder(num_classes, mean=mean, std=std, dtype_policy=dtype_policy, width=width)


__all__ = ["MODEL_BUILDERS", "build_cnn", "build_model"]
