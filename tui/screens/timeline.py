"""Timeline: every event of the case in time order, virtualised over SQLite (the table holds a few screens of
rows; the next ones are read as the cursor nears an edge), filtered as you type, with jump to a time, evidence
marks, notes, and the redacted raw record.

Keys: `/` filter (syntax in casefile.timeline and `?`), `t` jump to a time, `enter` the raw record, `m` mark or
unmark as evidence, `n` add a note, `home`/`end` first/last event, `r` read again. Marks and notes are audited
writes and are not offered with `--read-only`. Other screens open it with `app.open("timeline", target)`: a
credential key (the filter becomes `cred:KEY`) or {"query": ..., "event": <event id>, "time": <its time>}.

Reads run in thread workers on two query-only connections of the screen's own (one for pages, one for the
count, which may take longer and must never hold a page back); a keystroke cancels the read it supersedes.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Label, Static
from textual.worker import get_current_worker

from casefile.marks import toggle_mark
from casefile.timeline import EventRow, KeyCache, Page, Plan, Stopped, Timeline, parse_jump, raw_lines
from casefile.timeutil import TimeError
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen

#: Keys closer together than this are a burst: the filter reads once they stop (the first key after a pause
#: reads at once).
DEBOUNCE = 0.08
#: Rows read at a time, rows kept in the table at most, and how close to an edge the cursor gets before the
#: next rows are read.
FETCH = 60
KEEP = 240
EDGE = 15
#: Seconds a count may take before the status says "≥ N" for good.
COUNT_SECONDS = 30.0

FILTER_HELP = """\
## Timeline filter

Words separated by spaces; every one must match.

- `word` — a token of the event (vendor, action, outcome, principal, client, source IP, user agent, method,
  resource, vendor type, credential keys, country, city) **starts with** it; case-insensitive. Tokens keep
  `. - _ :`, so `192.0.2` matches 192.0.2.40 and `token.` matches token.issue.
- `ip:PREFIX` — the source IP starts with PREFIX
- `action:PREFIX` — the action starts with PREFIX (`action:token`)
- `vendor:PREFIX` — the vendor starts with PREFIX
- `source:N` — ingested from source N
- `cred:KEY` — used, minted or revoked by that credential: a key (`sha256:…`, `jti:…`), a credential number,
  or the start of a key
- `"a b"`, `cred:"…"` — keep spaces inside one value

Several values of one field match any of them. What you type is never query syntax.
`enter` or `escape` returns to the events.
"""

TABLE_HELP = """\
## Timeline

- filter: `/` (press `?` in the filter box for its syntax)
- jump to a time: `t` (`2025-08-12`, `2025-08-12T14`, full ISO 8601; UTC unless an offset is given)
- the raw record, redacted at ingest: `enter`
- mark or unmark as evidence: `m`; add a note: `n` (both audited; refused in read-only mode)
- first / last event: `home` / `end`; read again: `r`

