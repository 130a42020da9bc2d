"""`ExperimentStore`: the prediction log, feedback, reports and experiment definitions, on the
plumbing of `server.store.base`.

Every method runs in one transaction, is bounded by `timeout_s`, and raises `StoreUnavailable`
when the database fails or does not answer in time (never a driver's exception, never a hang).
Datetimes go in timezone-aware (any zone) and come out aware in UTC, on both backends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server.experiments.records import PredictionRecord, PredictionRow, Role
from server.store.base import RACE_ROUNDS, AnyRow, StoreBase, aware_utc, check_lengths, utc_now
from server.store.errors import RevisionConflict, StoreError
from server.store.schema import experiments, feedback, predictions

FeedbackOutcome = Literal["recorded", "duplicate", "conflict"]


@dataclass(frozen=True)
class FeedbackResult:
    """What `add_feedback` did. `true_class` is the stored answer (the first one stands)."""

    # "recorded": stored now; "duplicate": the same class was already stored (a safe retry);
    # "conflict": a different class was already stored and was kept.
    outcome: FeedbackOutcome
    true_class: int


@dataclass(frozen=True)
class StoredExperiment:
    """An experiment definition as the store keeps it, shared by every gateway replica."""

    name: str
    definition: dict[str, Any]
    # 1 when created, +1 on every change (put, end): the token of optimistic concurrency.
    revision: int
    seed_digest: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class ExperimentStore(StoreBase):
    """The prediction log, feedback, reports and experiment definitions (see `StoreBase`)."""

    # The prediction log.

    async def insert_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Inserts the records in one statement (one per 1000 records); returns how many were new.

        A record whose (request_id, experiment, arm) is already stored is skipped, so a batch
        written again after a lost answer does not count twice.
        """
        if not records:
            return 0
        rows = [_prediction_values(record) for record in records]
        statement = self._insert_ignoring(
            predictions, predictions.c.request_id, predictions.c.experiment, predictions.c.arm
        ).returning(predictions.c.id)

        async def run(conn: AsyncConnection) -> int:
            return len((await conn.execute(statement, rows)).all())

        return await self._run("insert predictions", run, write=True)

    async def predictions_for(self, request_id: str) -> list[PredictionRecord]:
        """The primary records of a request id, in every experiment (shadow records left out)."""
        statement = (
            select(predictions)
            .where(predictions.c.request_id == request_id)
            .where(predictions.c.role == Role.PRIMARY.value)
            .order_by(predictions.c.id)
        )

        async def run(conn: AsyncConnection) -> list[PredictionRecord]:
            return [_record(row) for row in await conn.execute(statement)]

        return await self._run("read predictions", run)

    # Feedback.

    async def add_feedback(self, request_id: str, true_class: int) -> FeedbackResult:
        """Attaches the ground truth to a request id; the first answer for an id stands.

        Whether the request id was logged is the caller's check (`predictions_for`). Safe under
        concurrency: the unique request id decides which of two simultaneous calls records.
        """
        check_lengths(feedback, {"request_id": request_id})
        insert = (
            self._insert_ignoring(feedback, feedback.c.request_id)
            .values(request_id=request_id, true_class=true_class)
            .returning(feedback.c.id)
        )
        stored_class = select(feedback.c.true_class).where(feedback.c.request_id == request_id)

        async def run(conn: AsyncConnection) -> FeedbackResult:
            for _ in range(RACE_ROUNDS):
                inserted = await conn.execute(insert.values(created_at=utc_now()))
                if inserted.first() is not None:
                    return FeedbackResult("recorded", true_class)
                stored = (await conn.execute(stored_class)).scalar_one_or_none()
                if stored is not None:  # else pruned in between: insert again
                    outcome: FeedbackOutcome = "duplicate" if stored == true_class else "conflict"
                    return FeedbackResult(outcome, int(stored))
            raise StoreError(f"add feedback: the feedback of {request_id!r} kept changing")

        return await self._run("add feedback", run, write=True)

    # Reports.

    async def report_rows(
        self, experiment: str, *, since: datetime | None = None
    ) -> list[PredictionRow]:
        """Every record (primary and shadow) of an experiment created at or after `since`,
        with its request's feedback when there is some; oldest first."""
        statement = (
            select(
                predictions.c.request_id,
                predictions.c.arm,
                predictions.c.role,
                predictions.c.model,
                predictions.c.version,
                predictions.c.status,
                predictions.c.predicted_class,
                predictions.c.confidence,
                predictions.c.latency_ms,
                predictions.c.created_at,
                feedback.c.true_class,
                feedback.c.id.label("feedback_order"),
            )
            .select_from(
                predictions.outerjoin(feedback, feedback.c.request_id == predictions.c.request_id)
            )
            .where(predictions.c.experiment == experiment)
            .order_by(predictions.c.created_at, predictions.c.id)
        )
        if since is not None:
            statement = statement.where(predictions.c.created_at >= aware_utc(since, "since"))

        async def run(conn: AsyncConnection) -> list[PredictionRow]:
            return [_report_row(row) for row in await conn.execute(statement)]

        return await self._run("read report rows", run)

    async def feedback_outcomes(
        self, experiment: str, arms: Sequence[str], *, since: datetime | None = None
    ) -> list[tuple[str, bool]]:
        """(arm, right) of every OK primary call of `arms` with feedback, in feedback order: all
        the sequential verdict reads, without the rest of the rows."""
        statement = (
            select(predictions.c.arm, predictions.c.predicted_class, feedback.c.true_class)
            .select_from(
                predictions.join(feedback, feedback.c.request_id == predictions.c.request_id)
            )
            .where(
                predictions.c.experiment == experiment,
                predictions.c.role == Role.PRIMARY.value,
                predictions.c.status == "OK",
                predictions.c.arm.in_(list(arms)),
            )
            .order_by(feedback.c.id)
        )
        if since is not None:
            statement = statement.where(predictions.c.created_at >= aware_utc(since, "since"))

        async def run(conn: AsyncConnection) -> list[tuple[str, bool]]:
            return [
                (str(r.arm), r.predicted_class == r.true_class)
                for r in await conn.execute(statement)
            ]

        return await self._run("read feedback outcomes", run)

    # Experiment definitions.

    async def list_experiments(self) -> list[StoredExperiment]:
        """Every stored experiment, ended ones included, by name."""
        statement = select(experiments).order_by(experiments.c.name)

        async def run(conn: AsyncConnection) -> list[StoredExperiment]:
            return [_experiment(row) for row in await conn.execute(statement)]

        return await self._run("list experiments", run)

    async def get_experiment(self, name: str) -> StoredExperiment | None:
        async def run(conn: AsyncConnection) -> StoredExperiment | None:
            return await _fetch_experiment(conn, name)

        return await self._run("read experiment", run)

    async def put_experiment(
        self,
        name: str,
        definition: dict[str, Any],
        *,
        expected_revision: int | None,
        seed_digest: str | None,
        restart: bool = False,
    ) -> StoredExperiment:
        """Creates an experiment (revision 1) or replaces its definition (revision + 1).

        A replacement happens only when `expected_revision` is None or is the stored revision;
        otherwise `RevisionConflict(stored_revision)`. `restart` also resets `started_at` to now
        and clears `ended_at` (re-creating an ended experiment); without it both are kept.
        """
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        check_lengths(experiments, {"name": name, "seed_digest": seed_digest})

        async def run(conn: AsyncConnection) -> StoredExperiment:
            for _ in range(RACE_ROUNDS):
                now = utc_now()
                current = await _fetch_experiment(conn, name)
                if current is None:
                    created = await conn.execute(
                        self._insert_ignoring(experiments, experiments.c.name)
                        .values(
                            name=name,
                            definition=text,
                            revision=1,
                            seed_digest=seed_digest,
                            started_at=now,
                            updated_at=now,
                            ended_at=None,
                        )
                        .returning(*experiments.c)
                    )
                else:
                    if expected_revision is not None and expected_revision != current.revision:
                        raise RevisionConflict(current.revision)
                    values: dict[str, Any] = {
                        "definition": text,
                        "revision": current.revision + 1,
                        "seed_digest": seed_digest,
                        "updated_at": now,
                    }
                    if restart:
                        values |= {"started_at": now, "ended_at": None}
                    created = await conn.execute(
                        update(experiments)
                        .where(experiments.c.name == name)
                        .where(experiments.c.revision == current.revision)
                        .values(values)
                        .returning(*experiments.c)
                    )
                row = created.first()
                if row is not None:
                    return _experiment(row)
                # Another writer got in between our read and our write: read again.
            raise StoreError(f"put experiment: {name!r} kept changing")

        return await self._run("put experiment", run, write=True)

    async def end_experiment(self, name: str) -> StoredExperiment | None:
        """Marks an experiment ended (revision + 1); None when there is no such experiment.

        Ending an ended experiment changes nothing and returns it as stored.
        """

        async def run(conn: AsyncConnection) -> StoredExperiment | None:
            now = utc_now()
            ended = await conn.execute(
                update(experiments)
                .where(experiments.c.name == name)
                .where(experiments.c.ended_at.is_(None))
                .values(ended_at=now, updated_at=now, revision=experiments.c.revision + 1)
                .returning(*experiments.c)
            )
            row = ended.first()
            return _experiment(row) if row is not None else await _fetch_experiment(conn, name)

        return await self._run("end experiment", run, write=True)

    # Retention.

    async def prune(self, older_than: datetime) -> int:
        """Deletes the records created before `older_than`, and the feedback of request ids that
        no longer have any record; returns how many records were deleted."""
        cutoff = aware_utc(older_than, "older_than")

        async def run(conn: AsyncConnection) -> int:
            deleted = await conn.execute(
                delete(predictions).where(predictions.c.created_at < cutoff)
            )
            await conn.execute(
                delete(feedback).where(
                    ~exists().where(predictions.c.request_id == feedback.c.request_id)
                )
            )
            return int(deleted.rowcount)

        return await self._run("prune", run, write=True)


