"""Watching the processes of runs from outside: is a pid alive, and what did a run print."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def gone(*pids: int, timeout: float = 10) -> bool:
    """Bounded polling: a killed process disappears soon, not at an event we can await."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(alive(pid) for pid in pids):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def ready_pids(line: str) -> tuple[int, int]:
    match = re.search(r"ready pid=(\d+) grandchild=(\d+)", line)
    assert match is not None, line
    return int(match[1]), int(match[2])
