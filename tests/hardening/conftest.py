"""Fixtures shared by the hardening tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.worker import Worker, WorkerState


@pytest.fixture
def failed_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, BaseException | None]]]:
    """Every console worker that ends in ERROR (screens run theirs with exit_on_error=False: a failure there would
    otherwise be silent)."""
    failed: list[tuple[str, BaseException | None]] = []
    original = Worker._run

    async def run(self: Worker[Any], app: Any) -> None:
        await original(self, app)
        if self.state == WorkerState.ERROR:
            failed.append((self.name, self.error))

    monkeypatch.setattr(Worker, "_run", run)
    yield failed