def _prediction_values(record: PredictionRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": record.request_id,
        "experiment": record.experiment,
        "arm": record.arm,
        "role": Role(record.role).value,
        "model": record.model,
        "version": record.version,
        "status": record.status,
        "predicted_class": record.predicted_class,
        "confidence": record.confidence,
        "latency_ms": record.latency_ms,
        "created_at": aware_utc(record.created_at, "created_at"),
        "gateway": record.gateway,
    }
    check_lengths(predictions, values)
    return values


def _record(row: AnyRow) -> PredictionRecord:
    m = row._mapping
    return PredictionRecord(
        request_id=m["request_id"],
        experiment=m["experiment"],
        arm=m["arm"],
        role=Role(m["role"]),
        model=m["model"],
        version=m["version"],
        status=m["status"],
        predicted_class=m["predicted_class"],
        confidence=m["confidence"],
        latency_ms=m["latency_ms"],
        created_at=m["created_at"],
        gateway=m["gateway"],
    )


def _report_row(row: AnyRow) -> PredictionRow:
    m = row._mapping
    return PredictionRow(
        request_id=m["request_id"],
        arm=m["arm"],
        role=Role(m["role"]),
        model=m["model"],
        version=m["version"],
        status=m["status"],
        predicted_class=m["predicted_class"],
        confidence=m["confidence"],
        latency_ms=m["latency_ms"],
        created_at=m["created_at"],
        true_class=m["true_class"],
        feedback_order=m["feedback_order"],
    )


def _experiment(row: AnyRow) -> StoredExperiment:
    m = row._mapping
    definition = json.loads(m["definition"])
    if not isinstance(definition, dict):
        raise StoreError(f"experiment {m['name']!r}: the stored definition is not a JSON object")
    return StoredExperiment(
        name=m["name"],
        definition=definition,
        revision=m["revision"],
        seed_digest=m["seed_digest"],
        started_at=m["started_at"],
        updated_at=m["updated_at"],
        ended_at=m["ended_at"],
    )


async def _fetch_experiment(conn: AsyncConnection, name: str) -> StoredExperiment | None:
    row = (await conn.execute(select(experiments).where(experiments.c.name == name))).first()
    return _experiment(row) if row is not None else None
