"""The way the project grew from, kept as a baseline: a notebook's model behind Flask.

    python -m bench.flask_baseline --model-dir models/cnn/3

`POST /predict` with a multipart field `image`: Pillow decodes the upload, converts it to RGB,
resizes it to the model's input size, and Keras `model.predict` runs on that one image; the
answer is the top 5 classes as JSON. The model is the same SavedModel the other paths serve,
wrapped for Keras with `keras.layers.TFSMLayer`. Served by Flask's threaded development server
(a thread per connection) on 127.0.0.1, on a free port; prints `ready <port>` when listening.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from PIL import Image
from werkzeug.serving import make_server

from common.serving_contract import (
    CLASS_NAMES_KEY,
    INPUT_KEY,
    INPUT_SIZE_KEY,
    METADATA_SIGNATURE,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
)


def load_model(model_dir: Path) -> tuple[keras.Model, list[str], tuple[int, int]]:
    """The SavedModel as a Keras model, its class names and its (height, width)."""
    loaded = tf.saved_model.load(str(model_dir))
    metadata = loaded.signatures[METADATA_SIGNATURE]()
    names = [n.decode() for n in metadata[CLASS_NAMES_KEY].numpy()]
    height, width, channels = (int(v) for v in metadata[INPUT_SIZE_KEY].numpy())
    inputs = keras.Input((height, width, channels), dtype="uint8", name=INPUT_KEY)
    outputs = keras.layers.TFSMLayer(str(model_dir), call_endpoint=SERVING_SIGNATURE)(inputs)
    return keras.Model(inputs, outputs[OUTPUT_KEY]), names, (height, width)


def create_app(model_dir: Path) -> Flask:
    model, class_names, (height, width) = load_model(model_dir)
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> ResponseReturnValue:
        upload = request.files["image"]
        image = Image.open(upload.stream).convert("RGB").resize((width, height))
        batch = np.asarray(image, dtype=np.uint8)[np.newaxis]
        probabilities = model.predict(batch, verbose=0)[0]
        best = np.argsort(-probabilities)[:5]
        return jsonify(
            predictions=[
                {"class": class_names[i], "probability": float(probabilities[i])} for i in best
            ]
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args()
    server = make_server("127.0.0.1", 0, create_app(args.model_dir), threaded=True)
    print(f"ready {server.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
