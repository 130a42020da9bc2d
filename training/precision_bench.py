"""Measures training and inference throughput of a model in float32 and in mixed bfloat16.

`python -m training.precision_bench [--model cnn] [--steps 30]` trains on random uint8 images
(throughput does not depend on the pixels) for a few warm-up steps, then times `--steps` steps of
`fit` and of batched inference for each precision, prints a markdown table and writes it to
`docs/training-precision.md`. Run it on an idle machine: it measures the CPU it gets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.models import build_model
from training.provenance import hardware_summary
from training.train import _compile

PRECISIONS = ("float32", "mixed_bfloat16")
WARMUP_STEPS = 3


def measure(model_name: str, precision: str, batch_size: int, steps: int) -> dict[str, float]:
    keras.utils.set_random_seed(0)
    policy = None if precision == "float32" else precision
    model = build_model(model_name, 10, mean=[0.5] * 3, std=[0.25] * 3, dtype_policy=policy)
    _compile(model, keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size * 4, 32, 32, 3)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 10, batch_size * 4), 10)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size).repeat()
    model.fit(dataset, steps_per_epoch=WARMUP_STEPS, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    train_rate = steps * batch_size / (time.perf_counter() - started)

    predict = tf.function(lambda x: model(x, training=False))
    batch = tf.constant(images[:batch_size])
    predict(batch)
    started = time.perf_counter()
    for _ in range(steps):
        predict(batch).numpy()
    infer_rate = steps * batch_size / (time.perf_counter() - started)
    return {"train_images_per_s": train_rate, "inference_images_per_s": infer_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/training-precision.md"))
    args = parser.parse_args()
    results = {p: measure(args.model, p, args.batch_size, args.steps) for p in PRECISIONS}
    base = results["float32"]
    hardware = hardware_summary()
    lines = [
        f"# Training precision: float32 vs mixed bfloat16 ({args.model})",
        "",
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {hardware['cpu']}, "
        f"{hardware['cpu_cores']} cores, TensorFlow {hardware['tensorflow']}; batch "
        f"{args.batch_size}, {args.steps} timed steps after {WARMUP_STEPS} warm-up steps.",
        f"Command: `.venv/bin/python -m training.precision_bench --model {args.model} "
        f"--steps {args.steps}`",
        "",
        "| precision | training img/s | vs float32 | inference img/s | vs float32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for precision, numbers in results.items():
        train, infer = numbers["train_images_per_s"], numbers["inference_images_per_s"]
        lines.append(
            f"| {precision} | {train:,.0f} | {train / base['train_images_per_s']:.2f}x "
            f"| {infer:,.0f} | {infer / base['inference_images_per_s']:.2f}x |"
        )
    lines += [
        "",
        "Training uses mixed bfloat16 where the CPU has AMX/AVX-512 bf16 (`--precision auto`); the "
        "published model is always a float32 twin with the same weights, so it serves on any "
        "hardware. Inference here is the training-precision model called in process.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
