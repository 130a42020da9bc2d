"""Request bodies, serialized once before any timing, for every path the benchmark loads:

- the gateway's `Classify` (encoded image, model by name, top 5), also sent to the no-op server,
  and the same through an experiment (a routing key each);
- TF Serving's `Predict` (one image, decoded and resized on the client side with the gateway's
  own `decode_image`, so the backend sees exactly the pixels the gateway would send it);
- the Flask baseline's `POST /predict` (a whole HTTP/1.1 request with a multipart upload).
"""

from __future__ import annotations

import uuid

from google.protobuf.descriptor import ServiceDescriptor
from imgclf.v1 import classifier_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2

from bench.images import EncodedImage
from common.serving_contract import INPUT_KEY, OUTPUT_KEY, SERVING_SIGNATURE
from server.gateway.preprocess import ImageLimits, decode_image
from server.gateway.tensors import uint8_tensor

FLASK_PATH = "/predict"
FLASK_FIELD = "image"


def _method_path(service: ServiceDescriptor, method: str) -> str:
    return f"/{service.full_name}/{method}"


CLASSIFY_METHOD = _method_path(classifier_pb2.DESCRIPTOR.services_by_name["Classifier"], "Classify")
PREDICT_METHOD = _method_path(
    prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"], "Predict"
)


def classify_requests(images: list[EncodedImage], model: str, top_k: int = 5) -> list[bytes]:
    return [
        classifier_pb2.ClassifyRequest(
            encoded=image.data, model=classifier_pb2.ModelSelector(name=model), top_k=top_k
        ).SerializeToString()
        for image in images
    ]


def experiment_requests(images: list[EncodedImage], experiment: str, top_k: int = 5) -> list[bytes]:
    """The same calls through an experiment, each with a routing key of its own (sticky path)."""
    return [
        classifier_pb2.ClassifyRequest(
            encoded=image.data,
            model=classifier_pb2.ModelSelector(experiment=experiment),
            top_k=top_k,
            routing_key=f"user-{index}",
        ).SerializeToString()
        for index, image in enumerate(images)
    ]


def interleaved(*kinds: list[bytes]) -> list[bytes]:
    """The bodies of each kind in turn (a0, b0, a1, b1, ...): body i is of kind i % len(kinds)."""
    if len({len(bodies) for bodies in kinds}) != 1:
        raise ValueError("every kind needs as many bodies")
    return [body for bodies in zip(*kinds, strict=True) for body in bodies]


def experiments_file(experiment: str, model: str, version: int) -> str:
    """An experiment of two arms serving the same version, so only routing differs."""
    arms = ", ".join(
        f'{{ name = "{arm}", model = "{model}", version = {version}, weight = 50 }}'
        for arm in ("a", "b")
    )
    return f"[experiments.{experiment}]\narms = [{arms}]\n"


def classify_response_like(top_k: int = 5) -> bytes:
    """A response of the gateway's size and shape, for the no-op server to answer with."""
    return classifier_pb2.ClassifyResponse(
        scores=[
            classifier_pb2.ClassScore(index=i, name=f"class-{i}", probability=0.1)
            for i in range(top_k)
        ],
        model_name="cnn",
        model_version=1,
        request_id=uuid.uuid4().hex,
    ).SerializeToString()


def predict_requests(
    images: list[EncodedImage], model: str, version: int, size: tuple[int, int]
) -> list[bytes]:
    limits = ImageLimits()
    requests = []
    for image in images:
        pixels = decode_image(image.data, limits, size)
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model, signature_name=SERVING_SIGNATURE)
        )
        request.model_spec.version.value = version
        request.inputs[INPUT_KEY].CopyFrom(uint8_tensor(pixels[None]))
        request.output_filter.append(OUTPUT_KEY)
        requests.append(request.SerializeToString())
    return requests


def flask_requests(images: list[EncodedImage]) -> list[bytes]:
    """Complete HTTP/1.1 keep-alive requests uploading each image as multipart/form-data."""
    requests = []
    for image in images:
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="{FLASK_FIELD}"; filename="{image.name}"\r\n'
                f"Content-Type: {image.content_type}\r\n\r\n"
            ).encode()
            + image.data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = (
            f"POST {FLASK_PATH} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
        requests.append(head + body)
    return requests
