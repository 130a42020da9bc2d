"""The store: the prediction log, feedback, reports, shared experiment definitions and rollouts.

SQLAlchemy async Core on SQLite (WAL, a file: the default) or PostgreSQL (asyncpg), with the
schema created and changed only by the Alembic migrations in `server.store.migrations`
(`python -m server.store upgrade`). Every failure of the database surfaces as `StoreUnavailable`
(or another `StoreError`), within the store's timeout.
"""

from server.store.base import StoreBase
from server.store.engine import create_store_engine, default_store_url, safe_url
from server.store.errors import (
    RevisionConflict,
    RolloutConflict,
    RolloutNotFound,
    RolloutStateConflict,
    StoreError,
    StoreUnavailable,
)
from server.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    upgrade,
    upgrade_async,
)
from server.store.repository import (
    ExperimentStore,
    FeedbackOutcome,
    FeedbackResult,
    StoredExperiment,
)
from server.store.rollouts import TERMINAL_STATES, RolloutEvent, RolloutStore, StoredRollout

__all__ = [
    "TERMINAL_STATES",
    "ExperimentStore",
    "FeedbackOutcome",
    "FeedbackResult",
    "RevisionConflict",
    "RolloutConflict",
    "RolloutEvent",
    "RolloutNotFound",
    "RolloutStateConflict",
    "RolloutStore",
    "StoreBase",
    "StoreError",
    "StoreUnavailable",
    "StoredExperiment",
    "StoredRollout",
    "create_store_engine",
    "current_revision",
    "default_store_url",
    "downgrade",
    "head_revision",
    "safe_url",
    "upgrade",
    "upgrade_async",
]
