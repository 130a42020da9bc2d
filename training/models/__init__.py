"""Model builders by name: each returns an uncompiled Keras model, uint8-valued pixels in,
float32 class probabilities out, with its normalisation (and any upscaling) inside.

Every builder takes `(num_classes, *, mean, std, dtype_policy, **options)`; the options are the
builder's own settings (`width` for cnn; `weights` and `image_size` for xception), and `None`
means the builder's default.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import keras

from training.models.cnn import build_cnn
from training.models.xception import WeightsError, build_xception


def _cnn(
    num_classes: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype_policy: str | None,
    width: int = 32,
) -> keras.Model:
    return build_cnn(num_classes, mean=mean, std=std, dtype_policy=dtype_policy, width=width)


def _xception(
    num_classes: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype_policy: str | None,
    weights: str = "none",
    image_size: int | None = None,
) -> keras.Model:
    # mean/std are unused: Xception has its own fixed preprocessing (scale to [-1, 1]).
    options: dict[str, Any] = {} if image_size is None else {"image_size": image_size}
    return build_xception(num_classes, weights=weights, dtype_policy=dtype_policy, **options)


MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {"cnn": _cnn, "xception": _xception}
_COMMON = {"num_classes", "mean", "std", "dtype_policy"}


def model_options(name: str) -> set[str]:
    """The builder-specific options `build_model` accepts for model `name`."""
    return set(inspect.signature(MODEL_BUILDERS[name]).parameters) - _COMMON


def build_model(
    name: str,
    num_classes: int,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype_policy: str | None = None,
    **options: Any,
) -> keras.Model:
    """Builds the registered model `name`; options set to `None` take the builder's default."""
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_BUILDERS))
        raise ValueError(f"unknown model {name!r}; choose one of: {known}") from None
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - model_options(name))
    if unknown:
        raise ValueError(f"model {name!r} takes no option {', '.join(unknown)}")
    return builder(num_classes, mean=mean, std=std, dtype_policy=dtype_policy, **given)


__all__ = [
    "MODEL_BUILDERS",
    "WeightsError",
    "build_cnn",
    "build_model",
    "build_xception",
    "model_options",
]
