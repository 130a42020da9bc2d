"""Inputs the fuzzer found that broke the property, kept as plain tests (each one fails until the
gateway handles it, and guards it afterwards).

- GetExperimentReport with a `since` outside google.protobuf.Timestamp's range (seconds before
  0001-01-01 or after 9999-12-31, nanos outside 0..999,999,999) answered INTERNAL: the servicer's
  `Timestamp.ToDatetime` raised ValueError. A malformed field is INVALID_ARGUMENT.
- CreateExperiment whose arm (or shadow arm) names an experiment echoed the arm's whole name in
  the message: a 10,000-character name made a 10 kB message, and a 100,000-character one made the
  answer too large for gRPC's metadata limit, so the caller got RESOURCE_EXHAUSTED ("received
  metadata size exceeds hard limit") instead of INVALID_ARGUMENT. Echoed values are truncated.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from imgclf.v1 import admin_pb2, experiments_pb2
from imgclf.v1 import classifier_pb2 as pb

from tests.fuzz.stats import TALLY
from tests.fuzz.strategies import EXPERIMENT, MODEL
from tests.fuzz.target import ADMIN_METHODS, GET_REPORT, FuzzTarget

FAMILY = "selectors"
CREATE = next(m for m in ADMIN_METHODS if m.name == "CreateExperiment")


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-62_135_596_801, 0), (253_402_300_800, 0), (0, -1), (0, 1_000_000_000)],
    ids=["before year 1", "after year 9999", "negative nanos", "nanos over a second"],
)
async def test_a_report_since_a_time_timestamp_cannot_hold_is_invalid_argument(
    target: FuzzTarget, seconds: int, nanos: int
) -> None:
    TALLY.case(FAMILY)
    request = experiments_pb2.GetExperimentReportRequest(
        name=EXPERIMENT, since=Timestamp(seconds=seconds, nanos=nanos)
    )
    await target.call(FAMILY, GET_REPORT, request, expect=grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("length", [10_000, 100_000])
@pytest.mark.parametrize("kind", ["arm", "shadow arm"])
async def test_an_arm_naming_an_experiment_is_refused_with_a_short_message(
    target: FuzzTarget, length: int, kind: str
) -> None:
    TALLY.case(FAMILY)
    long_name = "a" * length
    experiment = experiments_pb2.Experiment(name="fz-regression")
    experiment.arms.add(name="b", model=pb.ModelSelector(name=MODEL), weight=1)
    wrong = pb.ModelSelector(name=MODEL, experiment=EXPERIMENT)
    if kind == "arm":
        experiment.arms.add(name=long_name, model=wrong, weight=1)
    else:
        experiment.arms.add(name="c", model=pb.ModelSelector(name=MODEL), weight=1)
        experiment.shadows.add(name=long_name, model=wrong, sample_rate=0.5)
    await target.call(
        FAMILY,
        CREATE,
        admin_pb2.CreateExperimentRequest(experiment=experiment),
        admin_token=True,
        expect=grpc.StatusCode.INVALID_ARGUMENT,
    )
