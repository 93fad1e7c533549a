"""The opaque page cursor: the position of the last run of a page in the history order."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from fluid.scheduler.errors import InvalidArgumentError
from fluid.scheduler.run import Run

_MALFORMED = "cursor: malformed"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Runs strictly before ``(queued, run_id)`` in newest-first order come next.

    The id is part of the position because many runs share a queued time; without it
    a page boundary falling inside such a group would skip or repeat runs.
    """

    queued: datetime
    run_id: str

    @classmethod
    def after(cls, run: Run) -> Cursor:
        if run.queued is None:
            raise ValueError(f"run {run.id} has no queued time: it cannot be a page boundary")
        return cls(queued=run.queued, run_id=run.id)

    def encode(self) -> str:
        document = {"q": self.queued.astimezone(UTC).isoformat(), "id": self.run_id}
        raw = json.dumps(document, separators=(",", ":")).encode()
        # Padding is dropped: "=" would need escaping wherever the cursor travels in a URL.
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor ``encode`` produced; anything else is ``InvalidArgumentError``."""
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            document = json.loads(raw)
        except (binascii.Error, ValueError):
            raise InvalidArgumentError(_MALFORMED) from None
        if not isinstance(document, dict):
            raise InvalidArgumentError(_MALFORMED)
        queued, run_id = document.get("q"), document.get("id")
        if not isinstance(queued, str) or not isinstance(run_id, str) or not run_id:
            raise InvalidArgumentError(_MALFORMED)
        try:
            when = datetime.fromisoformat(queued)
        except ValueError:
            raise InvalidArgumentError(_MALFORMED) from None
        if when.tzinfo is None:
            raise InvalidArgumentError(_MALFORMED)
        return cls(queued=when.astimezone(UTC), run_id=run_id)