Only a few screens of events are held; more are read as you move. The flag column shows ● for an event marked
as evidence and ✎ for one with notes.
"""

DESTRUCTIVE = ("mark", "note")
_KEYS = {"m": "marking evidence", "n": "adding a note"}


class FilterInput(Input):
    HELP = FILTER_HELP


class EventTable(DataTable[Any]):
    HELP = TABLE_HELP
    BINDINGS = [
        Binding("enter", "select_cursor", "Raw record"),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("ctrl+home", "first", "First", show=False),
        Binding("ctrl+end", "last", "Last", show=False),
    ]

    def action_first(self) -> None:
        screen = self.screen
        if isinstance(screen, TimelineScreen):
            screen.action_first()

    def action_last(self) -> None:
        screen = self.screen
        if isinstance(screen, TimelineScreen):
            screen.action_last()


class Prompt(ModalScreen[str | None]):
    """One line of text (a note, a time); Escape cancels."""

    DEFAULT_CSS = """
    Prompt { align: center middle; }
    Prompt > Vertical { width: 72; max-width: 100%; height: auto; border: round $accent; background: $surface;
                        padding: 0 1; }
    Prompt .title { text-style: bold; }
    Prompt .hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str, hint: str = "", input_id: str = "prompt") -> None:
        super().__init__()
        self.title_text, self.placeholder, self.hint, self.input_id = title, placeholder, hint, input_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(literal(self.title_text, 200), classes="title")
            yield Input(placeholder=self.placeholder, id=self.input_id)
            if self.hint:
                yield Label(literal(self.hint, 200), classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RawRecord(ModalScreen[None]):
    """An event's canonical fields and its raw record (redacted at ingest), shown literally."""

    DEFAULT_CSS = """
    RawRecord { align: center middle; }
    RawRecord > Vertical { width: 100%; height: 100%; border: round $accent; background: $surface; padding: 0 1; }
    RawRecord .title { text-style: bold; height: 1; }
    RawRecord VerticalScroll { height: 1fr; }
    RawRecord .hint { color: $text-muted; height: 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close", show=False),
                Binding("enter", "close", "Close", show=False)]

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        f = d["fields"]
        title = f"event {clean(f['id'], 60)}" + ("  ● marked as evidence" if d["marked"] else "")
        with Vertical():
            yield Label(literal(title), classes="title")
            with VerticalScroll(id="raw-scroll"):
                yield Static(record_text(d), id="raw-body")
            yield Label("escape: close · ↑↓ pgup pgdn: scroll", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#raw-scroll", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


def record_text(detail: dict[str, Any]) -> Text:
    """The raw-record view's body: canonical fields, the notes, then the raw record line by line, all literal."""
    out = Text()
    fields = detail["fields"]
    width = max(len(k) for k in fields)
    for name, value in fields.items():
        if value is None or value == "":
            continue
        out.append(f"{name:<{width}}  ", style="bold")
        out.append_text(literal(value))
        out.append("\n")
    if detail["notes"]:
        out.append("\nnotes\n", style="bold")
        for n in detail["notes"]:
            out.append_text(literal(f"{n['time'][:19].replace('T', ' ')}  {n['who']}: {n['text']}"))
            out.append("\n")
    out.append("\nraw record (as stored, redacted at ingest)\n", style="bold")
    lines = raw_lines(detail["raw"])
    if not lines:
        out.append("(none)\n")
    for line in lines:
        out.append_text(literal(line))
        out.append("\n")
    return out


def short_time(iso: str) -> str:
    """`2025-08-12T14:03:07.123Z` -> `2025-08-12 14:03:07`."""
    return clean(iso)[:19].replace("T", " ")


class TimelineScreen(CaseScreen):
    NAME = "timeline"
    TITLE = "timeline"
    AUTO_FOCUS = "#events"
    CSS = """
    #filter { height: 3; }
    #status { height: 1; padding: 0 1; color: $text-muted; }
    #events { height: 1fr; }
    #detail { height: 2; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("t", "jump", "Time"),
        Binding("m", "mark", "Mark"),
        Binding("n", "note", "Note"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "focus_table", "Events", show=False),
    ]
    _PALETTE = [
        ("filter the timeline", "focus_filter", "words, ip:, cred:, action:, source:, vendor: (see ? there)"),
        ("jump to a time", "jump", "ISO 8601 or a prefix: 2025-08-12, 2025-08-12T14"),
        ("open the raw record", "raw", "the highlighted event's fields and its redacted raw record"),
        ("mark or unmark as evidence", "mark", "audited; shown as ● in the flag column"),
        ("add a note on the event", "note", "audited; shown as ✎ in the flag column"),
        ("first event", "first", "the start of the (filtered) timeline"),
        ("last event", "last", "the end of the (filtered) timeline"),
        ("read the timeline again", "reload", "after an ingest or a pull"),
    ]

    @property
    def PALETTE(self) -> list[tuple[str, str, str]]:  # noqa: N802  (the name the app reads)
        return [p for p in self._PALETTE if not (self.read_only and p[1] in DESTRUCTIVE)]

    def __init__(self) -> None:
        super().__init__()
        self.pages: Timeline | None = None
        self.counter: Timeline | None = None
        self._open_lock = threading.Lock()
        self.plan: Plan | None = None
        self.filter_text = ""
        self.rows: list[EventRow] = []
        self.flags: dict[str, tuple[bool, int]] = {}
        self.more_before: bool | None = False
        self.more_after: bool | None = False
        self.count: int | None = None
        self.counting = False
        self.searching = ""
        self.gen = 0
        self.extending = False
        self._timer: Timer | None = None
        self._last_key_at = 0.0
        self._pending: tuple[str, tuple[Any, ...] | None] | None = None
        self._mounted = False
        #: When the last query was asked for, when its rows were shown and how they were found (the benchmark
        #: reads them).
        self.asked_at = 0.0
        self.shown_at = 0.0
        self.shown_gen = 0
        self.shown_how = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterInput(placeholder="/ filter: words, ip:, cred:, action:, source:, vendor:  (? for help)",
                          id="filter")
        yield Static("reading the timeline…", id="status")
        yield EventTable(id="events", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#events", EventTable)
        for label, key in (("", "flag"), ("time (UTC)", "time"), ("action", "action"), ("source ip", "ip"),
                           ("resource", "resource")):
            table.add_column(label, key=key)
        self._mounted = True
        pending, self._pending = self._pending, None
        text, anchor = pending if pending is not None else ("", None)
        if text:
            with self.query_one("#filter", Input).prevent(Input.Changed):
                self.query_one("#filter", Input).value = text
        self._run(text, anchor)

    def on_unmount(self) -> None:
        readers = [r for r in (self.pages, self.counter) if r is not None]
        self.pages = self.counter = None
        if readers:
            # Off the UI thread: a reader waits for its read in progress to stop, and that read may be waiting
            # for the UI thread to take its rows.
            def close() -> None:
                for r in readers:
                    r.close()

            threading.Thread(target=close, daemon=True).start()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in DESTRUCTIVE)  # False: hidden from the footer

    def on_key(self, event: events.Key) -> None:
        if self.read_only and event.key in _KEYS and not isinstance(self.focused, Input):
            event.stop()
            self._refuse(_KEYS[event.key])

    def _refuse(self, what: str) -> None:
        self.notify(f"read-only: {what} is not offered (the console was opened with --read-only)",
                    severity="warning", markup=False)

    # -- readers -------------------------------------------------------------------------------------------

    def _readers(self) -> tuple[Timeline, Timeline]:
        """The page and count readers (opened on first use, from a worker)."""
        with self._open_lock:
            if self.pages is None or self.counter is None:
                cache = KeyCache()
                self.pages = Timeline.open(self.case_path, cache)
                self.counter = Timeline.open(self.case_path, cache)
            return self.pages, self.counter

    # -- queries -------------------------------------------------------------------------------------------

    def _run(self, text: str, anchor: tuple[Any, ...] | None) -> None:
        """Read the page `anchor` asks for (None: the first) under filter `text`."""
        self.gen += 1
        self.filter_text = text
        self.count = None
        self.asked_at = _time.monotonic()
        self.workers.cancel_group(self, "timeline-extend")
        self.workers.cancel_group(self, "timeline-count")
        self.extending = False
        self.query_page(text, anchor, self.gen)

    @work(thread=True, exclusive=True, group="timeline-query", exit_on_error=False)
    def query_page(self, text: str, anchor: tuple[Any, ...] | None, gen: int) -> None:
        worker = get_current_worker()

        def stop() -> bool:
            return worker.is_cancelled

        def progress(rows: list[EventRow], at: tuple[int, str]) -> None:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._partial, gen, rows, at)

        try:
            pages, _ = self._readers()
            plan = pages.compile(text)
            kind = anchor[0] if anchor else "first"
            focus: str | None = None
            if kind == "time":
                page = pages.at(plan, anchor[1], limit=FETCH, stop=stop, on_progress=progress)  # type: ignore[index]
                if not page.rows:  # after the last event: show the end
                    page = pages.last(plan, limit=FETCH, stop=stop)
                    focus = page.rows[-1].id if page.rows else None
            elif kind == "event":
                key = pages.locate(anchor[1], anchor[2], stop=stop)  # type: ignore[index]
                if key is None:
                    self.app.call_from_thread(self.notify, f"no event {clean(anchor[1], 80)} in this case",  # type: ignore[index]
                                              severity="warning", markup=False)
                    page = pages.first(plan, limit=FETCH, stop=stop, on_progress=progress)
                else:
                    page = pages.page(plan, key, inclusive=True, limit=FETCH, stop=stop, on_progress=progress)
                    focus = anchor[1]  # type: ignore[index]
            elif kind == "key":
                page = pages.page(plan, anchor[1], inclusive=True, limit=FETCH, stop=stop)  # type: ignore[index]
                focus = anchor[2]  # type: ignore[index]
            elif kind == "last":
                page = pages.last(plan, limit=FETCH, stop=stop, on_progress=progress)
                focus = page.rows[-1].id if page.rows else None
            else:
                page = pages.first(plan, limit=FETCH, stop=stop, on_progress=progress)
            flags = pages.flags(page.rows)
        except Stopped:
            return
        except Exception as e:  # a broken case must not take the console down: say what failed
            if not worker.is_cancelled:
                self.app.call_from_thread(self._failed, gen, e)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, gen, plan, page, kind, focus, flags)

    def _partial(self, gen: int, rows: list[EventRow], at: tuple[int, str]) -> None:
        """Rows a long scan has found so far (the scan goes on)."""
        if gen != self.gen:
            return
        self.searching = short_time(_iso(at[0])) if abs(at[0]) < (1 << 61) else ""
        self.rows = list(rows)
        self.more_before, self.more_after = None, None
        self._fill_table(0)
        self._status()

    def _show(self, gen: int, plan: Plan, page: Page, kind: str, focus: str | None,
              flags: dict[str, tuple[bool, int]]) -> None:
        if gen != self.gen:
            return
        self.plan = plan
        self.searching = ""
        self.rows = list(page.rows)
        self.flags = flags
        if kind == "first":
            self.more_before, self.more_after = False, page.more
        elif kind == "last":
            self.more_before, self.more_after = page.more, False
        else:
            self.more_before, self.more_after = None, page.more  # rows before the anchor: read when asked
        cursor = 0
        if focus is not None:
            cursor = next((i for i, r in enumerate(self.rows) if r.id == focus), 0)
        self._fill_table(cursor)
        self.shown_at, self.shown_gen, self.shown_how = _time.monotonic(), gen, page.how
        self._status()
        if self.more_before is False and self.more_after is False:
            self.count = len(self.rows)  # everything that matches is on screen
        else:
            self.counting = True
            self.count_matches(plan, gen)
        self._status()
        self._maybe_extend()

    def _failed(self, gen: int, error: Exception) -> None:
        if gen != self.gen:
            return
        self.query_one("#status", Static).update(literal(f"the timeline could not be read: {error}", 200))
        self.notify(clean(f"the timeline could not be read: {error}", 200), severity="error", markup=False)

    @work(thread=True, exclusive=True, group="timeline-count", exit_on_error=False)
    def count_matches(self, plan: Plan, gen: int) -> None:
        worker = get_current_worker()
        try:
            _, counter = self._readers()
            n = counter.count(plan, deadline=_time.monotonic() + COUNT_SECONDS,
                              stop=lambda: worker.is_cancelled or gen != self.gen)
        except Stopped:
            return
        except Exception:  # the count is a courtesy; the rows are what matter
            n = None
        if not worker.is_cancelled:
            self.app.call_from_thread(self._counted, gen, n)

    def _counted(self, gen: int, n: int | None) -> None:
        if gen != self.gen:
            return
        self.counting = False
        self.count = n
        self._status()

    # -- the window of rows --------------------------------------------------------------------------------

    def _cells(self, r: EventRow, width: int) -> tuple[Text, ...]:
        marked, notes = self.flags.get(r.id, (False, 0))
        flag = Text(("●" if marked else " ") + ("✎" if notes else " "), style="bold")
        action = r.action + ("!" if r.outcome == "failure" else "")
        resource = f"{r.method} {r.resource}" if r.method and r.resource else (r.resource or r.vendor)
        return (flag, literal(short_time(r.time)), literal(action, 14), literal(r.src_ip or "", 15),
                literal(resource, width))

    def _resource_width(self) -> int:
        # flag 2 + time 19 + action 14 + ip 15, two cells of padding per column, the scrollbar
        return max(12, self.size.width - (2 + 19 + 14 + 15) - 2 * 5 - 2)

    def _fill_table(self, cursor: int, scroll_to: float | None = None) -> None:
        table = self.query_one("#events", EventTable)
        width = self._resource_width()
        table.clear()
        for r in self.rows:
            table.add_row(*self._cells(r, width), key=str(r.rowid))
        if self.rows:
            table.move_cursor(row=min(max(cursor, 0), len(self.rows) - 1), scroll=scroll_to is None)
            if scroll_to is not None:
                y = scroll_to
                self.call_after_refresh(lambda: table.scroll_to(y=y, animate=False))
        self._detail()

    def highlighted(self) -> EventRow | None:
        table = self.query_one("#events", EventTable)
        i = table.cursor_row
        return self.rows[i] if self.rows and 0 <= i < len(self.rows) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()
        self._maybe_extend()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_raw()

    def _maybe_extend(self) -> None:
        if self.extending or self.plan is None or not self.rows or self.searching:
            return
        i = self.query_one("#events", EventTable).cursor_row
        if i >= len(self.rows) - EDGE and self.more_after is not False:
            self._extend(True)
        elif i < EDGE and self.more_before is not False:
            self._extend(False)

    def _extend(self, forward: bool) -> None:
        assert self.plan is not None
        self.extending = True
        key = self.rows[-1].key if forward else self.rows[0].key
        self.extend(self.plan, forward, key, self.gen)

    @work(thread=True, exclusive=True, group="timeline-extend", exit_on_error=False)
    def extend(self, plan: Plan, forward: bool, key: tuple[int, str], gen: int) -> None:
        worker = get_current_worker()
        try:
            pages, _ = self._readers()
            page = pages.page(plan, key, forward=forward, limit=FETCH, remember=False,
                              stop=lambda: worker.is_cancelled or gen != self.gen)
            flags = pages.flags(page.rows)
        except Stopped:
            return
        except Exception as e:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._failed, gen, e)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._extended, gen, forward, page, flags)

    def _extended(self, gen: int, forward: bool, page: Page, flags: dict[str, tuple[bool, int]]) -> None:
        self.extending = False
        if gen != self.gen:
            return
        self.flags.update(flags)
        table = self.query_one("#events", EventTable)
        cursor, scroll = table.cursor_row, table.scroll_y
        if forward:
            self.more_after = page.more
            if not page.rows:
                self._status()
                return
            self.rows.extend(page.rows)
            drop = max(0, len(self.rows) - KEEP)
            if drop:
                self.rows = self.rows[drop:]
                self.more_before = True
                self._fill_table(cursor - drop, scroll_to=max(0.0, scroll - drop))
            else:
                width = self._resource_width()
                for r in page.rows:
                    table.add_row(*self._cells(r, width), key=str(r.rowid))
        else:
            self.more_before = page.more
            if not page.rows:
                self._status()
                return
            added = len(page.rows)
            self.rows = page.rows + self.rows
            if len(self.rows) > KEEP:
                self.rows = self.rows[:KEEP]
                self.more_after = True
            self._fill_table(cursor + added, scroll_to=scroll + added)
        self._status()
        self.call_after_refresh(self._maybe_extend)

    # -- status and detail ---------------------------------------------------------------------------------

    def _status(self) -> None:
        line = Text()
        plan = self.plan
        filtered = bool(self.filter_text.strip())
        noun = "matching" if filtered else "events"
        if self.searching:
            line.append(f"searching… (at {self.searching}) · {len(self.rows):,} found so far")
        elif self.count:
            line.append(f"{self.count:,} {noun}")
        elif self.rows:
            line.append(f"≥ {len(self.rows):,} {noun}" + (" · counting…" if self.counting else ""))
        else:
            line.append("no events match" if filtered else "no events in this case")
        if plan is not None and plan.problems:
            line.append(" · ")
            line.append_text(literal("; ".join(plan.problems), 120))
        self.query_one("#status", Static).update(line)

    def _detail(self) -> None:
        r = self.highlighted()
        box = self.query_one("#detail", Static)
        if r is None:
            box.update("")
            return
        width = max(20, self.size.width - 2)
        who = r.principal or r.client or ""
        cred = f"credential {r.credential_id}" if r.credential_id is not None else "no credential"
        first = f"{r.time} · {r.vendor} {r.action} {r.outcome or ''} · {cred}" + (f" · {who}" if who else "")
        second = " ".join(str(x) for x in (r.method, r.resource, r.status, r.user_agent) if x not in (None, ""))
        text = literal(first, width)
        text.append("\n")
        text.append_text(literal(second, width))
        box.update(text)

    # -- actions ---------------------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        value = event.value
        now = _time.monotonic()
        quiet = now - self._last_key_at >= DEBOUNCE
        self._last_key_at = now
        if quiet:  # the first key after a pause reads at once (the read it supersedes is cancelled)
            self._run(value, None)
        else:  # keys in a burst: read once they stop
            self._timer = self.set_timer(DEBOUNCE, lambda: self._run(value, None))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            self.action_focus_table()

    def action_focus_filter(self) -> None:
        # after the key that asked for it is handled, or the input would receive that `/` too
        self.call_after_refresh(self.query_one("#filter", Input).focus)

    def action_focus_table(self) -> None:
        self.query_one("#events", EventTable).focus()

    def action_first(self) -> None:
        self._run(self.filter_text, ("first",))

    def action_last(self) -> None:
        self._run(self.filter_text, ("last",))

    def action_reload(self) -> None:
        for reader in (self.pages, self.counter):
            if reader is not None:
                reader.forget()
        r = self.highlighted()
        self._run(self.filter_text, ("key", r.key, r.id) if r is not None else None)

    def action_jump(self) -> None:
        def chosen(value: str | None) -> None:
            if value is None or not value.strip():
                return
            try:
                ts = parse_jump(value)
            except TimeError as e:
                self.notify(clean(str(e), 200), severity="warning", markup=False)
                return
            self._run(self.filter_text, ("time", ts))

        self.app.push_screen(Prompt("jump to a time (UTC unless an offset is given)",
                                    "2025-08-12, 2025-08-12T14, 2025-08-12T14:03:07Z",
                                    "the first event at or after that time, within the filter",
                                    input_id="jump"), chosen)

    def action_raw(self) -> None:
        r = self.highlighted()
        if r is None:
            self.notify("no event highlighted", severity="warning", markup=False)
            return
        self.open_raw(r.rowid)

    @work(thread=True, group="timeline-raw", exit_on_error=False)
    def open_raw(self, rowid: int) -> None:
        try:
            pages, _ = self._readers()
            detail = pages.detail(rowid)
        except Exception as e:
            self.app.call_from_thread(self.notify, clean(f"the event could not be read: {e}", 200),
                                      severity="error", markup=False)
            return
        if detail is None:
            self.app.call_from_thread(self.notify, "the event is gone from the case", severity="warning",
                                      markup=False)
            return
        self.app.call_from_thread(self.app.push_screen, RawRecord(detail))

    def action_mark(self) -> None:
        if self.read_only:
            self._refuse(_KEYS["m"])
            return
        r = self.highlighted()
        if r is None:
            self.notify("no event highlighted", severity="warning", markup=False)
            return
        self.write_mark(r.id, r.rowid)

    @work(thread=True, group="timeline-write", exit_on_error=False)
    def write_mark(self, event_id: str, rowid: int) -> None:
        try:
            with self.case() as c:
                now = toggle_mark(c, event_id, rowid)
        except Exception as e:
            self.app.call_from_thread(self.notify, clean(f"the mark was not saved: {e}", 200), severity="error",
                                      markup=False)
            return
        self.app.call_from_thread(self._flagged, event_id, now, 0)

    def action_note(self) -> None:
        if self.read_only:
            self._refuse(_KEYS["n"])
            return
        r = self.highlighted()
        if r is None:
            self.notify("no event highlighted", severity="warning", markup=False)
            return

        def chosen(text: str | None) -> None:
            if text is not None and text.strip():
                self.write_note(r.id, text.strip())

        self.app.push_screen(Prompt(f"note on event {r.id}", "what this event shows", "audited; enter saves",
                                    input_id="note"), chosen)

    @work(thread=True, group="timeline-write", exit_on_error=False)
    def write_note(self, event_id: str, text: str) -> None:
        try:
            with self.case() as c:
                c.add_note(text, on_ref=f"event:{event_id}")
        except Exception as e:
            self.app.call_from_thread(self.notify, clean(f"the note was not saved: {e}", 200), severity="error",
                                      markup=False)
            return
        self.app.call_from_thread(self._flagged, event_id, None, 1)

    def _flagged(self, event_id: str, marked: bool | None, added_notes: int) -> None:
        was_marked, notes = self.flags.get(event_id, (False, 0))
        self.flags[event_id] = (was_marked if marked is None else marked, notes + added_notes)
        for i, r in enumerate(self.rows):
            if r.id == event_id:
                table = self.query_one("#events", EventTable)
                table.update_cell_at(Coordinate(i, 0), self._cells(r, self._resource_width())[0])
        what = "note saved" if marked is None else ("marked as evidence" if marked else "mark removed")
        self.notify(what, markup=False)

    # -- other screens -----------------------------------------------------------------------------------

    def focus_on(self, target: Any) -> None:
        """Show `target`: a credential key (the filter becomes `cred:KEY`), or {"query": ..., "event": <id>,
        "time": <the event's time, optional: makes finding it one index lookup>}."""
        if target is None:
            return
        anchor: tuple[Any, ...] | None = None
        if isinstance(target, dict):
            text = clean(target.get("query") or "")
            if target.get("event"):
                anchor = ("event", str(target["event"]), target.get("time"))
        else:
            key = clean(target).replace('"', "")
            text = f'cred:"{key}"' if " " in key else f"cred:{key}"
        if not self._mounted:
            self._pending = (text, anchor)
            return
        box = self.query_one("#filter", Input)
        if self._timer is not None:
            self._timer.stop()
        with box.prevent(Input.Changed):
            box.value = text
        self._run(text, anchor)
        self.action_focus_table()


def _iso(ts: int) -> str:
    from casefile.timeutil import micros_to_iso

    return micros_to_iso(ts)
