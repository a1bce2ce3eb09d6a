"""`stanch` with no command, in a terminal: recent cases, open one by path, or start a new case.

The launcher only chooses; it returns the chosen case path and `run_console` opens it. A new case is created here
(`casefile.create_case`) so the responder never needs the command line for the first step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Label

from tui import recent
from tui.safe_text import clean, literal


class LauncherApp(App[str]):
    TITLE = "stanch"
    SUB_TITLE = "recent cases"
    CSS = """
    #recent { height: 1fr; }
    .row { height: auto; }
    .row Label { width: 12; padding: 1 1 0 1; }
    .row Input { width: 1fr; }
    #error { color: $error; height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("n", "new", "New case"),
        Binding("o", "open_path", "Open path"),
        Binding("escape", "to_list", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield DataTable(id="recent", cursor_type="row", zebra_stripes=True)
            with Horizontal(classes="row"):
                yield Label("open")
                yield Input(placeholder="path of a case file, then enter", id="open")
            with Horizontal(classes="row"):
                yield Label("new case")
                yield Input(placeholder="path for a new case (e.g. acme-2026-11.stanch), then enter", id="new")
            yield Label("", id="error")
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Any] = self.query_one("#recent", DataTable)
        table.add_columns("case", "title", "last opened")
        self.entries = recent.load()
        for e in self.entries:
            path = e["path"] if e["exists"] else f"{e['path']} (missing)"
            table.add_row(literal(path, 48), literal(e["title"], 40), literal(e["opened"]))
        if self.entries:
            table.focus()
        else:
            self.query_one("#new", Input).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        entry = self.entries[event.cursor_row]
        self._choose(entry["path"], create=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._choose(event.value.strip(), create=event.input.id == "new")

    def action_new(self) -> None:
        self.query_one("#new", Input).focus()

    def action_open_path(self) -> None:
        self.query_one("#open", Input).focus()

    def action_to_list(self) -> None:
        self.query_one("#recent", DataTable).focus()

    def _choose(self, value: str, create: bool) -> None:
        from casefile.case import CaseError, create_case, open_case

        error = self.query_one("#error", Label)
        if not value:
            error.update("type a path first")
            return
        path = Path(value).expanduser()
        try:
            if create:
                if path.exists():
                    raise CaseError(f"{path}: already exists; open it instead, or choose another name")
                with create_case(path, title=path.stem):
                    pass
            else:
                with open_case(path, upgrade=False):
                    pass
        except (CaseError, OSError) as e:
            error.update(literal(clean(e)))
            return
        self.exit(str(path))
