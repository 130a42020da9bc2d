"""The stack under test for the long-running benchmarks (`bench.soak`, `bench.faults`): the inputs
`bench.prepare` writes, the local model host and the gateway (`bench.gateway_runner`), each a
real process of a `bench.servers.ServerGroup`.

The orchestrator imports no TensorFlow: `bench.prepare` runs as a child, and the calls that check
a server answers send request bodies prepared there as bytes.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.blobs import read_blobs
from bench.manifest import Manifest
from bench.runner import run_to_end, say
from bench.servers import REPO_ROOT, Server, ServerGroup, free_port

SHARED = REPO_ROOT.parent / "shared"
MODEL_HOST = "model host"
GATEWAY = "gateway"


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the model and the images (as `python -m bench` has them)."""
    add = parser.add_argument
    add("--model-root", type=Path, default=REPO_ROOT / "models")
    add("--model-name", default="cnn")
    add("--cifar-dir", type=Path, default=SHARED / "datasets/cifar-10-batches-py")
    add("--odd-dir", type=Path, default=SHARED / "testdata/images/odd")
    add("--images", type=int, default=256, help="CIFAR-10 test images in the set")
    add("--out-dir", type=Path, default=REPO_ROOT / "docs", help="where the report goes")
    add("--keep-workdir", action="store_true", help="keep the scratch directory (logs, inputs)")


def prepare(args: argparse.Namespace, workdir: Path) -> Manifest:
    """Runs `bench.prepare` (model, images, request bodies) into `workdir`."""
    say("preparing the model, the images and the request bodies")
    run_to_end(
        "prepare",
        [
            "bench.prepare",
            f"--workdir={workdir}",
            f"--model-root={args.model_root}",
            f"--model-name={args.model_name}",
            f"--cifar-dir={args.cifar_dir}",
            f"--odd-dir={args.odd_dir}",
            f"--images={args.images}",
        ],
        workdir,
        600,
    )
    manifest = Manifest.load(workdir)
    say(f"model: {manifest.model.describe()}")
    return manifest


def model_host_args(manifest: Manifest, port: int) -> list[str]:
    return [
        "server.model_host",
        f"--port={port}",
        "--address=127.0.0.1",
        f"--model_config_file={manifest.model.models_config}",
        "--log_level=WARNING",
    ]


def start_model_host(servers: ServerGroup, manifest: Manifest, port: int | None = None) -> Server:
    """The model host on `port` (a free one by default), once it answers Predict."""
    port = port or free_port()
    host = servers.start_on_port(MODEL_HOST, model_host_args(manifest, port), port)
    servers.wait_until_answers(host, manifest.predict_method, first_body(manifest.blobs.predict))
    return host


def start_gateway(
    servers: ServerGroup, manifest: Manifest, host: Server, *, metrics: bool = False
) -> Server:
    """The gateway (batching on, settings as deployed) in front of `host`, once it answers
    Classify; with `metrics`, its /metrics port is in `json.loads(server.ready_info)`."""
    gateway = servers.start_reporting(
        GATEWAY,
        [
            "bench.gateway_runner",
            f"--backend={host.target}",
            f"--models-config={manifest.model.models_config}",
            "--batching=on",
            *(["--metrics"] if metrics else []),
        ],
    )
    servers.wait_until_answers(
        gateway, manifest.classify_method, first_body(manifest.blobs.classify)
    )
    return gateway


def first_body(blobs: str) -> bytes:
    return read_blobs(blobs)[0]


Measure = Callable[[Path, Manifest], tuple[str, dict[str, Any]]]
"""Runs a benchmark in its scratch directory on the prepared inputs: the report's text and data."""


def run_main(args: argparse.Namespace, name: str, measure: Measure) -> int:
    """Prepares the inputs in a fresh scratch directory (removed after unless `--keep-workdir`),
    runs `measure`, and writes its report to `<args.out_dir>/<name>.md` and `.json`. SIGTERM is
    taken as Ctrl-C, so every server of a `ServerGroup` is stopped on the way out."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix=f"imgclf-{name}-"))
    try:
        text, data = measure(workdir, prepare(args, workdir))
        write_report(args.out_dir, name, text, data)
        print(text)
        say(f"wrote {args.out_dir / name}.md and {args.out_dir / name}.json")
        return 0
    except KeyboardInterrupt:
        print("\n[bench] interrupted; every server was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_workdir:
            print(f"[bench] scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    """`value` with NaN as null (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_report(out_dir: Path, name: str, text: str, data: dict[str, Any]) -> None:
    """Writes `<out_dir>/<name>.md` (the text) and `<name>.json` (every number)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(_jsonable(data), indent=1) + "\n")
