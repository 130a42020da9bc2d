"""The Xception builder (training.models.xception): shapes, upscaling, freezing, base weights.

Models are built at the smallest input Xception takes (71) to keep the tests light.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest

from training import config
from training.models import build_cnn, build_model
from training.models.xception import (
    DEFAULT_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    NUM_BLOCKS,
    UPSCALE_LAYER,
    WeightsError,
    base_of,
    build_base,
    build_xception,
    freeze_base,
    layer_blocks,
    unfreeze_top_blocks,
)

if TYPE_CHECKING:  # fixtures from conftest.py
    from conftest import FakeCifar

REPO_ROOT = Path(__file__).resolve().parents[2]
SIZE = MIN_IMAGE_SIZE


def _pixels(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 32, 32, 3)).astype(np.float32)


def _recognisable(weights: list[np.ndarray]) -> list[np.ndarray]:
    """Arrays no initialiser produces: variable i holds i/1000 plus a small ramp."""
    return [
        (i / 1000 + np.linspace(0.0, 1e-3, w.size).reshape(w.shape)).astype(w.dtype)
        for i, w in enumerate(weights)
    ]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_xception(10, image_size=SIZE)


def test_upscales_inside_and_returns_float32_probabilities(model: keras.Model) -> None:
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    upscaled = model.get_layer(UPSCALE_LAYER).output.shape
    assert tuple(upscaled[1:]) == (SIZE, SIZE, 3) and upscaled[1] >= MIN_IMAGE_SIZE

    probabilities = keras.ops.convert_to_numpy(model(_pixels(3), training=False))

    assert probabilities.shape == (3, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bfloat16_body_float32_edges_and_global_policy_restored() -> None:
    model = build_model(
        "xception", 10, mean=(0.5,) * 3, std=(0.25,) * 3, dtype_policy="mixed_bfloat16"
    )

    assert model.get_layer(UPSCALE_LAYER).output.shape[1] == DEFAULT_IMAGE_SIZE >= MIN_IMAGE_SIZE
    assert base_of(model).get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("probabilities").compute_dtype == "float32"
    assert keras.ops.convert_to_numpy(model(_pixels(1), training=False)).dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"


def test_rejects_inputs_below_xceptions_minimum() -> None:
    with pytest.raises(ValueError, match="at least 71"):
        build_xception(10, image_size=MIN_IMAGE_SIZE - 1)


def test_every_weighted_layer_belongs_to_a_block(model: keras.Model) -> None:
    blocks = layer_blocks(base_of(model))
    weighted = [(layer, block) for layer, block in blocks if layer.weights]

    assert {block for _, block in weighted} == set(range(1, NUM_BLOCKS + 1))
    assert [block for _, block in blocks] == sorted(block for _, block in blocks)
    # The unnamed residual 1x1 convolutions go with the block whose output they join.
    residuals = {
        layer.filters: block
        for layer, block in weighted
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1)
    }
    assert residuals == {128: 2, 256: 3, 728: 4, 1024: 13}


def test_freezing_by_block() -> None:
    model = build_xception(10, image_size=SIZE)

    freeze_base(model)
    assert not base_of(model).trainable_weights
    assert {w.path for w in model.trainable_weights} == {
        "probabilities/kernel",
        "probabilities/bias",
    }

    unfreeze_top_blocks(model, 13)
    for layer, block in layer_blocks(base_of(model)):
        assert layer.trainable == (block >= 13), layer.name
    assert base_of(model).get_layer("block13_sepconv1").trainable_weights
    assert not base_of(model).get_layer("block12_sepconv3").trainable_weights

    with pytest.raises(ValueError, match=r"1\.\.14"):
        unfreeze_top_blocks(model, 15)


def test_loads_base_weights_from_a_file(tmp_path: Path) -> None:
    # Saved from a base at another input size: the base is convolutional, so they fit any size.
    source = build_base(SIZE + 9)
    source.set_weights(_recognisable(source.get_weights()))
    path = tmp_path / "base.weights.h5"
    source.save_weights(str(path))

    model = build_xception(10, image_size=SIZE, weights=str(path))

    loaded = base_of(model).get_weights()
    assert len(loaded) == len(source.get_weights())
    for expected, actual in zip(source.get_weights(), loaded, strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_weights_that_dont_fit_the_base_are_refused(model: keras.Model, tmp_path: Path) -> None:
    whole_model = tmp_path / "classifier.weights.h5"
    model.save_weights(str(whole_model))
    other_model = tmp_path / "cnn.weights.h5"
    build_cnn(10, width=4).save_weights(str(other_model))

    for path in (whole_model, other_model):
        with pytest.raises(WeightsError, match="does not fit the Xception base") as error:
            build_xception(10, image_size=SIZE, weights=str(path))
        assert "include_top=False" in str(error.value) and "\n" not in str(error.value)

    with pytest.raises(WeightsError, match="weights file not found"):
        build_xception(10, image_size=SIZE, weights=str(tmp_path / "missing.weights.h5"))


def test_imagenet_offline_tells_the_user_to_pass_a_file(
    fake_cifar: FakeCifar, tmp_path: Path
) -> None:
    # An empty Keras cache, so the weights would have to be downloaded, which fails offline.
    cache = tmp_path / "keras-home"
    cache.mkdir()
    command = [sys.executable, "-m", "training", "train", "--model", "xception", "--quick"]
    command += ["--weights", "imagenet", "--image-size", str(SIZE)]
    command += ["--data-dir", str(fake_cifar.path), "--model-root", str(tmp_path / "models")]
    command += ["--run-dir", str(tmp_path / "run")]
    # An unused loopback proxy makes the download fail at once, here and on machines with a
    # network alike: the test never reaches the internet.
    env = {
        "PATH": "/usr/bin:/bin",
        "KERAS_HOME": str(cache),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }

    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 2, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: could not get the ImageNet weights for Xception")
    assert "pass the file with --weights PATH" in error
    assert not (tmp_path / "models").exists() and not (tmp_path / "run").exists()


def test_config_mirrors_the_architecture_limits() -> None:
    assert config.XCEPTION_MIN_IMAGE_SIZE == MIN_IMAGE_SIZE
    assert config.XCEPTION_BLOCKS == NUM_BLOCKS
    assert config.XCEPTION_IMAGE_SIZE >= MIN_IMAGE_SIZE
