"""The stanch console (Textual). Imported only when the console opens; the CLI never imports it otherwise.

This is the first screen, the case overview; the full console (blast radius, timeline, playbooks)
is built on it by the console issue.
"""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from casefile.case import open_case
from casefile.query import credentials, info
from tui.safe_text import clean, literal


class OverviewApp(App[None]):
    """Case overview: title, incident window, counts, sources and credentials."""

    TITLE = "stanch"
    CSS = """
    #summary { height: auto; padding: 0 1; }
    #sources { height: auto; max-height: 8; }
    #credentials { height: 1fr; }
    """
    BINDINGS = [Binding("q", "quit", "Quit", id="quit"), Binding("r", "reload", "Reload", id="reload")]

    def __init__(self, case_path: str) -> None:
        super().__init__()
        self.case_path = case_path

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield DataTable(id="sources", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="credentials", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        with open_case(self.case_path, upgrade=False) as case:
            doc = info(case)
            creds = credentials(case)[:500]
        self.sub_title = clean(doc["title"])
        w = doc["window"]
        counts = "   ".join(f"{k}: {v:,}" for k, v in doc["counts"].items() if k in ("events", "credentials", "sources", "notes"))
        summary = literal(f"{doc['path']}   incident window: {w['start'] or '-'} → {w['end'] or '-'}\n{counts}")
        self.query_one("#summary", Static).update(summary)
        src: DataTable[Any] = self.query_one("#sources", DataTable)
        src.clear(columns=True)
        src.add_columns("source", "format", "events", "malformed", "path")
        for s in doc["sources"]:
            src.add_row(str(s["id"]), literal(s["format"]), f"{s['events_added']:,}", str(s["malformed"]),
                        literal(s["path"], 60))
        table: DataTable[Any] = self.query_one("#credentials", DataTable)
        table.clear(columns=True)
        table.add_columns("cred", "kind", "preview", "client", "principal", "events", "last used", "key")
        for c in creds:
            table.add_row(str(c["id"]), literal(c["kind"]), literal(c["preview"] or ""), literal(c["client"] or "", 28),
                          literal(c["principal"] or "", 28), f"{c['events']:,}", literal(c["last_used"] or ""),
                          literal(c["keys"][0] if c["keys"] else "", 34))


def run_console(case_path: str | None) -> None:
    """Open the console on a case."""
    if case_path is None:
        raise SystemExit("stanch: give a case: `stanch open CASE` or `stanch demo`")
    OverviewApp(case_path).run()
