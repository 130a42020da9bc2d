"""The experiment store: the prediction log, feedback, reports and shared experiment definitions.

SQLAlchemy async Core on SQLite (WAL, a file: the default) or PostgreSQL (asyncpg), with the
schema created and changed only by the Alembic migrations in `server.store.migrations`
(`python -m server.store upgrade`). Every failure of the database surfaces as `StoreUnavailable`
(or another `StoreError`), within the store's timeout.
"""

from server.store.engine import create_store_engine, default_store_url, safe_url
from server.store.errors import RevisionConflict, StoreError, StoreUnavailable
from server.store.migrate import current_revision, head_revision, upgrade, upgrade_async
from server.store.repository import (
    ExperimentStore,
    FeedbackOutcome,
    FeedbackResult,
    StoredExperiment,
)

__all__ = [
    "ExperimentStore",
    "FeedbackOutcome",
    "FeedbackResult",
    "RevisionConflict",
    "StoreError",
    "StoreUnavailable",
    "StoredExperiment",
    "create_store_engine",
    "current_revision",
    "default_store_url",
    "head_revision",
    "safe_url",
    "upgrade",
    "upgrade_async",
]
