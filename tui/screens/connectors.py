"""Connectors: the configured connectors (name, kind, URL, whether a secret is available — never the secret),
`t` test (settings, files, secret, then the vendor's live "who am I"), `a` add (a form whose secret goes to the
OS keyring through a masked input, by the same `connectors.config.add_connector` as `stanch connector add`),
`d` remove (confirmed; Cancel has focus). Settings live in the user's config file, secrets in the keyring; all
of it is read and written in workers. `--read-only` hides and refuses add and remove; test stays."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Header, Static

from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen

DESTRUCTIVE = ("add", "remove")
_KEYS = {"a": "add", "d": "remove"}


def secret_status(s: Any, keyring_problem: str | None) -> tuple[str, str]:
    """(yes | no | env | unknown, a longer phrase) for one connector's secret; the secret itself is never read
    out, only whether it is there (the same checks as `stanch connector list`)."""
    from connectors.config import ConfigError, read_stored_secret

    if s.secret_env:
        is_set = bool(os.environ.get(s.secret_env, "").strip())
        return ("yes" if is_set else "no"), f"from environment variable {s.secret_env} ({'set' if is_set else 'unset'})"
    if keyring_problem:
        return "unknown", f"keyring: {keyring_problem}"
    try:
        stored = read_stored_secret(s.name) is not None
    except ConfigError as e:
        return "unknown", f"keyring: {e}"
    return ("yes", "stored in the keyring") if stored else ("no", "MISSING from the keyring: remove and add again")


def connector_rows() -> dict[str, Any]:
    """Every configured connector with its secret status (a worker calls it)."""
    from connectors.config import ConfigError, config_path, keyring_backend_name, load_all

    try:
        found = load_all()
    except ConfigError as e:
        return {"error": str(e), "rows": [], "config_file": str(config_path()), "backend": None}
    backend, problem = keyring_backend_name() if any(not s.secret_env for s in found.values()) else (None, None)
    rows = []
    for s in found.values():
        short, long = secret_status(s, problem)
        rows.append({"settings": s, "secret": short, "secret_detail": long})
    return {"error": None, "rows": rows, "config_file": str(config_path()), "backend": backend, "problem": problem}


class ConnectorsScreen(CaseScreen):
    NAME = "connectors"
    TITLE = "connectors"
    CSS = """
    #head { height: auto; padding: 0 1; }
    #list { height: 1fr; }
    #detail { height: auto; max-height: 8; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        Binding("t", "test", "Test"),
        Binding("a", "add", "Add"),
        Binding("d", "remove", "Remove"),
        Binding("f5", "reload", "Reload", show=False),
    ]
    _PALETTE = [
        ("test the connector", "test", "check settings, files and secret, then ask the vendor who the secret is"),
        ("add a connector", "add", "name, kind, URL and a secret that goes to the OS keyring"),
        ("remove the connector", "remove", "delete its settings and its keyring secret"),
        ("reload the connectors", "reload", "read the settings file and the keyring again"),
    ]

    @property
    def PALETTE(self) -> list[tuple[str, str, str]]:  # noqa: N802  (the app reads PALETTE)
        return [p for p in self._PALETTE if not (self.read_only and p[1] in DESTRUCTIVE)]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.results: dict[str, Text] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="head")
        yield DataTable(id="list", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Any] = self.query_one("#list", DataTable)
        for label, key in (("name", "name"), ("kind", "kind"), ("url", "url"), ("secret", "secret")):
            table.add_column(label, key=key)
        self.load()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self.is_mounted:
            self.load()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages here carry untrusted text (errors, names): never markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in DESTRUCTIVE)

    def on_key(self, event: events.Key) -> None:
        if self.read_only and event.key in _KEYS:
            event.stop()
            self._refuse(_KEYS[event.key])

    def _refuse(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only: {what} is not offered (the console was opened with --read-only)",
                        severity="warning")
            return True
        return False

    # -- loading -------------------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, select: str | None = None) -> None:
        doc = connector_rows()
        self.app.call_from_thread(self.show, doc, select)

    def show(self, doc: dict[str, Any], select: str | None) -> None:
        self.rows = doc["rows"]
        head = Text()
        head.append_text(literal(f"settings: {doc['config_file']}"))
        if doc["error"]:
            head.append("\n")
            head.append_text(literal(doc["error"], 300, style="bold red"))
        elif doc.get("problem"):
            head.append("\n")
            head.append_text(literal(f"keyring: {doc['problem']}", 300, style="yellow"))
        elif doc.get("backend"):
            head.append_text(literal(f"   keyring: {doc['backend'].rsplit('.', 1)[-1]}"))
        self.query_one("#head", Static).update(head)
        table: DataTable[Any] = self.query_one("#list", DataTable)
        current = self.selected()
        table.clear()
        for r in self.rows:
            s = r["settings"]
            available = r["secret"]
            table.add_row(literal(s.name), literal(s.kind), literal(s.url, 50),
                          literal(available, style="bold" if available == "yes" else "yellow"), key=s.name)
        want = select or current
        if want and any(r["settings"].name == want for r in self.rows):
            table.move_cursor(row=table.get_row_index(want), animate=False)
        if not self.rows and not doc["error"]:
            self.query_one("#detail", Static).update(
                Text("no connectors yet: press a to add one (its secret goes to the OS keyring)", style="dim"))
        else:
            self._show_detail()

    def selected(self) -> str | None:
        table: DataTable[Any] = self.query_one("#list", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value

    def _row(self, name: str | None) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["settings"].name == name), None)

    def _show_detail(self) -> None:
        name = self.selected()
        r = self._row(name)
        box = self.query_one("#detail", Static)
        if r is None or name is None:
            box.update("")
            return
        s = r["settings"]
        out = Text()
        out.append_text(literal(f"{s.name}: {s.kind} at {s.url}   secret: {r['secret']} ({r['secret_detail']})"))
        extras = [f"{k} {v}" for k, v in (("client id", s.client_id), ("ca bundle", s.ca_bundle),
                                           ("concurrency", s.concurrency), ("rate limit", s.rate_limit)) if v]
        if extras:
            out.append("\n")
            out.append_text(literal(" · ".join(extras), 300))
        if name in self.results:
            out.append("\n")
            out.append_text(self.results[name])
        box.update(out)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    # -- test ----------------------------------------------------------------------------------------------
    def action_test(self) -> None:
        name = self.selected()
        if name is None:
            self.notify("no connector to test: press a to add one", severity="warning")
            return
        self.results[name] = Text(f"testing {name}…", style="bold")
        self._show_detail()
        self.run_test(name)

    @work(thread=True, group="test", exit_on_error=False)
    def run_test(self, name: str) -> None:
        from connectors.config import ConfigError, check_connector

        try:
            result = check_connector(name)
        except (ConfigError, OSError) as e:
            self.app.call_from_thread(self._tested, name, None, str(e))
            return
        self.app.call_from_thread(self._tested, name, result, None)

    def _tested(self, name: str, result: dict[str, Any] | None, error: str | None) -> None:
        out = Text()
        if result is None:
            out.append_text(literal(f"test FAILED: {error}", 400, style="bold red"))
        elif result["ok"]:
            who = result.get("whoami") or {}
            facts = ", ".join(f"{k} {v}" for k, v in who.items() if v not in (None, "", [], {}))
            live = next((c for c in result["checks"] if c["check"] == "live"), None)
            out.append("test OK: ", style="bold green")
            out.append_text(literal(f"credential is {facts}" if facts else (live or {}).get("detail", "ok"), 400))
        else:
            first = next(c for c in result["checks"] if c["ok"] is False)
            out.append("test FAILED: ", style="bold red")
            out.append_text(literal(f"{first['check']}: {first['detail']}", 400))
        self.results[name] = out
        self.notify(clean(out.plain, 200), severity="information" if result and result["ok"] else "error")
        self._show_detail()

    # -- add -----------------------------------------------------------------------------------------------
    def action_add(self) -> None:
        from tui.screens.modals import AddConnectorModal

        if self._refuse("add"):
            return

        def done(got: tuple[Any, str] | None) -> None:
            if got is not None:
                settings, secret = got
                self.add_worker(settings, [secret])

        self.app.push_screen(AddConnectorModal(), done)

    # An explicit description: Textual would otherwise describe the worker by the repr of its arguments (the secret).
    @work(thread=True, group="act", description="add a connector", exit_on_error=False)
    def add_worker(self, settings: Any, secret: list[str]) -> None:
        """`secret` is a one-element list so it can be emptied here once the keyring has it."""
        from connectors.config import ConfigError, add_connector

        try:
            done = add_connector(settings, lambda: secret[0])
        except ConfigError as e:
            self.app.call_from_thread(self.notify, clean(e, 400), severity="error", timeout=10)
            return
        finally:
            secret.clear()
        self.app.call_from_thread(
            self.notify, f"added connector {settings.name}; secret stored in the keyring "
            f"({(done['keyring_backend'] or '').rsplit('.', 1)[-1]})")
        self.app.call_from_thread(self.load, settings.name)

    # -- remove --------------------------------------------------------------------------------------------
    def action_remove(self) -> None:
        from tui.screens.modals import ConfirmModal

        if self._refuse("remove"):
            return
        name = self.selected()
        if name is None:
            self.notify("no connector selected", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.remove_worker(name)

        self.app.push_screen(ConfirmModal(f"Remove connector {name}: its settings and its keyring secret?",
                                          "Remove"), done)

    @work(thread=True, group="act", exit_on_error=False)
    def remove_worker(self, name: str) -> None:
        from connectors.config import ConfigError, remove_connector

        try:
            done = remove_connector(name)
        except ConfigError as e:
            self.app.call_from_thread(self.notify, clean(e, 400), severity="error", timeout=10)
            return
        secret = {True: "secret deleted from the keyring", False: "no secret was in the keyring",
                  None: "no keyring secret"}[done["secret_deleted"]]
        self.app.call_from_thread(self._removed, name, secret)

    def _removed(self, name: str, secret: str) -> None:
        self.results.pop(name, None)
        self.notify(f"removed connector {name}; {secret}")
        self.load()
