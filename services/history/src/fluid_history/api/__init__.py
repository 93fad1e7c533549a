"""History's gRPC face: converts messages to domain values and back, nothing more."""

from .servicer import HistoryServicer

__all__ = ["HistoryServicer"]
