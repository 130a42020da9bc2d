"""Locust load test of the gateway over gRPC, built on the project's typed client.

    python -m locust -f tests/load/locustfile.py --headless --host localhost:50051 -u 32 -r 8 -t 2m
    make loadtest                                   (starts the local stack when none is running)

Each simulated user opens one channel (one `imgclf_client.Client`) and keeps it; locust runs on
gevent, so gRPC is told to cooperate with it (`init_gevent`) before any channel exists. Every
call is reported to locust's statistics under its scenario's name, with its exception when it
fails; invalid inputs that the gateway rejects with the right status are successes of their own
request type ("rejected as expected"), and accepting one is a failure.

Scenarios (choose with `--tags`, weights below): the `stable` label, an explicit version, the
`canary` label, the experiment (a routing key per user, so stickiness is exercised), a mix of
real formats and sizes (32x32 PNGs to an 8-megapixel JPEG), `ClassifyStream` with 16 images per
call, and a small share of invalid inputs. Calls through the experiment are CIFAR-10 test images
whose labels go back as `Feedback` (its own request type), so the experiment's verdict has
ground truth, as it would in production. For each scenario the model version and arm that
served are counted; `served.csv` (totals) and `served_history.csv` (per second) are written
beside locust's CSV files, so a run shows the traffic split it saw, e.g. during a rollout.
"""

from __future__ import annotations

import csv
import io
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import gevent  # noqa: E402
import numpy as np  # noqa: E402
from imgclf_client import Client, NotFound, ServerError  # noqa: E402
from locust import User, constant, events, tag, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
EXPECTED_REJECTIONS = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "NOT_FOUND"}
STREAM_IMAGES = 16
PIN_REFRESH_S = 5.0
REJECTED = "Invalid input (rejected as expected)"


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default="cnn", help="model name")
    parser.add_argument("--experiment", default="cnn-stable-vs-canary", help="experiment name")
    parser.add_argument(
        "--model-version", type=int, default=0, help="the explicit version (0: stable's)"
    )
    parser.add_argument("--cifar-dir", default=str(SHARED / "datasets/cifar-10-batches-py"))
    parser.add_argument("--odd-dir", default=str(SHARED / "testdata/images/odd"))
    parser.add_argument("--tls", action="store_true", help="TLS to the gateway")
    parser.add_argument("--ca-cert", default="", help="CA certificate file for --tls")
    parser.add_argument("--call-timeout", type=float, default=30.0, help="seconds per call")


class Images:
    """Encoded inputs, made once per process: tiny CIFAR PNGs, real photos of several formats,
    an 8-megapixel JPEG made from a real photo, and files the gateway must refuse."""

    def __init__(self, cifar_dir: Path, odd_dir: Path) -> None:
        pixels, self.labels = _cifar(cifar_dir, 256)
        self.small = [_png(p) for p in pixels]
        manifest = _manifest(odd_dir)
        decodes = [n for n, what in manifest.items() if what.startswith("decodes")]
        refused = [n for n, what in manifest.items() if what.startswith("must be rejected")]
        wanted = (
            "jpeg_baseline_rgb.jpg",
            "jpeg_progressive.jpg",
            "jpeg_exif_orientation8_photo.jpg",
            "webp_exif_orientation6.webp",
            "jpeg_cmyk.jpg",
        )
        self.photos = [(odd_dir / n).read_bytes() for n in wanted if n in decodes]
        photo = odd_dir / "jpeg_exif_orientation8_photo.jpg"
        if photo.is_file():
            self.photos.append(_upscaled_jpeg(photo, 3000))
        # Empty files are left out: the client itself refuses them, so the gateway never would.
        chosen = [n for n in refused if 0 < (odd_dir / n).stat().st_size < 1_000_000][:12]
        self.invalid = [(odd_dir / n).read_bytes() for n in chosen] or [b"not an image"]
        self.mixed = self.small[:8] + self.photos

    def pick_small(self) -> bytes:
        return random.choice(self.small)

    def pick_labelled(self) -> tuple[bytes, int | None]:
        index = random.randrange(len(self.small))
        return self.small[index], self.labels[index] if self.labels else None


