"""`python -m bench` (`make bench`): the whole benchmark, in this order.

1. prepare the inputs (model, images, request bodies) in a scratch directory;
2. a) the in-process limit, with no server running;
3. the load generator against a no-op server (its ceiling);
4. the model host, then c) the backend called directly and d) the gateway with batching on, then
   off, each at every concurrency, then e) one gateway with an experiment and its SQLite store,
   called by model name and through the experiment, at concurrency 1 and 32;
5. b) the Flask baseline at every concurrency;
6. the attack row (`bench.attack`): ordinary callers alone, then while two attackers send costly
   images (docs/attack.md, also appended to docs/benchmark.md);
7. the tables, printed and written to docs/benchmark.md and docs/benchmark.json.

Every server is stopped at the end, also on an error, Ctrl-C or SIGTERM. A path that fails is
noted in the report and the others still run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench import attack, report, stack
from bench.goals import evaluate
from bench.manifest import Manifest
from bench.results import (
    BACKEND,
    FLASK,
    GATEWAY_EXPERIMENT,
    GATEWAY_NAMED,
    GATEWAY_OFF,
    GATEWAY_ON,
    NOOP,
)
from bench.runner import Runner, say
from bench.servers import REPO_ROOT, ServerGroup

INPROCESS = "inprocess"
ATTACK = "attack"
EXPERIMENT_PATHS = {GATEWAY_NAMED, GATEWAY_EXPERIMENT}
ALL_PATHS = (
    INPROCESS, NOOP, BACKEND, GATEWAY_ON, GATEWAY_OFF, *sorted(EXPERIMENT_PATHS), FLASK, ATTACK
)  # fmt: skip
SHARED = REPO_ROOT.parent / "shared"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--warmup", type=float, default=3.0, help="seconds of warmup per cell (default 3)")
    add("--duration", type=float, default=10.0, help="measured seconds per cell (default 10)")
    add("--concurrency", default="1,8,32", help="comma-separated concurrencies")
    add("--loadgen-processes", type=int, default=1, help="load generator processes per cell")
    add("--inprocess-batches", default="1,32,64", help="batch sizes for the in-process run")
    add("--images", type=int, default=256, help="CIFAR-10 test images in the set")
    add("--paths", default=",".join(ALL_PATHS), help=f"subset of {','.join(ALL_PATHS)}")
    add("--model-root", type=Path, default=REPO_ROOT / "models")
    add("--model-name", default="cnn")
    add("--cifar-dir", type=Path, default=SHARED / "datasets/cifar-10-batches-py")
    add("--odd-dir", type=Path, default=SHARED / "testdata/images/odd")
    add("--out-dir", type=Path, default=REPO_ROOT / "docs", help="where the report goes")
    add(
        "--gateway-metrics",
        action="store_true",
        help="diagnosis: turn the gateway's metrics on and report its stage timings per cell",
    )
    add(
        "--gateway-profile",
        type=Path,
        help="diagnosis: cProfile each gateway's event loop into DIR/gateway-{on,off}.prof",
    )
    add("--attack-duration", type=float, default=60.0, help="seconds under attack (default 60)")
    add("--attack-baseline", type=float, default=20.0, help="unloaded seconds before the attack")
    add("--attack-concurrency", type=int, default=4, help="ordinary callers in the attack row")
    add("--keep-workdir", action="store_true", help="keep the scratch directory (logs, inputs)")
    return parser


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def _prepare(args: argparse.Namespace, workdir: Path) -> Manifest:
    manifest = stack.prepare(args, workdir)
    say(f"images: {manifest.images}")
    return manifest


def _guarded(step: Callable[[], None], runner: Runner, what: str) -> None:
    """Runs one path; a failure becomes a note in the report instead of ending the run."""
    try:
        step()
    except (RuntimeError, OSError) as exc:
        runner.notes.append(f"{what} failed: {str(exc).splitlines()[0]}")
        say(f"{what} failed: {exc}")


def run(args: argparse.Namespace, workdir: Path) -> None:
    paths = set(args.paths.split(","))
    runner = Runner(args, workdir, _prepare(args, workdir))
    if INPROCESS in paths:
        _guarded(runner.run_inprocess, runner, "the in-process run")
    with ServerGroup(workdir) as servers:
        if NOOP in paths:
            _guarded(lambda: runner.run_noop(servers), runner, "the no-op ceiling")
        if paths & {BACKEND, GATEWAY_ON, GATEWAY_OFF, *EXPERIMENT_PATHS}:
            _guarded(lambda: runner.run_model_host_paths(servers, paths), runner, "paths c) and d)")
        if FLASK in paths:
            _guarded(lambda: runner.run_flask(servers), runner, "the Flask baseline")
    attack_text = ""
    if ATTACK in paths:
        attack_args = argparse.Namespace(
            **{
                **vars(args),
                "duration": args.attack_duration,
                "baseline": args.attack_baseline,
                "concurrency": args.attack_concurrency,
            }
        )
        (workdir / ATTACK).mkdir()

        def run_attack() -> None:
            nonlocal attack_text
            attack_text = attack.run_and_report(attack_args, workdir / ATTACK)

        _guarded(run_attack, runner, "the attack row")
    goals = evaluate(
        {(c.path, c.concurrency): c for c in runner.cells}, report.limit_of(runner.inprocess)
    )
    text = report.write(
        args.out_dir, runner.run_info(), runner.inprocess, runner.cells, goals, os.cpu_count() or 1
    )
    if attack_text:
        with (args.out_dir / "benchmark.md").open("a") as report_file:
            report_file.write("\n" + attack_text.replace("# Attack row", "## Attack row", 1))
        text += "\n" + attack_text
    print(text)
    say(f"wrote {args.out_dir / 'benchmark.md'} and {args.out_dir / 'benchmark.json'}")


def main() -> int:
    args = _parser().parse_args()
    _stop_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="imgclf-bench-"))
    try:
        run(args, workdir)
        return 0
    except KeyboardInterrupt:
        print("\n[bench] interrupted; every server was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_workdir:
            print(f"[bench] scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
