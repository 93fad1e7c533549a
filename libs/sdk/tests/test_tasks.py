"""Background loops stop even when one cancellation is swallowed."""

from __future__ import annotations

import asyncio

from fluid.service.tasks import cancel_and_wait


async def test_a_loop_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                # What asyncio.timeout() can do to a cancellation on Python 3.11.
                if swallowed:
                    raise
                swallowed += 1

    async def failing() -> None:
        raise RuntimeError("collected, not reported as never retrieved")

    loops = [asyncio.create_task(stubborn_loop()), asyncio.create_task(failing())]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(loops, retry_every=0.01), timeout=5)
    assert swallowed == 1
    assert all(loop.done() for loop in loops)
