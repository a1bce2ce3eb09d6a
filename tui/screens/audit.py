"""Audit: the hash chain of every write to the case, newest first, like lazygit's command log.

The chain head (the newest entry's hash, what a responder records outside the case) is at the top. Entries are
read a page at a time (`PAGE`, keyset on `seq`), never all: the next page loads when the cursor nears the end
of what is shown, or with `m`. `v` runs `casefile.audit.verify` (the whole chain and every audited row) in a
worker and shows OK with the verified head, or the first broken row. Details are rendered literally.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Header, Static

from casefile.case import Case, CaseError
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen

COLUMNS = ("seq", "time", "who", "operation", "details", "tbl", "row_lo", "row_hi", "row_count", "hash")


def summary(details: str | None, tbl: str | None, lo: int | None, hi: int | None) -> str:
    """An entry's details as `key=value` pairs (nested values as compact JSON), plus the rows it wrote."""
    parts: list[str] = []
    if details:
        try:
            doc = orjson.loads(details)
        except orjson.JSONDecodeError:
            doc = details
        if isinstance(doc, dict):
            for k, v in doc.items():
                if v is None:
                    continue
                parts.append(f"{k}={v if isinstance(v, str | int | float) else orjson.dumps(v).decode()}")
        else:
            parts.append(str(doc))
    if tbl:
        parts.append(f"rows {tbl} {lo}-{hi}")
    return " ".join(parts)


def page(case: Case, before: int | None, size: int) -> dict[str, Any]:
    """`size` entries older than seq `before` (the newest when None), and the chain head and entry count."""
    c = case.conn
    head = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit"
    args: list[Any] = []
    if before is not None:
        sql += " WHERE seq < ?"
        args.append(before)
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in c.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, size))]
    return {"head": head[1] if head else None, "last": head[0] if head else 0, "rows": rows}


class AuditScreen(CaseScreen):
    NAME = "audit"
    TITLE = "audit"
    PAGE = 200
    CSS = """
    #head { height: auto; padding: 0 1; }
    #log { height: 1fr; }
    #detail { height: 3; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        Binding("v", "verify_chain", "Verify"),
        Binding("m", "more", "More"),
        Binding("f5", "reload", "Reload"),
    ]
    PALETTE = [
        ("verify the audit chain", "verify_chain", "recompute every entry and audited row; name the first broken row"),
        ("load more audit entries", "more", "the next page of older entries"),
        ("reload the audit log", "reload", "read the newest entries again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.head: str | None = None
        self.total = 0
        self.verdict: Text = Text("verify: not run (v)", style="dim")
        self._loading = False
        self._done = False

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages here carry untrusted text (errors, names): never markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="head")
        yield DataTable(id="log", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Any] = self.query_one("#log", DataTable)
        for label, key in (("seq", "seq"), ("time", "time"), ("analyst", "who"), ("operation", "op"),
                           ("summary", "summary")):
            table.add_column(label, key=key)
        self.action_reload()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.is_mounted and self.rows:
            self.action_reload()

    # -- paging --------------------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self._loading = True
        self.load(None, True)

    def action_more(self) -> None:
        if self._done:
            self.notify("no older entries")
            return
        if not self._loading and self.rows:
            self._loading = True
            self.load(self.rows[-1]["seq"], False)

    @work(thread=True, group="load", exit_on_error=False)
    def load(self, before: int | None, fresh: bool) -> None:
        try:
            doc = self.read(lambda c: page(c, before, self.PAGE))
        except (CaseError, sqlite3.Error, OSError) as e:
            self.app.call_from_thread(self._failed, f"cannot read the audit log: {clean(e, 300)}")
            return
        self.app.call_from_thread(self.show, doc, fresh)

    def show(self, doc: dict[str, Any], fresh: bool) -> None:
        if not self.is_attached:  # left (popped) while its worker read: nothing to show it on
            return
        table: DataTable[Any] = self.query_one("#log", DataTable)
        if fresh:
            self.rows = []
            table.clear()
        self.head, self.total = doc["head"], doc["last"]
        for r in doc["rows"]:
            if self.rows and r["seq"] >= self.rows[-1]["seq"]:
                continue
            self.rows.append(r)
            table.add_row(str(r["seq"]), literal((r["time"] or "")[:19]), literal(r["who"], 24),
                          literal(r["operation"]), literal(summary(r["details"], r["tbl"], r["row_lo"], r["row_hi"]), 160),
                          key=str(r["seq"]))
        self._done = not doc["rows"] or self.rows[-1]["seq"] <= 1
        self._loading = False
        self._show_head()
        self._show_detail()

    def _show_head(self) -> None:
        out = Text()
        out.append("chain head ", style="bold")
        out.append_text(literal(self.head or "(no entries)"))
        out.append("\n")
        out.append_text(literal(f"{self.total:,} entries, {len(self.rows):,} shown · "))
        out.append_text(self.verdict)
        self.query_one("#head", Static).update(out)

    def _show_detail(self) -> None:
        table: DataTable[Any] = self.query_one("#log", DataTable)
        box = self.query_one("#detail", Static)
        if not table.row_count:
            box.update("")
            return
        r = self.rows[min(table.cursor_row, len(self.rows) - 1)]
        box.update(literal(f"#{r['seq']} {r['time']} {r['who']} {r['operation']} "
                           f"{summary(r['details'], r['tbl'], r['row_lo'], r['row_hi'])} · hash {r['hash']}", 600))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        if not self._done and not self._loading and event.cursor_row >= len(self.rows) - min(20, self.PAGE // 4):
            self.action_more()

    # -- verify --------------------------------------------------------------------------------------------
    def action_verify_chain(self) -> None:
        self.verdict = Text("verify: running…", style="bold")
        self._show_head()
        self.run_verify()

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def run_verify(self) -> None:
        from casefile.audit import verify

        try:
            head, entries, problems = self.read(lambda c: verify(c.conn))
        except (CaseError, sqlite3.Error, OSError) as e:
            self.app.call_from_thread(self._failed, f"verify could not read the case: {clean(e, 300)}")
            return
        self.app.call_from_thread(self.verified, head, entries, [str(p) for p in problems])

    def _failed(self, message: str) -> None:
        if not self.is_attached:  # left (popped) while its worker read: nothing to show it on
            return
        self._loading = False
        self.verdict = literal(message, 300, style="bold red")
        self._show_head()
        self.notify(message, severity="error")

    def verified(self, head: str, entries: int, problems: list[str]) -> None:
        if not self.is_attached:  # left (popped) while its worker read: nothing to show it on
            return
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self.verdict = literal(f"verify: BROKEN at {problems[0]}{more}", 300, style="bold red")
            self.notify(f"audit chain broken: {clean(problems[0], 200)}", severity="error", timeout=10)
        else:
            self.verdict = literal(f"verify: OK, {entries:,} entries intact, head {head[:16]}", style="bold green")
        self._show_head()
