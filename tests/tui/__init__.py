"""Helpers shared by the console tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


async def settle(pilot: Any, delay: float = 0.0, rounds: int = 3) -> None:
    """Let the console finish what it started: an optional pause, then `rounds` times wait for the workers (and
    the workers they start) and for a refresh."""
    if delay:
        await pilot.pause(delay)
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def copy_case(src: Path, dest_dir: Path) -> Path:
    """A copy of the case file `src` (and its WAL) in `dest_dir`, for a test that writes to it."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", dest_dir / f"{src.name}{suffix}")
    return dest_dir / src.name
