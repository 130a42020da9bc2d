"""The limit: the model's own throughput in process, with no serving around it.

    python -m bench.inprocess --model-dir D --pixels pixels.npy --batches 1,32,64

Loads the SavedModel, and for each batch size calls its `serving_default` signature back to back
on uint8 batches of already-decoded images (built before timing), for a warmup and then a
measured duration. Prints one JSON line: per batch size, images per second, the latency of a
batch call, and the process's CPU time per image (TensorFlow's threads included).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from common.serving_contract import INPUT_KEY, OUTPUT_KEY, SERVING_SIGNATURE


def measure(
    signature: tf.types.experimental.ConcreteFunction,
    pixels: np.ndarray,
    batch_size: int,
    warmup_s: float,
    duration_s: float,
) -> dict[str, float]:
    """Throughput and batch-call latency of `signature` at one batch size."""
    batches = [
        tf.constant(np.resize(pixels[start:], (batch_size, *pixels.shape[1:])))
        for start in range(0, len(pixels), batch_size)
    ]
    latencies: list[float] = []
    warm_until = time.monotonic() + warmup_s
    end = warm_until + duration_s
    calls = 0
    cpu_start = None
    while (began := time.monotonic()) < end:
        if cpu_start is None and began >= warm_until:
            cpu_start = time.process_time()
        signature(**{INPUT_KEY: batches[calls % len(batches)]})[OUTPUT_KEY].numpy()
        calls += 1
        if began >= warm_until:
            latencies.append(time.monotonic() - began)
    elapsed = sum(latencies)
    images = len(latencies) * batch_size
    ms = np.array(latencies) * 1e3
    return {
        "batch_size": batch_size,
        "throughput": images / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "calls": len(latencies),
        "cpu_ms_per_image": (time.process_time() - (cpu_start or 0.0)) * 1e3 / images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--pixels", type=Path, required=True)
    parser.add_argument("--batches", default="1,32,64")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    loaded = tf.saved_model.load(args.model_dir)  # keep it referenced while its signature runs
    signature = loaded.signatures[SERVING_SIGNATURE]
    pixels = np.load(args.pixels)
    results = [
        measure(signature, pixels, int(size), args.warmup, args.duration)
        for size in args.batches.split(",")
    ]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
