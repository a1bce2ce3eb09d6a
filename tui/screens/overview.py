"""Overview: title, incident window, counts, findings by severity, revocation progress, event volume."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from casefile.case import Case
from casefile.query import info
from tui.safe_text import literal
from tui.screens.base import CaseScreen

SEVERITIES = ("critical", "high", "medium", "low", "info")


def overview(case: Case) -> dict[str, Any]:
    """Everything the overview shows, read in one go (a worker calls it)."""
    doc = info(case)
    c = case.conn
    run = c.execute("SELECT max(run) FROM findings").fetchone()[0]
    findings = dict(c.execute("SELECT severity, count(*) FROM findings WHERE run = ? GROUP BY severity", (run,))
                    .fetchall()) if run is not None else {}
    plan_states = dict(c.execute("SELECT state, count(*) FROM plan_items WHERE kind = 'act' GROUP BY state").fetchall())
    span = c.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    volume: list[float] = []
    if span[0] is not None and span[1] is not None and span[1] > span[0]:
        buckets = 60
        width = max(1, (span[1] - span[0]) // buckets + 1)
        counts = dict(c.execute("SELECT (ts - ?) / ?, count(*) FROM events GROUP BY 1", (span[0], width)).fetchall())
        volume = [float(counts.get(i, 0)) for i in range(buckets)]
    return {"info": doc, "findings": findings, "plan_states": plan_states, "volume": volume}


class OverviewScreen(CaseScreen):
    NAME = "overview"
    TITLE = "overview"
    CSS = """
    #summary { height: auto; padding: 0 1; }
    #volume { height: 3; margin: 0 1; }
    #sources { height: 1fr; }
    """
    BINDINGS = [("r", "reload", "Reload")]
    PALETTE = [("reload the overview", "reload", "read the case again")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield Sparkline([], id="volume")
        yield DataTable(id="sources", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        doc = self.read(overview)
        self.app.call_from_thread(self.show, doc)

    def show(self, doc: dict[str, Any]) -> None:
        i = doc["info"]
        w = i["window"]
        counts = "   ".join(f"{k}: {v:,}" for k, v in i["counts"].items()
                            if k in ("events", "credentials", "sources", "exposures", "notes"))
        sev = "  ".join(f"{s} {doc['findings'][s]}" for s in SEVERITIES if doc["findings"].get(s)) or "not run"
        states = doc["plan_states"]
        total = sum(states.values())
        done = states.get("verified", 0)
        progress = f"{done}/{total} verified" + (f", {states.get('failed', 0)} failed" if states.get("failed") else "")
        text = (f"{i['title'] or ''}\n{i['path']}   incident window: {w['start'] or '-'} → {w['end'] or '-'}\n"
                f"{counts}\nfindings: {sev}    revocations: {progress if total else 'no plan yet'}")
        self.query_one("#summary", Static).update(_multiline(text))
        self.query_one("#volume", Sparkline).data = doc["volume"] or [0.0]
        table: DataTable[Any] = self.query_one("#sources", DataTable)
        table.clear(columns=True)
        table.add_columns("source", "format", "events", "malformed", "status", "path")
        for s in i["sources"]:
            table.add_row(str(s["id"]), literal(s["format"]), f"{s['events_added']:,}", str(s["malformed"]),
                          literal(s["status"]), literal(s["path"], 70))


def _multiline(text: str) -> Any:
    from rich.text import Text

    out = Text()
    for n, line in enumerate(text.split("\n")):
        if n:
            out.append("\n")
        out.append_text(literal(line, style="bold" if n == 0 else ""))
    return out
