"""The `imgclf-experiment` command: experiments, their reports and feedback, from a shell.

    imgclf-experiment list [--all] [--json]
    imgclf-experiment report NAME [--json]
    imgclf-experiment feedback REQUEST_ID TRUE_CLASS       (a class index or name)
    imgclf-experiment create FILE.toml                     (admin; [experiments.NAME] tables)
    imgclf-experiment update FILE.toml                     (admin)
    imgclf-experiment set-weights NAME ARM=WEIGHT...       (admin)
    imgclf-experiment end NAME                             (admin)

The file form is that of `serving_config/experiments.toml`. Admin commands read the token from
`--token-file` or `$IMGCLF_ADMIN_TOKEN`. Exit status: 0 done, 1 the gateway refused (the error
is printed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._config import DEFAULT_TARGET, DEFAULT_TIMEOUT
from ._exceptions import ImgclfError, InvalidInput, ServerError
from ._experiment_types import (
    AnalysisSettings,
    Experiment,
    ExperimentArm,
    ExperimentReport,
    ModelRef,
    ShadowArm,
)
from ._plain import to_plain
from ._sync import Client

TARGET_ENV = "IMGCLF_TARGET"
TOKEN_ENV = "IMGCLF_ADMIN_TOKEN"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    token = _token(args)
    try:
        with Client(args.target, timeout=args.timeout or None, admin_token=token) as client:
            return int(args.run(client, args) or 0)
    except (ImgclfError, OSError, tomllib.TOMLDecodeError) as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        return 2 if isinstance(error, InvalidInput | OSError | tomllib.TOMLDecodeError) else 1


def _parser() -> argparse.ArgumentParser:
    # The connection options go with every subcommand, so they may follow its arguments.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV, DEFAULT_TARGET),
        metavar="HOST:PORT",
        help=f"gateway address (default: ${TARGET_ENV} or {DEFAULT_TARGET})",
    )
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S")
    common.add_argument("--token-file", type=Path, help=f"admin token file (default: ${TOKEN_ENV})")
    parser = argparse.ArgumentParser(
        prog="imgclf-experiment", description="Experiments on the imgclf gateway."
    )
    commands = _Subcommands(parser.add_subparsers(dest="command", required=True), common)
    listing = commands.add_parser("list", help="the experiments and their arms")
    listing.add_argument("--all", action="store_true", help="include ended experiments")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)
    report = commands.add_parser("report", help="per-arm figures and the verdict")
    report.add_argument("name")
    report.add_argument("--json", action="store_true")
    report.set_defaults(run=_report)
    feedback = commands.add_parser("feedback", help="the true class of an earlier call")
    feedback.add_argument("request_id")
    feedback.add_argument("true_class", help="class index or class name")
    feedback.set_defaults(run=_feedback)
    for name, run in (("create", _create), ("update", _update)):
        sub = commands.add_parser(name, help=f"{name} experiments from a TOML file (admin)")
        sub.add_argument("file", type=Path)
        sub.set_defaults(run=run)
    weights = commands.add_parser("set-weights", help="change arms' weights (admin)")
    weights.add_argument("name")
    weights.add_argument("weights", nargs="+", metavar="ARM=WEIGHT")
    weights.set_defaults(run=_set_weights)
    end = commands.add_parser("end", help="end an experiment; its report stays (admin)")
    end.add_argument("name")
    end.set_defaults(run=_end)
    return parser


class _Subcommands:
    def __init__(self, actions: Any, common: argparse.ArgumentParser) -> None:
        self._actions = actions
        self._common = common

    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._actions.add_parser(
            name, help=help, parents=[self._common]
        )
        return parser


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        lines = [line.strip() for line in args.token_file.read_text().splitlines()]
        return next((line for line in lines if line and not line.startswith("#")), None)
    return os.environ.get(TOKEN_ENV) or None


def _describe(error: BaseException) -> str:
    if isinstance(error, ServerError):
        return f"{error.code.name}: {error.details}"
    return str(error)


def _list(client: Client, args: argparse.Namespace) -> int:
    experiments = client.list_experiments(include_ended=args.all)
    if args.json:
        print(json.dumps([to_plain(e) for e in experiments], indent=2))
        return 0
    for experiment in experiments:
        state = "ended" if experiment.ended else "running"
        arms = ", ".join(f"{a.name}={a.model} ({a.weight:g})" for a in experiment.arms)
        shadows = ", ".join(f"{s.name}={s.model} ({s.sample_rate:.0%})" for s in experiment.shadows)
        print(f"{experiment.name} (revision {experiment.revision}, {state}): {arms}")
        if shadows:
            print(f"  shadows: {shadows}")
    return 0


def _report(client: Client, args: argparse.Namespace) -> int:
    report = client.experiment_report(args.name)
    if args.json:
        print(json.dumps(to_plain(report), indent=2))
    else:
        print(render_report(report))
    return 0


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _share(value: float, interval: tuple[float, float]) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1%} [{interval[0]:.1%}, {interval[1]:.1%}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def render_report(report: ExperimentReport) -> str:
    """The report as text tables: arms, shadow arms, then the verdict."""
    experiment = report.experiment
    ended = ", ended" if experiment.ended else ""
    generated = f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC"
    lines = [
        f"Experiment {experiment.name} (revision {experiment.revision}{ended}), at {generated}",
        "",
    ]
    rows = [
        [
            arm.name,
            str(arm.model or "-"),
            f"{arm.weight:g}",
            str(arm.requests),
            ", ".join(f"{k} {v}" for k, v in sorted(arm.errors.items())) or "0",
            _ms(arm.latency.p50_ms),
            _ms(arm.latency.p95_ms),
            _ms(arm.latency.p99_ms),
            str(arm.feedback),
            _share(arm.accuracy, arm.accuracy_interval),
        ]
        for arm in report.arms
    ]
    header = ["arm", "model", "weight", "calls", "errors", "p50 ms", "p95 ms", "p99 ms"]
    lines += _table([*header, "feedback", "accuracy [95% CI]"], rows)
    if report.shadows:
        lines += ["", "Shadow arms (compared with the primary answer on the same calls):"]
        shadow_rows = [
            [
                shadow.name,
                str(shadow.model or "-"),
                f"{shadow.sample_rate:.0%}",
                str(shadow.requests),
                ", ".join(f"{k} {v}" for k, v in sorted(shadow.errors.items())) or "0",
                _ms(shadow.latency.p50_ms),
                _share(shadow.agreement, shadow.agreement_interval),
                f"{shadow.mcnemar_b}/{shadow.mcnemar_c}, p={shadow.mcnemar_p:.3g}"
                if shadow.paired_feedback
                else "-",
            ]
            for shadow in report.shadows
        ]
        lines += _table(
            ["shadow", "model", "rate", "calls", "errors", "p50 ms", "agreement [95% CI]",
             "McNemar b/c"],
            shadow_rows,
        )  # fmt: skip
    verdict = report.verdict
    lines += [
        "",
        f"Verdict: {verdict.outcome}" + (f" ({verdict.winner})" if verdict.winner else ""),
        f"  {verdict.summary}",
        f"  test: {verdict.test}; alpha {verdict.alpha:g}, mixture sd {verdict.mixture_sd:g}, "
        f"min samples {verdict.min_samples}; always-valid p = {verdict.p_value:.3g}",
    ]
    return "\n".join(lines)


def _feedback(client: Client, args: argparse.Namespace) -> int:
    true_class: int | str = int(args.true_class) if args.true_class.isdigit() else args.true_class
    result = client.feedback(args.request_id, true_class)
    what = "already recorded" if result.duplicate else "recorded"
    print(f"{what}: request {args.request_id} is '{result.class_name}' ({result.class_index}), "
          f"experiment {result.experiment}")  # fmt: skip
    return 0


def read_definitions(path: Path) -> list[Experiment]:
    """The experiments of a file in the form of serving_config/experiments.toml."""
    data = tomllib.loads(path.read_text())
    tables = data.get("experiments")
    if not isinstance(tables, dict) or not tables:
        raise InvalidInput(f"{path} holds no [experiments.NAME] table")
    return [_definition(name, table) for name, table in tables.items()]


def _ref(entry: dict[str, Any]) -> ModelRef:
    return ModelRef(str(entry.get("model", "")), entry.get("version"), entry.get("label"))


def _definition(name: str, table: dict[str, Any]) -> Experiment:
    try:
        analysis = table.get("analysis", {})
        return Experiment(
            name=name,
            arms=[
                ExperimentArm(str(a["name"]), _ref(a), float(a.get("weight", 1.0)))
                for a in table.get("arms", [])
            ],
            shadows=[
                ShadowArm(str(s["name"]), _ref(s), float(s.get("sample_rate", 1.0)))
                for s in table.get("shadows", [])
            ],
            analysis=AnalysisSettings(
                float(analysis.get("alpha", 0.0)),
                int(analysis.get("min_samples", 0)),
                float(analysis.get("mixture_sd", 0.0)),
            ),
            description=str(table.get("description", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidInput(f"experiment '{name}': malformed definition ({error})") from error


def _create(client: Client, args: argparse.Namespace) -> int:
    for experiment in read_definitions(args.file):
        created = client.create_experiment(experiment)
        print(f"created {created.name} (revision {created.revision})")
    return 0


def _update(client: Client, args: argparse.Namespace) -> int:
    for experiment in read_definitions(args.file):
        updated = client.update_experiment(experiment)
        print(f"updated {updated.name} (revision {updated.revision})")
    return 0


def _set_weights(client: Client, args: argparse.Namespace) -> int:
    weights: dict[str, float] = {}
    for item in args.weights:
        arm, _, value = item.partition("=")
        try:
            weights[arm] = float(value)
        except ValueError:
            raise InvalidInput(f"'{item}' is not ARM=WEIGHT") from None
    current = next((e for e in client.list_experiments() if e.name == args.name), None)
    if current is None:
        raise InvalidInput(f"no running experiment '{args.name}'")
    updated = client.update_experiment(
        current.with_weights(weights), expected_revision=current.revision
    )
    arms = ", ".join(f"{a.name} {a.weight:g}" for a in updated.arms)
    print(f"{updated.name} (revision {updated.revision}): {arms}")
    return 0


def _end(client: Client, args: argparse.Namespace) -> int:
    ended = client.end_experiment(args.name)
    print(f"ended {ended.name} (revision {ended.revision}); its report stays available")
    return 0


if __name__ == "__main__":
    sys.exit(main())
