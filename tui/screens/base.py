"""What every console screen shares: the case path, read-only mode, literal text, and a thread worker that
opens its own connection to the case (SQLite connections are per thread)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from textual.screen import Screen

from casefile.case import Case, open_case

if TYPE_CHECKING:
    from tui.app import StanchApp

T = TypeVar("T")


class CaseScreen(Screen[None]):
    """A screen over the open case. Subclasses set `NAME` (the `:` jump name) and `TITLE`."""

    NAME = ""
    TITLE = ""
    stale = False  # the case changed (an ingest or pull in the console) since this screen last read it

    @property
    def stanch(self) -> StanchApp:
        from tui.app import StanchApp

        app = self.app
        assert isinstance(app, StanchApp)
        return app

    @property
    def case_path(self) -> str:
        return self.stanch.case_path

    @property
    def read_only(self) -> bool:
        return self.stanch.read_only

    @contextmanager
    def case(self) -> Iterator[Case]:
        """A connection of this thread's own (call from a worker thread)."""
        with open_case(self.case_path, analyst=self.stanch.analyst, upgrade=False) as c:
            yield c

    def read(self, fn: Callable[[Case], T]) -> T:
        """Run `fn(case)` on a fresh connection (from a worker thread)."""
        with self.case() as c:
            return fn(c)

    def on_screen_resume(self) -> None:
        self.stanch._refresh_subtitle()
        if self.stale:
            self.stale = False
            reload = getattr(self, "action_reload", None)
            if reload is not None:
                reload()


def noop(*_: Any) -> None:
    return None
