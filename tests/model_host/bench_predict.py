"""Predict round trips against a local model host over loopback (not a test; run it directly).

    .venv/bin/python -m tests.model_host.bench_predict [--requests 500]

Publishes a tiny model with `training.export.publish` into a temp dir, starts a host on an
ephemeral port and reports latency percentiles for a batch of 1 and of 32 (one client, one
request at a time), the same call made in process (the TensorFlow share of it), and the
throughput of 4 concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from server.model_host import create_server
from tests.model_host.helpers import (
    CLASS_NAMES,
    images,
    model_config,
    predict_request,
    tiny_classifier,
    write_config,
)
from training.export import publish


def _percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  p99 {p99:6.2f} ms"


def _timed(call: Callable[[], object], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return timings


def _measure(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    in_process: Callable[..., object],
    batch: np.ndarray,
    count: int,
) -> tuple[list[float], list[float]]:
    request = predict_request(batch=batch)
    tensor = tf.constant(batch)
    _timed(lambda: stub.Predict(request, timeout=10), 50)
    grpc_times = _timed(lambda: stub.Predict(request, timeout=10), count)
    tf_times = _timed(lambda: in_process(images=tensor), count)
    return grpc_times, tf_times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, path = publish(tiny_classifier(0), CLASS_NAMES, root, "cnn")
        config = write_config(root / "models.config", model_config("cnn", root / "cnn"))
        host, port = create_server(config, port=0)
        in_process = tf.saved_model.load(str(path)).signatures["serving_default"]
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        print(f"tiny model, {os.cpu_count()} CPUs, {args.requests} sequential requests each")
        for batch_size in (1, 32):
            grpc_times, tf_times = _measure(stub, in_process, images(batch_size), args.requests)
            print(f"batch {batch_size:2d}  Predict over gRPC: {_percentiles(grpc_times)}")
            print(f"          in-process signature call: {_percentiles(tf_times)}")

        request = predict_request(batch=images(1))
        done: list[int] = []

        def client() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as own:
                own_stub = prediction_service_pb2_grpc.PredictionServiceStub(own)
                for _ in range(args.requests):
                    own_stub.Predict(request, timeout=10)
                done.append(args.requests)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        total = sum(done)
        print(
            f"{args.clients} concurrent clients, batch 1: {total / elapsed:,.0f} requests/s, "
            f"{elapsed / args.requests * 1e3:.2f} ms per request per client"
        )
        channel.close()
        host.stop(None).wait()


if __name__ == "__main__":
    main()
