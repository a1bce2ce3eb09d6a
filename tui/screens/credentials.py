"""Credentials: every credential in the case with its kind, issuer, client, sender binding, TTL, the verdict of
the last plan that acted on it, and when it was last used; filter as you type.

`/` focuses the filter (it matches keys, masked preview, kind, issuer, client and principal; the matching runs
in a worker, debounced, over rows read once). `enter` (or `b`) opens the blast radius of the highlighted
credential, `t` its timeline. The helpers at the bottom (how a credential is named, its TTL in words) are shared with the
blast radius and findings screens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from casefile.case import Case
from casefile.query import credentials
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen

#: Rows put in the table at once; the filter narrows the rest (a DataTable is not virtualised).
SHOW_AT_MOST = 2000
#: Seconds the filter waits after a keystroke before it runs.
DEBOUNCE = 0.12


@dataclass(slots=True)
class CredentialRow:
    id: int
    key: str  # the key that names it (`sha256:…` first): what blast and the timeline are given
    name: str  # how it is shown: its masked preview, else a shortened key
    kind: str
    issuer: str
    client: str
    principal: str
    binding: str
    ttl: str
    verdict: str
    last_used: str
    events: int
    haystack: str  # lower-cased text the filter matches


def credential_rows(case: Case) -> list[CredentialRow]:
    """Every credential, most recently used first, with its TTL (expires - issued) and plan verdict."""
    c = case.conn
    # TTL from the columns themselves. casefile.blast computes the same figure for the credentials in a
    # blast radius (its private _ttl); a public helper there would let both screens share it.
    ttls = dict(c.execute(
        "SELECT id, CAST((julianday(expires_at) - julianday(issued_at)) * 86400 AS INTEGER) FROM credentials"
        " WHERE issued_at IS NOT NULL AND expires_at IS NOT NULL"))
    rows = []
    verdicts = plan_verdicts(case)
    for d in credentials(case):
        keys: list[str] = d["keys"]
        fields = [d["kind"], d["issuer"], d["client"], d["principal"], d["preview"], *keys]
        rows.append(CredentialRow(
            id=d["id"], key=primary_key(keys) or str(d["id"]), name=credential_name(keys, d["preview"], d["id"]),
            kind=d["kind"] or "", issuer=d["issuer"] or "", client=d["client"] or "", principal=d["principal"] or "",
            binding=d["binding"] or "none", ttl=ttl_text(ttls.get(d["id"])), verdict=verdicts.get(d["id"], "-"),
            last_used=short_time(d["last_used"]), events=int(d["events"]),
            haystack=" ".join(clean(f).lower() for f in fields if f)))
    return rows


def plan_verdicts(case: Case) -> dict[int, str]:
    """Credential id -> the verdict (else the state) of the last plan item that acted on or probed it."""
    out: dict[int, str] = {}
    for cid, state, verdict in case.conn.execute(
            "SELECT credential_id, state, verdict FROM plan_items WHERE credential_id IS NOT NULL"
            " AND kind IN ('act', 'probe') ORDER BY plan_id, coalesce(updated_at, ''), seq"):
        out[int(cid)] = verdict or state
    return out


def matching(rows: list[CredentialRow], text: str) -> list[CredentialRow]:
    """Rows whose keys, preview, kind, issuer, client or principal contain every word of `text`."""
    words = text.lower().split()
    if not words:
        return rows
    return [r for r in rows if all(w in r.haystack for w in words)]


class CredentialsScreen(CaseScreen):
    NAME = "credentials"
    TITLE = "credentials"
    AUTO_FOCUS = "#credentials"
    CSS = """
    #filter { height: 3; margin: 0 0; }
    #status { height: 1; padding: 0 1; color: $text-muted; }
    #credentials { height: 1fr; }
    """
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("b", "blast", "Blast radius"),
        Binding("t", "timeline", "Timeline"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "focus_table", "Table", show=False),
    ]
    PALETTE = [
        ("filter credentials", "focus_filter", "type to narrow by key, preview, kind, issuer, client, principal"),
        ("blast radius of the highlighted credential", "blast", "open the blast radius screen on it"),
        ("timeline of the highlighted credential", "timeline", "open the timeline filtered to it"),
        ("reload the credentials", "reload", "read the case again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[CredentialRow] = []
        self.shown: list[CredentialRow] = []
        self._timer: Timer | None = None
        self._pending_filter: str | None = None
        self._ready = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter: key, preview, kind, issuer, client, principal", id="filter")
        yield Static("reading credentials…", id="status")
        yield DataTable(id="credentials", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Any] = self.query_one("#credentials", DataTable)
        table.add_column("credential", key="credential")
        for label in ("kind", "issuer", "client", "bind", "TTL", "verdict", "last used", "principal", "events"):
            table.add_column(label, key=label)
        table.focus()
        self.action_reload()

    # -- loading and filtering -------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.query_one("#credentials", DataTable).loading = True
        self.load()

    @work(thread=True, exclusive=True, group="credentials-load", exit_on_error=False)
    def load(self) -> None:
        rows = self.read(credential_rows)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._loaded, rows)

    def _loaded(self, rows: list[CredentialRow]) -> None:
        self.rows = rows
        self._ready = True
        self.query_one("#credentials", DataTable).loading = False
        text = self._pending_filter if self._pending_filter is not None else self.query_one("#filter", Input).value
        self._pending_filter = None
        if text != self.query_one("#filter", Input).value:
            self.query_one("#filter", Input).value = text  # its Changed event runs the filter
        self.run_filter(text)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        if self._timer is not None:
            self._timer.stop()
        value = event.value
        self._timer = self.set_timer(DEBOUNCE, lambda: self.run_filter(value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.action_focus_table()

    @work(thread=True, exclusive=True, group="credentials-filter", exit_on_error=False)
    def run_filter(self, text: str) -> None:
        rows = matching(self.rows, text)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, rows, text)

    def _show(self, rows: list[CredentialRow], text: str) -> None:
        self.shown = rows
        table: DataTable[Any] = self.query_one("#credentials", DataTable)
        table.clear()
        for r in rows[:SHOW_AT_MOST]:
            table.add_row(literal(r.name, 24), literal(r.kind, 12), literal(r.issuer, 12), literal(r.client, 12),
                          literal(r.binding), literal(r.ttl), literal(r.verdict, 18), literal(r.last_used),
                          literal(r.principal, 28), Text(f"{r.events:,}", justify="right"), key=str(r.id))
        status = f"{len(rows):,} of {len(self.rows):,} credentials"
        if len(rows) > SHOW_AT_MOST:
            status += f" (first {SHOW_AT_MOST:,} shown; type to narrow)"
        if text.strip():
            status += " matching "
        line = Text(status)
        if text.strip():
            line.append_text(literal(text.strip(), 40, style="bold"))
        self.query_one("#status", Static).update(line)

    # -- actions -----------------------------------------------------------------------------------------

    def focus_on(self, target: Any) -> None:
        """Filter to `target` (a key, a principal, any text)."""
        text = clean(target) if target is not None else ""
        if not self._ready:
            self._pending_filter = text
            return
        self.query_one("#filter", Input).value = text

    def highlighted(self) -> CredentialRow | None:
        table: DataTable[Any] = self.query_one("#credentials", DataTable)
        if table.row_count == 0:
            return None
        row = table.cursor_row
        return self.shown[row] if 0 <= row < min(len(self.shown), SHOW_AT_MOST) else None

    def action_focus_filter(self) -> None:
        # after the key that asked for it is handled, or the Input would receive that `/` too
        self.call_after_refresh(self.query_one("#filter", Input).focus)

    def action_focus_table(self) -> None:
        self.query_one("#credentials", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_blast()

    def action_blast(self) -> None:
        r = self.highlighted()
        if r is None:
            self.notify("no credential highlighted", severity="warning", markup=False)
            return
        self.stanch.open("blast", r.key)

    def action_timeline(self) -> None:
        r = self.highlighted()
        if r is None:
            self.notify("no credential highlighted", severity="warning", markup=False)
            return
        self.stanch.open("timeline", r.key)


# ------------------------------------------------------------------------------- shared naming helpers

_KEY_ORDER = ("sha256:", "sha256/16:", "okta-token:", "vault-accessor:", "aws-key:", "github-token:", "sf-token:",
              "jti:", "vault-hmac:")


def primary_key(keys: list[str]) -> str | None:
    """The key that best names a credential to the responder: a full `sha256:` first, then the forms gateways
    and vendors log, in a fixed order (ties: the first in sorted order). None for a credential without keys."""
    if not keys:
        return None

    def rank(k: str) -> tuple[int, str]:
        for n, prefix in enumerate(_KEY_ORDER):
            if k.startswith(prefix) and not k.startswith("okta-token:hash:"):
                return n, k
        return len(_KEY_ORDER), k

    return min(keys, key=rank)


def credential_name(keys: list[str], preview: str | None, cid: int | None = None) -> str:
    """A masked preview (`ghp_…3kQ9`) when the case has one, else the credential's key shortened."""
    if preview:
        return preview
    key = primary_key(keys)
    if key is None:
        return f"credential {cid}" if cid is not None else "?"
    if len(key) <= 24:
        return key
    # the kind, then the start of the last part (`vault-hmac:default:hmac-sha256:34e3…` -> `vault-hmac:34e3…`)
    kind, tail = key.split(":", 1)[0], key.rsplit(":", 1)[-1]
    return f"{kind}:{tail[:12]}…"


def ttl_text(seconds: int | None) -> str:
    """A lifetime in the largest unit that keeps it short: 90d, 13h, 45m, 30s; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "<0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_time(iso: str | None) -> str:
    """`2025-08-20T22:44:55.000000Z` -> `2025-08-20 22:44` (UTC)."""
    if not iso:
        return "-"
    return clean(iso)[:16].replace("T", " ")