def _cifar(cifar_dir: Path, count: int) -> tuple[list[np.ndarray], list[int]]:
    """CIFAR-10 test images and their labels (random pixels, no labels, without the data)."""
    batch = cifar_dir / "test_batch"
    if not batch.is_file():
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(count)], []
    import pickle

    with batch.open("rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    pixels = [row.reshape(3, 32, 32).transpose(1, 2, 0) for row in raw[b"data"][:count]]
    return pixels, [int(label) for label in raw[b"labels"][:count]]


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _upscaled_jpeg(path: Path, width: int) -> bytes:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    big = rgb.resize((width, int(width * rgb.height / rgb.width)))
    buffer = io.BytesIO()
    big.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def _manifest(odd_dir: Path) -> dict[str, str]:
    path = odd_dir.parent / "MANIFEST.tsv"
    if not path.is_file():
        return {}
    with path.open() as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {Path(r["relative_path"]).name: r["expected"] for r in rows}


class Served:
    """Who served what: (scenario, version, arm) -> calls, in total and second by second."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int, str]] = Counter()
        self.history: list[tuple[float, str, int, str, int]] = []
        self._lock = threading.Lock()

    def add(self, scenario: str, version: int, arm: str, count: int = 1) -> None:
        with self._lock:
            self.counts[(scenario, version, arm)] += count

    def snapshot(self) -> None:
        now = time.time()
        with self._lock:
            self.history += [(now, s, v, a, n) for (s, v, a), n in self.counts.items()]

    def write(self, prefix: str) -> None:
        with open(f"{prefix}_served.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["scenario", "version", "arm", "calls"])
            for (scenario, version, arm), count in sorted(self.counts.items()):
                writer.writerow([scenario, version, arm, count])
        with open(f"{prefix}_served_history.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", "scenario", "version", "arm", "calls_so_far"])
            writer.writerows(self.history)


SERVED = Served()
_images: Images | None = None


def _snapshots(environment: Environment) -> None:
    while True:
        gevent.sleep(1.0)
        SERVED.snapshot()


@events.test_start.add_listener
def _started(environment: Environment, **_: Any) -> None:
    gevent.spawn(_snapshots, environment)


@events.quitting.add_listener
def _quitting(environment: Environment, **_: Any) -> None:
    SERVED.snapshot()
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        SERVED.write(prefix)


def _credentials(options: Any) -> grpc.ChannelCredentials | None:
    if not options.tls:
        return None
    root = Path(options.ca_cert).read_bytes() if options.ca_cert else None
    return grpc.ssl_channel_credentials(root_certificates=root)


class GatewayUser(User):
    """One caller with one channel to the gateway, busy all the time (closed loop)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        global _images
        options = self.environment.parsed_options
        if _images is None:
            _images = Images(Path(options.cifar_dir), Path(options.odd_dir))
        self.images = _images
        self.model = options.model
        self.experiment = options.experiment
        self.key = f"locust-user-{random.getrandbits(48):012x}"
        self.client = Client(
            self.host or "localhost:50051",
            timeout=options.call_timeout,
            credentials=_credentials(options),
            max_attempts=1,
        )
        self.pinned = options.model_version
        self.version = self.pinned or self._stable_version()
        self.version_at = time.monotonic()

    def on_stop(self) -> None:
        self.client.close()

    def _stable_version(self) -> int:
        for model in self.client.list_models():
            if model.name == self.model and "stable" in model.labels:
                return model.labels["stable"]
        return 1

    def _report(self, name: str, started: float, error: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def _classify(self, name: str, image: bytes, **target: Any) -> None:
        started = time.perf_counter()
        try:
            result = self.client.classify(image, top_k=1, **target)
        except ServerError as error:
            self._report(name, started, error)
            return
        SERVED.add(name, result.version, result.arm)
        self._report(name, started, None)

    @tag("stable")
    @task(4)
    def stable_label(self) -> None:
        self._classify(
            "Classify label stable", self.images.pick_small(), model=self.model, label="stable"
        )

    @tag("version")
    @task(1)
    def explicit_version(self) -> None:
        """Pins the version `stable` named when last looked (every few seconds), as a client
        that pins versions does; once a rollout retires that version, it looks again."""
        if not self.pinned and time.monotonic() - self.version_at > PIN_REFRESH_S:
            self.version, self.version_at = self._stable_version(), time.monotonic()
        image = self.images.pick_small()
        started = time.perf_counter()
        try:
            result = self.client.classify(image, top_k=1, model=self.model, version=self.version)
        except NotFound as error:
            if self.pinned:
                self._report("Classify explicit version", started, error)
                return
            self.version, self.version_at = self._stable_version(), time.monotonic()
            try:
                result = self.client.classify(
                    image, top_k=1, model=self.model, version=self.version
                )
            except ServerError as retry_error:
                self._report("Classify explicit version", started, retry_error)
                return
        except ServerError as error:
            self._report("Classify explicit version", started, error)
            return
        SERVED.add("Classify explicit version", result.version, result.arm)
        self._report("Classify explicit version", started, None)

    @tag("canary")
    @task(1)
    def canary_label(self) -> None:
        self._classify(
            "Classify label canary", self.images.pick_small(), model=self.model, label="canary"
        )

    @tag("experiment")
    @task(4)
    def experiment_call(self) -> None:
        """Through the experiment, then the test label as ground truth (when there is one)."""
        image, label = self.images.pick_labelled()
        started = time.perf_counter()
        try:
            result = self.client.classify(
                image, top_k=1, experiment=self.experiment, routing_key=self.key
            )
        except ServerError as error:
            self._report("Classify experiment", started, error)
            return
        SERVED.add("Classify experiment", result.version, result.arm)
        self._report("Classify experiment", started, None)
        if label is None:
            return
        started = time.perf_counter()
        try:
            self.client.feedback(result.request_id, label)
        except ServerError as error:
            self._report("Feedback", started, error)
            return
        self._report("Feedback", started, None)

    @tag("formats")
    @task(2)
    def formats(self) -> None:
        self._classify(
            "Classify formats and sizes",
            random.choice(self.images.mixed),
            model=self.model,
            label="stable",
        )

    @tag("stream")
    @task(1)
    def stream(self) -> None:
        name = f"ClassifyStream x{STREAM_IMAGES}"
        batch = [self.images.pick_small() for _ in range(STREAM_IMAGES)]
        started = time.perf_counter()
        try:
            answers = self.client.classify_many(batch, model=self.model, label="stable", top_k=1)
        except ServerError as error:
            self._report(name, started, error)
            return
        failed = [a for a in answers if isinstance(a, ServerError)]
        for answer in answers:
            if not isinstance(answer, ServerError):
                SERVED.add(name, answer.version, answer.arm)
        self._report(name, started, failed[0] if failed else None)

    @tag("invalid")
    @task(1)
    def invalid(self) -> None:
        started = time.perf_counter()
        if random.random() < 0.2:
            call: dict[str, Any] = {"model": "no-such-model", "label": "stable"}
            image = self.images.pick_small()
        else:
            call, image = (
                {"model": self.model, "label": "stable"},
                random.choice(self.images.invalid),
            )
        try:
            self.client.classify(image, top_k=1, **call)
        except ServerError as error:
            if error.code.name in EXPECTED_REJECTIONS:
                self._report(REJECTED, started, None)
            else:
                self._report(REJECTED, started, error)
            return
        self._report(REJECTED, started, AssertionError("an invalid input was accepted"))
