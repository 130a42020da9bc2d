"""Runs the CNN against the Xception variant as live experiments through the real stack, with
CIFAR-10 test labels as ground-truth feedback, and writes what it measured to a JSON file:

    python -m bench.ab_run --model-root models --cnn-version 1 --xception-version 1 \
        --cifar-dir ../shared/datasets/cifar-10-batches-py --out docs/ab/ab-run.json

The model host and the gateway (with a SQLite experiment store) run as their own processes, as
in the benchmark. Two experiments see the same test images:

- `cnn-vs-xception`: an A/B split, 50/50, sticky by a routing key per image; feedback after
  every answer; the verdict is read every `--read-every` feedbacks, as a rollout tool would;
- `cnn-shadowed-by-xception`: every call served by the CNN, with the Xception as a shadow arm
  at sample rate 1, so both models answer every image (agreement, McNemar, per-class deltas).

`bench.ab_report` turns the JSON into docs/ab-cnn-vs-xception.md with its pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from imgclf_client import AsyncClient, to_plain
from PIL import Image

from bench.images import cifar_test_pixels
from bench.servers import ServerGroup, free_port
from server.store import ExperimentStore
from training.data import TEST_FILE, read_batch

AB, SHADOWED = "cnn-vs-xception", "cnn-shadowed-by-xception"


def experiments_toml(cnn: int, xception: int) -> str:
    return f"""
[experiments.{AB}]
arms = [
  {{ name = "cnn", model = "cnn", version = {cnn}, weight = 50 }},
  {{ name = "xception", model = "xception", version = {xception}, weight = 50 }},
]

[experiments.{SHADOWED}]
arms = [
  {{ name = "cnn", model = "cnn", version = {cnn}, weight = 1 }},
  {{ name = "xception", model = "xception", version = {xception}, weight = 0 }},
]
shadows = [
  {{ name = "xception-shadow", model = "xception", version = {xception}, sample_rate = 1.0 }},
]
"""


def models_config(root: Path, cnn: int, xception: int) -> str:
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{(root / name).resolve()}" '
        f'model_platform: "tensorflow" model_version_policy {{ specific {{ versions: {v} }} }} }}\n'
        for name, v in (("cnn", cnn), ("xception", xception))
    )
    return "model_config_list {\n" + entries + "}\n"


def png(pixels: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def run_experiment(
    client: AsyncClient,
    name: str,
    images: list[bytes],
    labels: list[int],
    *,
    concurrency: int,
    read_every: int,
) -> dict[str, Any]:
    """Classifies every image through `name` with feedback; reads the verdict along the way."""
    answers: list[dict[str, Any]] = [{} for _ in images]
    path: list[dict[str, Any]] = []
    given = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(images)):
        queue.put_nowait(index)

    async def worker() -> None:
        nonlocal given
        while not queue.empty():
            index = queue.get_nowait()
            started = time.perf_counter()
            result = await client.classify(
                images[index], experiment=name, routing_key=f"image-{index}", top_k=1
            )
            answers[index] = {
                "arm": result.arm,
                "predicted": result.top.index,
                "label": labels[index],
                "client_ms": (time.perf_counter() - started) * 1000,
            }
            await client.feedback(result.request_id, labels[index])
            given += 1
            if given % read_every == 0:
                verdict = (await client.experiment_report(name)).verdict
                path.append(
                    {
                        "feedbacks": given,
                        "p_value": verdict.p_value,
                        "outcome": verdict.outcome,
                        "winner": verdict.winner,
                    }
                )

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"answers": answers, "verdict_path": path}


async def paired_rows(store_url: str) -> list[dict[str, Any]]:
    """Primary and shadow answers of the shadowed experiment, from the store itself."""
    async with await ExperimentStore.open(store_url, timeout_s=30) as store:
        rows = await store.report_rows(SHADOWED)
    return [
        {
            "request_id": r.request_id,
            "role": str(r.role),
            "predicted": r.predicted_class,
            "label": r.true_class,
            "status": r.status,
        }
        for r in rows
    ]


async def main_async(args: argparse.Namespace) -> None:
    pixels = cifar_test_pixels(args.cifar_dir, args.images)
    _, all_labels = read_batch(Path(args.cifar_dir) / TEST_FILE, 10)
    labels = [int(v) for v in all_labels[: len(pixels)]]
    images = [png(p) for p in pixels]
    workdir = Path(tempfile.mkdtemp(prefix="imgclf-ab-"))
    config = workdir / "models.config"
    config.write_text(models_config(args.model_root, args.cnn_version, args.xception_version))
    experiments = workdir / "experiments.toml"
    experiments.write_text(experiments_toml(args.cnn_version, args.xception_version))
    store_url = f"sqlite+aiosqlite:///{workdir / 'experiments.db'}"
    with ServerGroup(workdir) as servers:
        port = free_port()
        host = servers.start_on_port(
            "model host",
            ["server.model_host", f"--port={port}", "--address=127.0.0.1",
             f"--model_config_file={config}", "--log_level=WARNING"],
            port,
        )  # fmt: skip
        gateway = servers.start_reporting(
            "gateway",
            ["bench.gateway_runner", f"--backend={host.target}", f"--models-config={config}",
             "--batching=on", f"--experiments={experiments}", f"--store-url={store_url}"],
        )  # fmt: skip
        async with AsyncClient(gateway.target, timeout=60) as client:
            for model in ("cnn", "xception"):  # wait for both models to answer
                for _ in range(600):
                    try:
                        await client.classify(images[0], model=model)
                        break
                    except Exception:
                        await asyncio.sleep(0.5)
            results: dict[str, Any] = {}
            for name, concurrency in ((AB, args.concurrency), (SHADOWED, args.shadow_concurrency)):
                results[name] = await run_experiment(
                    client,
                    name,
                    images,
                    labels,
                    concurrency=concurrency,
                    read_every=args.read_every,
                )
                results[name]["report"] = to_plain(await client.experiment_report(name))
        results[SHADOWED]["rows"] = await paired_rows(store_url)
    results["setup"] = {
        "images": len(images),
        "cnn_version": args.cnn_version,
        "xception_version": args.xception_version,
        "model_root": str(args.model_root),
        "concurrency": args.concurrency,
        "shadow_concurrency": args.shadow_concurrency,
        "read_every": args.read_every,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-root", type=Path, default=Path("models"))
    parser.add_argument("--cnn-version", type=int, required=True)
    parser.add_argument("--xception-version", type=int, required=True)
    parser.add_argument("--cifar-dir", type=Path, required=True)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--shadow-concurrency",
        type=int,
        default=2,
        help="calls in flight in the shadowed experiment: few enough for the slower shadow to "
        "answer every copy (a full shadow queue drops copies, as it must)",
    )
    parser.add_argument("--read-every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("docs/ab/ab-run.json"))
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
