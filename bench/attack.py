"""The attack row: ordinary callers against the gateway, alone and then while two attackers keep
sending costly images.

    python -m bench.attack [--duration 60] [--concurrency 4]   (also run by `make bench`)

1. The model host and the gateway (as deployed, `bench.stack`) start; the ordinary callers (CIFAR
   test images, `--concurrency` workers) run alone for `--baseline` seconds: the unloaded p99.
2. For `--duration` seconds the same callers run while two attacker processes each send costly
   images back to back (`bench.costly_images`: a progressive JPEG of 20,000 scans, an ICO whose
   PNG is 13,000 x 13,000, an 8,000 x 8,000 float TIFF and a 19 MB PNG of empty chunks), each
   with a 5 s deadline.
3. The gateway's resident memory (its own process plus its decode processes) is sampled all along.

Goals (issue 10): ordinary callers keep at least 99% success and a p99 within 5x the unloaded
p99; the gateway's memory stays under its bound, which is its own memory before the attack, plus
the decoders' budget (`decode_memory_budget_mb`), plus 256 MiB of headroom for the gRPC
buffers of requests in flight. Writes docs/attack.md and docs/attack.json.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgclf.v1 import classifier_pb2

from bench import costly_images
from bench.blobs import write_blobs
from bench.cells import run_loads
from bench.loadgen import LoadSpec
from bench.manifest import Manifest
from bench.process_memory import tree_memory
from bench.results import LoadResult, summarise
from bench.runner import say
from bench.servers import ServerGroup
from bench.stack import (
    add_input_arguments,
    prepare,
    run_main,
    start_gateway,
    start_model_host,
    write_report,
)
from server.gateway.settings import GatewaySettings

HEADROOM_MIB = 256
MIN_SUCCESS = 0.99
MAX_P99_RATIO = 5.0
ATTACKERS = 2
ATTACK_DEADLINE_S = 5.0


def costly_requests(model: str) -> tuple[list[bytes], list[str]]:
    images = {
        "progressive JPEG, 20,000 scans (CPU)": costly_images.scan_bomb(4096, 4096, 20_000),
        "ICO with a 13,000 x 13,000 PNG (memory)": costly_images.ico_with_large_png(13_000),
        "8,000 x 8,000 float TIFF (memory)": costly_images.float_tiff(8000),
        "PNG of 1.5 M empty chunks (parsing)": costly_images.empty_chunk_png(1_500_000),
    }
    bodies = [
        classifier_pb2.ClassifyRequest(
            encoded=data, model=classifier_pb2.ModelSelector(name=model)
        ).SerializeToString()
        for data in images.values()
    ]
    names = [f"{name}: {len(data) / 1024:,.0f} KB" for name, data in images.items()]
    return bodies, names


class MemorySampler(threading.Thread):
    """Samples the resident memory of a process and its descendants every `interval_s`."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._interval = interval_s
        self._done = threading.Event()
        self.samples: list[tuple[float, float, float]] = []  # (time, own MiB, with children MiB)

    def run(self) -> None:
        while not self._done.wait(self._interval):
            self.samples.append((time.monotonic(), *self.measure()))

    def measure(self) -> tuple[float, float]:
        memory = tree_memory(self._pid)
        return memory.main_rss_mib, memory.rss_mib

    def stop(self) -> None:
        self._done.set()
        self.join()


def _ordinary_spec(args: argparse.Namespace, target: str, method: str, blobs: str) -> LoadSpec:
    return LoadSpec(
        kind="grpc",
        target=target,
        method=method,
        blobs=blobs,
        concurrency=args.concurrency,
        warmup_s=args.warmup,
        duration_s=args.baseline,
        timeout_s=10.0,
    )


def run(args: argparse.Namespace, workdir: Path, manifest: Manifest) -> dict[str, Any]:
    bodies, attack_names = costly_requests(manifest.model.name)
    attack_blobs = workdir / "attack.blobs"
    write_blobs(attack_blobs, bodies)
    settings = GatewaySettings()
    with ServerGroup(workdir) as servers:
        host = start_model_host(servers, manifest)
        gateway = start_gateway(servers, manifest, host)
        ordinary = _ordinary_spec(
            args, gateway.target, manifest.classify_method, manifest.blobs.classify
        )
        say(f"unloaded: {args.concurrency} ordinary callers for {args.baseline:g} s")
        parts, _ = run_loads("loadgen-attack-baseline", [ordinary], workdir, {})
        unloaded = summarise("unloaded", args.concurrency, parts, args.baseline, {})
        sampler = MemorySampler(gateway.process.pid)
        before_own, _before_total = sampler.measure()
        sampler.start()
        say(f"attack: {ATTACKERS} attackers with costly images for {args.duration:g} s")
        attack_spec = replace(ordinary, duration_s=args.duration)
        attacker = replace(
            attack_spec, blobs=str(attack_blobs), concurrency=1, timeout_s=ATTACK_DEADLINE_S
        )
        specs = [attack_spec] + [replace(attacker, offset=i) for i in range(ATTACKERS)]
        parts, cores = run_loads("loadgen-attack", specs, workdir, {"gateway": gateway.process.pid})
        sampler.stop()
        attacked = summarise("attacked", args.concurrency, parts[:1], args.duration, cores)
        attackers = parts[1:]
    return _result(args, settings, unloaded, attacked, attackers, sampler, before_own, attack_names)


