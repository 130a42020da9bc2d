"""The Admin API on a real gateway: bearer tokens (none, wrong, rotated, disabled), audit log
lines, invalid definitions refused with the running experiment left as it was, and the life of
an experiment (create, update with a revision check, end, create again)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from imgclf.v1 import admin_pb2, classifier_pb2, experiments_pb2

from server.gateway.server import Gateway
from tests.experiments.conftest import ADMIN, EXPERIMENT, GatewayFactory, Stubs, through


def definition(
    name: str = "new-exp", *arms: tuple[str, str, str, float]
) -> experiments_pb2.Experiment:
    chosen = arms or (("a", "cnn", "stable", 1.0), ("b", "cnn", "canary", 1.0))
    message = experiments_pb2.Experiment(name=name)
    for arm, model, label, weight in chosen:
        message.arms.add(
            name=arm, model=classifier_pb2.ModelSelector(name=model, label=label), weight=weight
        )
    return message


async def listed(stubs: Stubs) -> dict[str, experiments_pb2.Experiment]:
    response = await stubs.experiments.ListExperiments(
        experiments_pb2.ListExperimentsRequest(include_ended=True)
    )
    return {e.name: e for e in response.experiments}


async def status(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


async def test_tokens_decide_who_may_change_experiments(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        "# rotation: the old and the new token are both valid\nold-token\nnew-token\n"
    )
    gateway = await make_gateway(admin_token_file=tokens, admin_token_env="")
    admin = connect(gateway).admin
    create = admin_pb2.CreateExperimentRequest(experiment=definition())
    code, message = await status(admin.CreateExperiment(create))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in message
    code, _ = await status(
        admin.CreateExperiment(create, metadata=(("authorization", "Bearer wrong"),))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = await status(
        admin.CreateExperiment(create, metadata=(("authorization", "Basic old-token"),))
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED
    with caplog.at_level(logging.INFO, logger="imgclf.audit"):
        created = await admin.CreateExperiment(
            create, metadata=(("authorization", "Bearer old-token"),)
        )
        await admin.EndExperiment(
            admin_pb2.EndExperimentRequest(name="new-exp"),
            metadata=(("authorization", "Bearer new-token"),),
        )
    assert created.revision == 1
    audit = [r for r in caplog.records if r.name == "imgclf.audit"]
    assert [(r.admin_method, r.code) for r in audit] == [
        ("CreateExperiment", "OK"),
        ("EndExperiment", "OK"),
    ]  # type: ignore[attr-defined]
    assert all(r.who.startswith("sha256:") and "token" not in r.who for r in audit)  # type: ignore[attr-defined]
    # The data plane needs no token.
    assert (await connect(gateway).classifier.Classify(through())).experiment == EXPERIMENT


async def test_without_configured_tokens_the_admin_api_is_closed(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    gateway = await make_gateway(admin_token_env="IMGCLF_NO_SUCH_VARIABLE")
    code, message = await status(
        connect(gateway).admin.CreateExperiment(
            admin_pb2.CreateExperimentRequest(experiment=definition()), metadata=ADMIN
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and "disabled" in message


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ((("a", "resnet", "stable", 1.0), ("b", "cnn", "canary", 1.0)), "unknown model 'resnet'"),
        ((("a", "cnn", "beta", 1.0), ("b", "cnn", "canary", 1.0)), "has no label 'beta'"),
        ((("a", "cnn", "stable", 0.0), ("b", "cnn", "canary", 0.0)), "weights sum to 0"),
        ((("a", "cnn", "stable", 1.0), ("a", "cnn", "canary", 1.0)), "duplicate arm name 'a'"),
        ((("a", "cnn", "stable", 1.0),), "at least two arms"),
    ],
)
async def test_invalid_definitions_are_refused_and_nothing_changes(
    make_gateway: GatewayFactory,
    connect: Callable[[Gateway], Stubs],
    arms: tuple[tuple[str, str, str, float], ...],
    message: str,
) -> None:
    stubs = connect(await make_gateway())
    before = await listed(stubs)
    update = admin_pb2.UpdateExperimentRequest(experiment=definition(EXPERIMENT, *arms))
    code, details = await status(stubs.admin.UpdateExperiment(update, metadata=ADMIN))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details
    create = admin_pb2.CreateExperimentRequest(experiment=definition("other", *arms))
    code, details = await status(stubs.admin.CreateExperiment(create, metadata=ADMIN))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details
    assert await listed(stubs) == before
    assert (await stubs.classifier.Classify(through())).arm in {"stable", "canary"}


async def test_the_life_of_an_experiment(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway())
    admin = stubs.admin
    created = await admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(experiment=definition()), metadata=ADMIN
    )
    code, _ = await status(
        admin.CreateExperiment(
            admin_pb2.CreateExperimentRequest(experiment=definition()), metadata=ADMIN
        )
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    changed = definition("new-exp", ("a", "cnn", "stable", 1.0), ("b", "cnn", "canary", 3.0))
    updated = await admin.UpdateExperiment(
        admin_pb2.UpdateExperimentRequest(experiment=changed, expected_revision=created.revision),
        metadata=ADMIN,
    )
    assert updated.revision == created.revision + 1
    code, details = await status(
        admin.UpdateExperiment(
            admin_pb2.UpdateExperimentRequest(
                experiment=changed, expected_revision=created.revision
            ),
            metadata=ADMIN,
        )
    )
    assert code == grpc.StatusCode.ABORTED and "revision" in details
    assert (await stubs.classifier.Classify(through("new-exp"))).experiment == "new-exp"
    ended = await admin.EndExperiment(
        admin_pb2.EndExperimentRequest(name="new-exp"), metadata=ADMIN
    )
    assert ended.ended
    code, _ = await status(stubs.classifier.Classify(through("new-exp")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = await status(
        admin.EndExperiment(admin_pb2.EndExperimentRequest(name="never"), metadata=ADMIN)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    again = await admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(experiment=definition()), metadata=ADMIN
    )
    assert not again.ended and again.started_at.ToDatetime() >= ended.started_at.ToDatetime()
    assert (await stubs.classifier.Classify(through("new-exp"))).experiment == "new-exp"


async def test_changes_without_a_store_are_refused(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway(store_url=""))
    code, message = await status(
        stubs.admin.CreateExperiment(
            admin_pb2.CreateExperimentRequest(experiment=definition()), metadata=ADMIN
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "store" in message
    code, _ = await status(
        stubs.experiments.GetExperimentReport(
            experiments_pb2.GetExperimentReportRequest(name=EXPERIMENT)
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_an_update_can_start_the_report_afresh(
    make_gateway: GatewayFactory, connect: Callable[[Gateway], Stubs]
) -> None:
    stubs = connect(await make_gateway())
    for i in range(5):
        await stubs.classifier.Classify(through(key=f"k{i}"))
    request = experiments_pb2.GetExperimentReportRequest(name=EXPERIMENT)
    assert sum(a.requests for a in (await stubs.experiments.GetExperimentReport(request)).arms) == 5
    (current,) = (await listed(stubs)).values()
    kept = admin_pb2.UpdateExperimentRequest(experiment=current)
    await stubs.admin.UpdateExperiment(kept, metadata=ADMIN)
    assert sum(a.requests for a in (await stubs.experiments.GetExperimentReport(request)).arms) == 5
    fresh = admin_pb2.UpdateExperimentRequest(experiment=current, restart=True)
    restarted = await stubs.admin.UpdateExperiment(fresh, metadata=ADMIN)
    assert restarted.started_at.ToDatetime() > current.started_at.ToDatetime()
    assert sum(a.requests for a in (await stubs.experiments.GetExperimentReport(request)).arms) == 0
    await stubs.classifier.Classify(through(key="after"))
    assert sum(a.requests for a in (await stubs.experiments.GetExperimentReport(request)).arms) == 1
