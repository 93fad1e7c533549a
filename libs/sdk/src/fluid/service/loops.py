"""Background loops: their health, their back-off, stopping them reliably, how often they
renew a lease, and how they treat a batch they cannot deliver."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from opentelemetry.metrics import CallbackOptions, Observation

from fluid.scheduler.errors import (
    ERRORS_BY_CODE,
    FluidError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from fluid.scheduler.health import DegradedLoop

from .metrics import meter

logger = logging.getLogger("fluid.loops")


@dataclass
class Backoff:
    """Exponential back-off with jitter between ``first`` and ``cap`` seconds."""

    first: float = 0.1
    cap: float = 5.0
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def delay(self) -> float:
        """The next delay (each failure doubles it, up to ``cap``)."""
        self._next = min(self.cap, self._next * 2 if self._next else self.first)
        # Jitter keeps replicas that failed together from retrying together.
        return self._next * random.uniform(0.8, 1.0)

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay())


@runtime_checkable
class _RpcFailure(Protocol):
    """A failed gRPC call (``grpc.aio.AioRpcError``), told by its shape so that domain
    code reporting to ``LoopHealth`` does not depend on grpc."""

    def code(self) -> Any: ...

    def details(self) -> str | None: ...


# Statuses that say a peer is away or slow, not that anything is wrong with us.
_PEER_AWAY = ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def _kind(summary: str) -> str:
    """The exception type or status code a summary starts with."""
    return summary.partition(":")[0]


def _code_name(error: _RpcFailure) -> str:
    return str(getattr(error.code(), "name", error.code()))


def _described(error: BaseException) -> tuple[str, bool]:
    """A one-line summary of ``error``, and whether it says a peer is away (not a bug)."""
    if isinstance(error, _RpcFailure):
        name = _code_name(error)
        return f"{name}: {error.details()}"[:500], name in _PEER_AWAY
    summary = f"{type(error).__name__}: {error}"[:500]
    return summary, isinstance(error, UnavailableError | ConnectionError | TimeoutError)


_REGISTRY: weakref.WeakSet[LoopHealth] = weakref.WeakSet()
_GAUGE_LOCK = threading.Lock()
_gauge_ready = False


def _observe(options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(int(name in health._degraded), {"loop": name, "owner": health.owner})
        for health in list(_REGISTRY)
        for name in sorted(health._seen)
    ]


def _register(health: LoopHealth) -> None:
    """One gauge for every loop of the process (several services share one when embedded)."""
    global _gauge_ready
    _REGISTRY.add(health)
    with _GAUGE_LOCK:
        if not _gauge_ready:
            meter("fluid.loops").create_observable_gauge(
                "fluid.loops.degraded",
                callbacks=[_observe],
                description="1 while a background loop is failing, 0 once it works",
            )
            _gauge_ready = True


@dataclass(eq=False)
class LoopHealth:
    """What the background loops of a process report about themselves.

    A loop calls ``failed`` when a round raises and ``ok`` when one succeeds. The
    first failure of an incident is logged (a bug with its traceback), again when the
    kind of failure changes, and the recovery once; the rounds in between are not, so a
    store that is down for a minute does not flood the log. ``owner`` names the service
    in the metric, since embedded services run loops of the same names.
    """

    owner: str = ""
    _degraded: dict[str, DegradedLoop] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        _register(self)

    def failed(self, loop: str, error: BaseException) -> None:
        self._seen.add(loop)
        summary, expected = _described(error)
        known = self._degraded.get(loop)
        if known is not None:
            # The status shows the latest error; the log hears of it when its kind changes.
            self._degraded[loop] = DegradedLoop(loop, summary, known.since)
            if _kind(known.error) == _kind(summary):
                return
        if expected:
            # A peer or store away for a while is an incident, not a bug: no traceback.
            logger.warning("%s failed (%s); retrying with back-off", loop, summary)
        else:
            logger.error("%s failed (%s); retrying with back-off", loop, summary, exc_info=error)
        if known is None:
            self._degraded[loop] = DegradedLoop(loop, summary, datetime.now(UTC))

    def ok(self, loop: str) -> None:
        self._seen.add(loop)
        incident = self._degraded.pop(loop, None)
        if incident is not None:
            logger.info("%s recovered (failing since %s)", loop, incident.since.isoformat())

    def degraded(self) -> tuple[DegradedLoop, ...]:
        """The loops failing now, by name."""
        return tuple(self._degraded[name] for name in sorted(self._degraded))


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], retry_every: float = 1.0) -> None:
    """Cancel background loops and return once every one of them has ended.

    One cancellation is not always enough: on Python 3.11 a cancellation arriving just as
    an ``asyncio.timeout()`` deadline expires comes out as ``TimeoutError``, which a retry
    loop's ``except Exception`` catches and carries on (seen as a scheduler that never
    stopped). Such a loop is cancelled again until it ends.
    """
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_every)
    # Collect the reports so no exception is reported as never retrieved.
    await asyncio.gather(*every, return_exceptions=True)


# A lease (a worker's on its runs, the scheduler leader's) is renewed this many times per
# TTL: a renewal may fail, or come late, without the lease lapsing.
RENEWALS_PER_TTL = 3


def renewal_interval(ttl: float) -> float:
    """Seconds between two renewals of a lease that lasts ``ttl`` seconds."""
    return ttl / RENEWALS_PER_TTL


class BatchFailure(Enum):
    """What a loop delivering batches to a peer (a worker's reports to the dispatcher, the
    dispatcher's snapshots to history) does when a batch fails: no item may hold up the
    others for good, and a peer away loses nothing."""

    # The peer is away, restarting or slow: the same batch is sent again, however often.
    not_now = "not now"
    # The peer refuses the batch's content: it is split until the culprit stands alone.
    refused = "refused"
    # Anything else (a bug in the peer that an item may trigger): the batch is sent again
    # until BATCH_TRIES such failures came in a row, then handled as refused.
    unforeseen = "unforeseen"


# What a peer answers about the content of a batch, not about itself.
BATCH_REFUSALS = (ResourceExhaustedError, InvalidArgumentError)
# Unforeseen failures in a row after which a batch is handled as refused.
BATCH_TRIES = 5
# Statuses saying a call did not get through or no answer came back: nothing is wrong
# with what was sent, so it may be sent again.
_NOT_THROUGH = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})


def rpc_error(error: _RpcFailure) -> FluidError:
    """The typed error of a failed gRPC call, its message starting with the status code
    (a call that did not get through is ``UnavailableError``: it may be sent again)."""
    name = _code_name(error)
    message = f"{name}: {error.details()}"
    if name in _NOT_THROUGH:
        return UnavailableError(message)
    return ERRORS_BY_CODE.get(name, FluidError)(message)


def batch_failure(error: BaseException) -> BatchFailure:
    """How to treat ``error``, raised sending a batch: a typed error, or a failed gRPC
    call (as its typed error)."""
    if isinstance(error, _RpcFailure):
        error = rpc_error(error)
    if isinstance(error, UnavailableError):
        return BatchFailure.not_now
    if isinstance(error, BATCH_REFUSALS):
        return BatchFailure.refused
    return BatchFailure.unforeseen
