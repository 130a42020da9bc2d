"""Tiny real SavedModels for tests, published with the stack's own exporter.

The model is a real Keras network (rescaling, average pooling, a dense softmax) with seeded
weights, so its probabilities depend on the image and differ between seeds: a test can tell two
versions apart and can check the gateway's answer against the model run in process.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from tests.cifar10_names import CIFAR10_CLASSES
from training.export import publish


def tiny_classifier(
    seed: int, input_size: tuple[int, int] = (32, 32), *, permuted: bool = False
) -> keras.Model:
    """With `permuted`, the same network with its classes shuffled: it loads and answers, but
    wrongly (a version a rollout must catch)."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((*input_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.AveragePooling2D(pool_size=(input_size[0] // 2, input_size[1] // 2))(x)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(len(CIFAR10_CLASSES), activation="softmax")
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    kernel, bias = dense.get_weights()
    kernel, bias = rng.normal(0, 3, kernel.shape), rng.normal(0, 1, bias.shape)
    if permuted:
        order = np.roll(np.arange(len(CIFAR10_CLASSES)), 3)
        kernel, bias = kernel[:, order], bias[order]
    dense.set_weights([kernel, bias])
    return model


def publish_tiny(
    model_root: Path,
    name: str = "cnn",
    seed: int = 0,
    input_size: tuple[int, int] = (32, 32),
    *,
    permuted: bool = False,
) -> int:
    """Publishes the next version of `name` under `model_root`; returns its number."""
    model = tiny_classifier(seed, input_size, permuted=permuted)
    version, _ = publish(model, CIFAR10_CLASSES, model_root, name)
    return version


def model_entry(
    model_root: Path,
    name: str = "cnn",
    *,
    labels: dict[str, int] | None = None,
    policy: str = "latest { num_versions: 2 }",
) -> str:
    """One `config { ... }` block of a models.config."""
    label_text = "".join(
        f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in (labels or {}).items()
    )
    return (
        "  config {\n"
        f'    name: "{name}"\n    base_path: "{model_root / name}"\n'
        f'    model_platform: "tensorflow"\n    model_version_policy {{ {policy} }}\n'
        f"{label_text}  }}\n"
    )


def write_config_entries(path: Path, *entries: str) -> Path:
    path.write_text("model_config_list {\n" + "".join(entries) + "}\n")
    return path


def write_models_config(
    path: Path,
    model_root: Path,
    *,
    name: str = "cnn",
    labels: dict[str, int] | None = None,
    policy: str = "latest { num_versions: 2 }",
) -> Path:
    return write_config_entries(path, model_entry(model_root, name, labels=labels, policy=policy))
