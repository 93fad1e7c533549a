"""Delivers run snapshots from the store's outbox to the history service.

An outbox entry is acknowledged only after history committed it, so history can be
down (or restarting) without losing a snapshot: the snapshots wait in the store and are
sent again. History keeps the highest version of each run, so replays are harmless.

One snapshot history cannot take never holds up the others: history names the
snapshots it refused, a batch refused whole (too large, malformed) is split until the
culprit stands alone, and a snapshot refused on its own goes to the dead letters with
the reason, where operators see it (``fluid dead-letters``) and can send it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from fluid.scheduler import wire
from fluid.scheduler.limits import batches, limits
from fluid.scheduler.run import Run, newest_first_per_run, utcnow
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc, run_pb2
from fluid.service.channel import open_channel
from fluid.service.loops import BATCH_TRIES, Backoff, BatchFailure, LoopHealth, batch_failure

from .domain.ports import OutboxEntry, QueueStore

logger = logging.getLogger("fluid.dispatcher.history")

LOOP_NAME = "history-forwarder"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    entry: OutboxEntry
    message: run_pb2.Run


# Outbox entries read per round (FLUID_HISTORY_BATCH_SIZE defaults to it).
DEFAULT_BATCH_SIZE = 500


class HistoryForwarder:
    def __init__(
        self,
        store: QueueStore,
        history_address: str,
        mask: Callable[[Run], Awaitable[Run]],
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger: float = 0.05,
        health: LoopHealth | None = None,
        token: str | None = None,
    ) -> None:
        self.store = store
        self.history_address = history_address
        # History keeps runs as everyone sees them: secrets masked (Dispatcher.masked).
        self.mask = mask
        # Sent with every RecordRuns: history lets only `ingest` tokens write.
        self.token = token
        self.batch_size = batch_size
        self.linger = linger
        self.health = health or LoopHealth()
        self._strikes = 0  # failures in a row that are neither refusals nor "not now"

    async def run(self) -> None:
        """Forward forever (cancel to stop); no failure ends the loop."""
        channel = open_channel(self.history_address, self.token)
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        backoff = Backoff(first=0.2, cap=5.0)
        try:
            while True:
                try:
                    forwarded = await self.forward_once(stub)
                except Exception as error:
                    self.health.failed(LOOP_NAME, error)
                    await backoff.sleep()
                    continue
                self.health.ok(LOOP_NAME)
                backoff.reset()
                if 0 < forwarded < self.batch_size:
                    # Light traffic: let a few more snapshots gather instead of committing
                    # one transaction in history per snapshot.
                    await asyncio.sleep(self.linger)
        finally:
            await channel.close(None)

    async def forward_once(self, stub: history_pb2_grpc.HistoryServiceAsyncStub) -> int:
        """Deliver one read of the outbox; how many outbox entries it settled."""
        entries = await self.store.read_outbox(self.batch_size, wait=1.0)
        if not entries:
            return 0
        # Only the newest snapshot of each run matters to history: encode just those.
        per_run = newest_first_per_run(entries, lambda e: e.run_id, lambda e: e.version)
        refused: list[tuple[OutboxEntry, str]] = []
        snapshots: list[_Snapshot] = []
        for entry in (same_run[0] for same_run in per_run.values()):
            try:
                run = entry.run()
            except Exception as error:
                refused.append((entry, f"the snapshot cannot be decoded: {error}"))
                continue
            # Outside the refusals: a failure to mask (the store unreachable for the
            # task's schema) is a failed round, retried, never a dead letter.
            shown = await self.mask(run)
            try:
                snapshots.append(_Snapshot(entry, wire.run_to_pb(shown)))
            except Exception as error:
                refused.append((entry, f"the snapshot cannot be encoded: {error}"))
        for batch in batches(snapshots, _snapshot_size, limits().batch_bytes):
            refused.extend(await self._deliver(stub, batch))
        if refused:
            for entry, reason in refused:
                logger.error(
                    "history refused run %s (version %d): %s; kept as a dead letter",
                    entry.run_id,
                    entry.version,
                    reason,
                )
            await self.store.add_dead_letters(refused, utcnow())
        await self.store.ack_outbox(entries)
        # Only a whole round delivered ends a series of failures: within the round, the
        # halves of a split that still fail are refusals once the series was long enough.
        self._strikes = 0
        return len(entries)

    async def _deliver(
        self, stub: history_pb2_grpc.HistoryServiceAsyncStub, batch: Sequence[_Snapshot]
    ) -> list[tuple[OutboxEntry, str]]:
        """Record ``batch``; the snapshots refused, with why. A batch refused whole is
        split in halves until each refusal stands alone; other failures raise (retry)."""
        try:
            response = await stub.RecordRuns(
                history_pb2.RecordRunsRequest(runs=[snapshot.message for snapshot in batch]),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            failure = batch_failure(error)
            if failure is BatchFailure.not_now:
                raise
            if failure is BatchFailure.unforeseen:
                self._strikes += 1
                if self._strikes < BATCH_TRIES:
                    raise
            if len(batch) == 1:
                return [(batch[0].entry, f"{error.code().name}: {error.details()}")]
            middle = len(batch) // 2
            return [
                *await self._deliver(stub, batch[:middle]),
                *await self._deliver(stub, batch[middle:]),
            ]
        sent = {
            (snapshot.entry.run_id, snapshot.entry.version): snapshot.entry for snapshot in batch
        }
        return [
            (sent[key], refusal.reason)
            for refusal in response.refused
            if (key := (refusal.run_id, refusal.version)) in sent
        ]


def _snapshot_size(snapshot: _Snapshot) -> int:
    # A repeated field costs a tag and a length prefix on top of the message.
    return snapshot.message.ByteSize() + 8
