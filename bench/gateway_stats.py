"""The gateway's own view of a cell, from its Prometheus endpoint (only with `--gateway-metrics`):
mean time per stage (decode+resize, waiting for a batch, the backend call), batches sent and
their mean size, scraped before and after a cell and subtracted."""

from __future__ import annotations

import re
import urllib.request

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$")
_STAGES = ("preprocess", "queue", "backend")


def scrape(port: int) -> dict[str, float]:
    """Every sample of the gateway's /metrics, keyed by name plus labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match[1] + (match[2] or "")] = float(match[3])
    return samples


def breakdown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Means over what happened between two scrapes: `<stage>_ms`, `batches`, `batch_mean`."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    result = {}
    for stage in _STAGES:
        count = delta(f'imgclf_gateway_stage_seconds_count{{stage="{stage}"}}')
        total = delta(f'imgclf_gateway_stage_seconds_sum{{stage="{stage}"}}')
        result[f"{stage}_ms"] = total / count * 1e3 if count else float("nan")
    batches = delta("imgclf_gateway_batch_size_count")
    result["batches"] = batches
    result["batch_mean"] = delta("imgclf_gateway_batch_size_sum") / batches if batches else 0.0
    return result
