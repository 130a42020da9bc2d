"""The model builders (training.models): contract shape, in-model normalisation, precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from training.cli import MODEL_CHOICES
from training.models import MODEL_BUILDERS, build_cnn, build_model


@pytest.mark.parametrize("dtype_policy", [None, "mixed_bfloat16"])
def test_cnn_maps_raw_pixels_to_float32_probabilities(dtype_policy: str | None) -> None:
    model = build_cnn(10, width=4, dtype_policy=dtype_policy)
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3)).astype("float32")

    probabilities = keras.ops.convert_to_numpy(model(pixels, training=False))

    assert model.input_shape == (None, 32, 32, 3)
    assert probabilities.shape == (3, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_cnn_normalises_inside_the_model() -> None:
    model = build_cnn(10, width=4, mean=(0.5, 0.25, 0.75), std=(0.5, 0.5, 0.5))
    normalise = keras.Model(model.input, model.get_layer("normalize").output)
    pixels = np.full((1, 32, 32, 3), 255.0, dtype="float32")

    out = keras.ops.convert_to_numpy(normalise(pixels))

    np.testing.assert_allclose(out[0, 0, 0], [1.0, 1.5, 0.5], rtol=1e-5)


def test_width_scales_the_network() -> None:
    assert build_cnn(width=4).count_params() < build_cnn(width=8).count_params()
    with pytest.raises(ValueError, match="width must be positive"):
        build_cnn(width=0)


def test_registry_builds_by_name_and_rejects_unknown() -> None:
    model = build_model("cnn", 5, mean=(0.5,) * 3, std=(0.25,) * 3, width=4)
    assert model.output_shape == (None, 5)
    with pytest.raises(ValueError, match=r"unknown model 'nope'; choose one of: cnn"):
        build_model("nope", 10, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_command_line_offers_exactly_the_registered_models() -> None:
    assert set(MODEL_CHOICES) == set(MODEL_BUILDERS)
