"""Delivers run snapshots from the store's outbox to the history service.

An outbox entry is acknowledged only after history committed it, so history can be
down (or restarting) without losing a state: the snapshots wait in the store and are
sent again. History keeps the highest version of each run, so replays are harmless.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from fluid.scheduler import wire
from fluid.scheduler.v1 import history_pb2, history_pb2_grpc
from fluid.service.channel import open_channel

from .store.base import OutboxEvent, QueueStore

logger = logging.getLogger("fluid.dispatcher.history")


class HistoryForwarder:
    def __init__(
        self,
        store: QueueStore,
        history_address: str,
        batch_size: int = 500,
        linger: float = 0.05,
    ) -> None:
        self.store = store
        self.history_address = history_address
        self.batch_size = batch_size
        self.linger = linger

    async def run(self) -> None:
        """Forward forever (cancel to stop)."""
        channel = open_channel(self.history_address)
        stub = history_pb2_grpc.HistoryServiceStub(channel)
        backoff = 0.2
        try:
            while True:
                events = await self.store.read_outbox(self.batch_size, wait=1.0)
                if not events:
                    continue
                # Only the newest snapshot of each run matters to history: decode just those.
                newest: dict[str, OutboxEvent] = {}
                for event in events:
                    known = newest.get(event.run_id)
                    if known is None or event.version > known.version:
                        newest[event.run_id] = event
                request = history_pb2.RecordRunsRequest(
                    runs=[wire.run_to_pb(event.run()) for event in newest.values()]
                )
                try:
                    await stub.RecordRuns(request, timeout=30)
                except grpc.aio.AioRpcError as error:
                    logger.warning(
                        "history at %s unavailable (%s); %d events wait in the outbox",
                        self.history_address,
                        error.code().name,
                        len(events),
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.2
                await self.store.ack_outbox(events)
                if len(events) < self.batch_size:
                    # Light traffic: let a few more states gather instead of committing
                    # one transaction in history per state.
                    await asyncio.sleep(self.linger)
        finally:
            await channel.close(None)
