"""Prepares a benchmark run's inputs in a scratch directory (run as its own process, since it
imports TensorFlow and the orchestrator does not):

    python -m bench.prepare --workdir DIR --model-root models --cifar-dir ... [--images 256]

Writes `manifest.json` (model, image set, machine, method paths), `pixels.npy` (the decoded CIFAR
images for the in-process run), `models.config`, and one blob file of request bodies per path.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from bench import requests
from bench.blobs import write_blobs
from bench.images import cifar_test_pixels, describe, encoded_images
from bench.manifest import Blobs, Manifest
from bench.model import choose_model
from common.serving_contract import INPUT_SIZE_KEY, METADATA_SIGNATURE
from training.data import read_class_names
from training.provenance import hardware_summary

EXPERIMENT = "bench-ab"


def _input_size(model_path: str) -> tuple[int, int]:
    loaded = tf.saved_model.load(model_path)
    metadata = loaded.signatures[METADATA_SIGNATURE]()
    height, width, _ = (int(v) for v in metadata[INPUT_SIZE_KEY].numpy())
    return height, width


def prepare(args: argparse.Namespace) -> Manifest:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pixels = cifar_test_pixels(args.cifar_dir, args.images)
    np.save(workdir / "pixels.npy", pixels)
    model = choose_model(
        args.model_root, args.model_name, workdir, read_class_names(args.cifar_dir), pixels
    )
    images = encoded_images(pixels, args.odd_dir)
    size = _input_size(model.path)
    experiments = workdir / "experiments.toml"
    experiments.write_text(requests.experiments_file(EXPERIMENT, model.name, model.version))
    bodies = {
        "classify": requests.classify_requests(images, model.name),
        "classify_paired": requests.interleaved(
            requests.classify_requests(images, model.name),
            requests.experiment_requests(images, EXPERIMENT),
        ),
        "predict": requests.predict_requests(images, model.name, model.version, size),
        "flask": requests.flask_requests(images),
        "noop_response": [requests.classify_response_like()],
    }
    for kind, blobs in bodies.items():
        write_blobs(workdir / f"{kind}.blobs", blobs)
    return Manifest(
        model=model,
        input_size=size,
        images=describe(images, len(pixels)),
        pixels=str(workdir / "pixels.npy"),
        blobs=Blobs(**{kind: str(workdir / f"{kind}.blobs") for kind in bodies}),
        experiments_file=str(experiments),
        classify_method=requests.CLASSIFY_METHOD,
        predict_method=requests.PREDICT_METHOD,
        machine=hardware_summary(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model-root", type=Path, default=Path("models"))
    parser.add_argument("--model-name", default="cnn")
    parser.add_argument("--cifar-dir", type=Path, required=True)
    parser.add_argument("--odd-dir", type=Path)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    prepare(args).save(Path(args.workdir))


if __name__ == "__main__":
    main()
