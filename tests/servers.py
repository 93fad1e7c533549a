"""The real servers some tests need, found through FLUID_TEST_* variables.

A missing server fails the test under CI (CI=true) and skips it elsewhere, so a laptop
without Redis still runs the rest while CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest
import redis

REDIS_URL = os.environ.get("FLUID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def require_server(url: str, default_port: int, what: str) -> str:
    if not _reachable(url, default_port):
        message = f"{what} is not reachable at {url}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI=true: a missing server is a failure)")
        pytest.skip(message)
    return url


def redis_url() -> str:
    return require_server(REDIS_URL, 6379, "Redis")


def wipe_redis(url: str, namespace: str) -> None:
    """Delete every key a test made under ``namespace`` (hash-tagged or prefixed)."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"*{namespace}*", count=1000):
            client.delete(key)
    finally:
        client.close()
