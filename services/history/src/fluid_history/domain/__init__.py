"""History's domain: what a query is, how pages are cut, and the rules of recording runs.

Nothing here imports grpc or a database driver: errors are fluid's typed errors.
"""

from .cursor import Cursor
from .history import RunHistory
from .query import DEFAULT_LIMIT, MAX_LIMIT, RunPage, RunQuery
from .snapshots import SKIP_DB_TAG, RecordResult, RefusedSnapshot, newest_first_per_run

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SKIP_DB_TAG",
    "Cursor",
    "RecordResult",
    "RefusedSnapshot",
    "RunHistory",
    "RunPage",
    "RunQuery",
    "newest_first_per_run",
]