def _result(
    args: argparse.Namespace,
    settings: GatewaySettings,
    unloaded: Any,
    attacked: Any,
    attackers: list[LoadResult],
    sampler: MemorySampler,
    before_own: float,
    attack_names: list[str],
) -> dict[str, Any]:
    calls = attacked.completed + attacked.errors
    success = attacked.completed / calls if calls else 0.0
    ratio = attacked.p99_ms / unloaded.p99_ms if unloaded.p99_ms else float("inf")
    peak_own = max((own for _, own, _ in sampler.samples), default=before_own)
    peak_total = max((total for _, _, total in sampler.samples), default=before_own)
    bound = before_own + settings.decode_memory_budget_mb + HEADROOM_MIB
    return {
        "concurrency": args.concurrency,
        "baseline_s": args.baseline,
        "duration_s": args.duration,
        "attackers": ATTACKERS,
        "attack_images": attack_names,
        "attack_deadline_s": ATTACK_DEADLINE_S,
        "unloaded": {"p50_ms": unloaded.p50_ms, "p99_ms": unloaded.p99_ms,
                     "throughput": unloaded.throughput, "errors": unloaded.errors,
                     "completed": unloaded.completed},
        "attacked": {"p50_ms": attacked.p50_ms, "p99_ms": attacked.p99_ms,
                     "throughput": attacked.throughput, "completed": attacked.completed,
                     "errors": attacked.errors, "error_samples": attacked.error_samples,
                     "gateway_cores": attacked.server_cores.get("gateway")},
        "attacker_calls": sum(a.completed + a.errors for a in attackers),
        "attacker_answers_ok": sum(a.completed for a in attackers),
        "attacker_error_samples": [s for a in attackers for s in a.error_samples][:4],
        "success": success,
        "p99_ratio": ratio,
        "memory_mib": {"gateway_before": before_own, "gateway_peak": peak_own,
                       "with_decoders_peak": peak_total, "bound": bound,
                       "decode_budget": settings.decode_memory_budget_mb},
        "pass": {"success": success >= MIN_SUCCESS, "p99": ratio <= MAX_P99_RATIO,
                 "memory": peak_total <= bound},
    }  # fmt: skip


def render(result: dict[str, Any]) -> str:
    u, a, m, ok = result["unloaded"], result["attacked"], result["memory_mib"], result["pass"]

    def verdict(flag: bool) -> str:
        return "PASS" if flag else "FAIL"

    lines = [
        "# Attack row: ordinary callers while two attackers send costly images",
        "",
        f"`python -m bench.attack` (run by `make bench`): {result['concurrency']} ordinary "
        f"callers (CIFAR-10 test images) alone for {result['baseline_s']:g} s, then for "
        f"{result['duration_s']:g} s while {result['attackers']} attackers each send costly "
        f"images back to back with a {result['attack_deadline_s']:g} s deadline:",
        "",
        *[f"- {name}" for name in result["attack_images"]],
        "",
        "| measure | unloaded | under attack | goal | result |",
        "|---|---|---|---|---|",
        f"| ordinary success | {u['completed'] / max(1, u['completed'] + u['errors']):.2%} | "
        f"{result['success']:.2%} ({a['completed']:,} ok, {a['errors']:,} failed) | >= 99% | "
        f"{verdict(ok['success'])} |",
        f"| ordinary p50 | {u['p50_ms']:.1f} ms | {a['p50_ms']:.1f} ms | | |",
        f"| ordinary p99 | {u['p99_ms']:.1f} ms | {a['p99_ms']:.1f} ms "
        f"({result['p99_ratio']:.2f}x) | <= 5x unloaded | {verdict(ok['p99'])} |",
        f"| ordinary throughput | {u['throughput']:.0f}/s | {a['throughput']:.0f}/s | | |",
        f"| gateway memory (own + decoders) | {m['gateway_before']:.0f} MiB (own) | peak "
        f"{m['with_decoders_peak']:.0f} MiB (own peak {m['gateway_peak']:.0f}) | <= "
        f"{m['bound']:.0f} MiB | {verdict(ok['memory'])} |",
        "",
        f"Attackers: {result['attacker_calls']:,} costly calls, "
        f"{result['attacker_answers_ok']:,} answered OK; samples of their answers: "
        + "; ".join(f"`{s}`" for s in result["attacker_error_samples"]),
        "",
        f"Memory bound = the gateway's own memory before the attack + decode_memory_budget_mb "
        f"({m['decode_budget']} MiB) + {HEADROOM_MIB} MiB for requests in flight.",
    ]
    if a["error_samples"]:
        lines += ["", "Ordinary callers' failures (samples): "
                  + "; ".join(f"`{s}`" for s in a["error_samples"])]  # fmt: skip
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.attack", description=__doc__)
    add_input_arguments(parser)
    add = parser.add_argument
    add("--duration", type=float, default=60.0, help="seconds under attack (default 60)")
    add("--baseline", type=float, default=20.0, help="seconds unloaded first (default 20)")
    add("--warmup", type=float, default=3.0, help="seconds of warmup before each window")
    add("--concurrency", type=int, default=4, help="ordinary callers (default 4)")
    return parser


def measure(
    args: argparse.Namespace, workdir: Path, manifest: Manifest
) -> tuple[str, dict[str, Any]]:
    result = run(args, workdir, manifest)
    return render(result), result


def run_and_report(args: argparse.Namespace, workdir: Path) -> str:
    """The whole row in `workdir` (as `make bench` runs it): its report written, its text."""
    text, result = measure(args, workdir, prepare(args, workdir))
    write_report(args.out_dir, "attack", text, result)
    return text


def main() -> int:
    args = parser().parse_args()
    return run_main(args, "attack", lambda workdir, manifest: measure(args, workdir, manifest))


if __name__ == "__main__":
    raise SystemExit(main())
