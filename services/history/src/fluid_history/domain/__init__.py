"""History's domain: what a query is, how pages are cut, the rules of recording runs, and
the store they need (``ports``).

Nothing here imports grpc, a database driver, ``store`` or ``api``: those import the
domain. Errors are fluid's typed errors.
"""

from .cursor import Cursor
from .history import RunHistory
from .ports import ExpiringStore, RunStore
from .query import RunPage, RunQuery
from .snapshots import SKIP_DB_TAG, RecordResult, RefusedSnapshot

__all__ = [
    "SKIP_DB_TAG",
    "Cursor",
    "ExpiringStore",
    "RecordResult",
    "RefusedSnapshot",
    "RunHistory",
    "RunPage",
    "RunQuery",
    "RunStore",
]
