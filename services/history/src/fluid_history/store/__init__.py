"""Where history keeps runs: the SQL implementation of ``domain.ports.RunStore``."""

from .sql import SqlRunStore

__all__ = ["SqlRunStore"]
