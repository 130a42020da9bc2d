"""Writes TF Serving's warmup file: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these PredictRequests when it loads a version, before the version becomes
AVAILABLE, so the first real request doesn't pay for graph tracing and memory allocation
(tensorflow/serving `g3doc/saved_model_warmup.md`). The file is a TFRecord of `PredictionLog`s;
one request per batch size, so each batch shape the batcher will send is warmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from common.serving_contract import INPUT_KEY, SERVING_SIGNATURE

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
DEFAULT_BATCH_SIZES = (1, 8, 32)


def warmup_requests(
    model_name: str, images: np.ndarray, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
) -> list[prediction_log_pb2.PredictionLog]:
    """One PredictionLog per batch size, built from real uint8 images (cycled when too few)."""
    logs = []
    for size in batch_sizes:
        batch = np.resize(images, (size, *images.shape[1:])).astype(np.uint8)
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
        )
        request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto(batch))
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup_file(export_dir: Path, model_name: str, images: np.ndarray) -> Path:
    path = Path(export_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model_name, images):
            writer.write(log.SerializeToString())
    return path


def read_warmup_file(path: Path) -> list[prediction_log_pb2.PredictionLog]:
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]
