"""The experiments a gateway routes through, in step with the store and with the other replicas.

`serving_config/experiments.toml` gives the initial definitions. The store is where run-time
changes (the Admin API, the rollout tool) are kept, with a revision number, so every replica
applies the same definition and a restart keeps it:

- an experiment of the file that the store does not know is written to it (revision 1), tagged
  with the digest of the file's definition;
- when the file's definition of it changes (its digest differs from the stored tag), the file
  wins once: it replaces the stored definition as a new revision;
- otherwise the stored definition (perhaps changed at run time) is the one that routes.

Every replica re-reads the store every `sync_interval_s` and applies newer revisions. A store that
cannot be reached leaves routing on the last definitions known, never fails a call, and is tried
again at the next round; changes through the Admin API need the store, so they fail then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from server.experiments.definitions import (
    DefinitionError,
    Experiment,
    check_models,
    digest,
    from_dict,
    to_dict,
    validate,
)
from server.gateway.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
)
from server.periodic import Periodic
from server.store.errors import RevisionConflict, StoreError
from server.store.repository import ExperimentStore, StoredExperiment

log = logging.getLogger(__name__)
T = TypeVar("T")
ModelsProvider = Callable[[], Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class ActiveExperiment:
    definition: Experiment
    revision: int
    started_at: datetime
    ended: bool = False


class ExperimentRegistry:
    def __init__(
        self,
        file_definitions: Sequence[Experiment],
        *,
        store: ExperimentStore | None,
        models: ModelsProvider,
        sync_interval_s: float,
    ) -> None:
        self._store = store
        self._models = models
        self._file = {e.name: e for e in file_definitions}
        now = datetime.now(UTC)
        self._active: dict[str, ActiveExperiment] = {
            e.name: ActiveExperiment(e, 0, now) for e in file_definitions
        }
        self._rounds = Periodic(self.sync, sync_interval_s, "the experiment sync")
        self._change_lock = asyncio.Lock()
        self._store_ok = True

    # Reading (the serving path: memory only) --------------------------------------------------

    def get(self, name: str) -> ActiveExperiment | None:
        return self._active.get(name)

    def routing(self, name: str) -> Experiment:
        """The definition that routes calls naming `name`; NotFound when it does not route."""
        active = self._active.get(name)
        if active is None:
            raise NotFound(
                f"unknown experiment '{name[:128]}'; see ListExperiments for the experiments"
            )
        if active.ended:
            raise NotFound(f"experiment '{name}' has ended; its report is still available")
        return active.definition

    def names(self) -> frozenset[str]:
        """Every experiment known (ended ones too): the only values metric labels may take."""
        return frozenset(self._active)

    def experiments(self, *, include_ended: bool = False) -> list[ActiveExperiment]:
        return [a for _, a in sorted(self._active.items()) if include_ended or not a.ended]

    # Keeping in step with the store ------------------------------------------------------------

    async def start(self) -> None:
        """First sync (bounded by the store's timeout), then a sync every interval."""
        await self.sync()
        if self._store is not None:
            self._rounds.start()

    async def close(self) -> None:
        await self._rounds.close()

    async def sync(self) -> bool:
        """Seeds the store from the file where needed and applies what it holds; False if down."""
        if self._store is None:
            return False
        try:
            stored = {s.name: s for s in await self._store.list_experiments()}
            for name, definition in self._file.items():
                seed = digest(definition)
                current = stored.get(name)
                if current is not None and current.seed_digest == seed:
                    continue
                if current is not None and current.seed_digest is None:
                    continue  # made through the Admin API: the file does not own it
                with contextlib.suppress(RevisionConflict):
                    stored[name] = await self._store.put_experiment(
                        name,
                        to_dict(definition),
                        expected_revision=None if current is None else current.revision,
                        seed_digest=seed,
                    )
        except StoreError as error:
            if self._store_ok:
                log.warning("cannot sync experiments with the store: %s", error)
            self._store_ok = False
            return False
        if not self._store_ok:
            log.info("experiments are in step with the store again")
        self._store_ok = True
        for entry in stored.values():
            self._apply(entry)
        return True

    def _apply(self, entry: StoredExperiment) -> None:
        known = self._active.get(entry.name)
        if known is not None and known.revision >= entry.revision and known.revision > 0:
            return
        try:
            definition = from_dict(entry.name, entry.definition)
        except DefinitionError as error:
            log.error("stored experiment '%s' is not valid, ignored: %s", entry.name, error)
            return
        self._active[entry.name] = ActiveExperiment(
            definition, entry.revision, entry.started_at, entry.ended_at is not None
        )

    # Changing (the Admin API) ------------------------------------------------------------------

    def _check(self, experiment: Experiment) -> None:
        try:
            validate(experiment)
            check_models(experiment, self._models())
        except DefinitionError as error:
            raise InvalidRequest(str(error)) from error

    def _require_store(self) -> ExperimentStore:
        if self._store is None:
            raise FailedPrecondition(
                "experiments cannot be changed at run time without a store (set store_url)"
            )
        return self._store

    async def create(self, experiment: Experiment) -> ActiveExperiment:
        self._check(experiment)
        store = self._require_store()
        async with self._change_lock:
            existing = await _guard(store.get_experiment(experiment.name))
            if existing is not None and existing.ended_at is None:
                raise AlreadyExists(
                    f"experiment '{experiment.name}' is running; update or end it first"
                )
            stored = await _guard(
                store.put_experiment(
                    experiment.name,
                    to_dict(experiment),
                    expected_revision=None if existing is None else existing.revision,
                    seed_digest=None,
                    restart=existing is not None,
                )
            )
            self._apply(stored)
        return self._active[experiment.name]

    async def update(
        self, experiment: Experiment, *, expected_revision: int | None, restart: bool = False
    ) -> ActiveExperiment:
        self._check(experiment)
        store = self._require_store()
        async with self._change_lock:
            existing = await _guard(store.get_experiment(experiment.name))
            if existing is None or existing.ended_at is not None:
                raise NotFound(f"no running experiment '{experiment.name}'; create it first")
            stored = await _guard(
                store.put_experiment(
                    experiment.name,
                    to_dict(experiment),
                    expected_revision=existing.revision
                    if expected_revision is None
                    else expected_revision,
                    seed_digest=existing.seed_digest,
                    restart=restart,
                )
            )
            self._apply(stored)
        return self._active[experiment.name]

    async def end(self, name: str) -> ActiveExperiment:
        store = self._require_store()
        async with self._change_lock:
            existing = await _guard(store.get_experiment(name))
            if existing is None:
                raise NotFound(f"unknown experiment '{name[:128]}'")
            if existing.ended_at is None:
                existing = await _guard(store.end_experiment(name)) or existing
            self._apply(existing)
        active = self._active[name]
        if not active.ended:
            self._active[name] = replace(active, ended=True)
        return self._active[name]


async def _guard(call: Awaitable[T]) -> T:
    """Runs a store call, turning store failures into the gateway's errors."""
    try:
        return await call
    except RevisionConflict as error:
        raise Conflict(
            f"the experiment changed meanwhile (now revision {error.stored_revision}); "
            "read it again and retry"
        ) from error
    except StoreError as error:
        raise StoreUnavailable.because(error) from error
