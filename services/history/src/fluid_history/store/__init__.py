"""Where history keeps runs: the ``RunStore`` interface and its SQL implementation."""

from .base import RunStore
from .sql import SqlRunStore

__all__ = ["RunStore", "SqlRunStore"]
