"""Helpers shared by the console tests."""

from __future__ import annotations

from typing import Any


async def settle(pilot: Any, delay: float = 0.0, rounds: int = 3) -> None:
    """Let the console finish what it started: an optional pause, then `rounds` times wait for the workers (and
    the workers they start) and for a refresh."""
    if delay:
        await pilot.pause(delay)
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
