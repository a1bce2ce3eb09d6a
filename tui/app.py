"""The stanch console (Textual). Imported only when the console opens; the CLI never imports it otherwise.

One app, one case, a screen per job: overview, credentials, blast radius, timeline, findings, playbooks,
connectors, audit. Keys 1–8 switch screens, `:` jumps by name, ctrl+p opens the command palette (every action),
`?` shows the focused screen's keys. `--read-only` removes every destructive action and shows a lock. Every
screen reads the case in workers (its own connection per thread) and renders untrusted text literally.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from tui.safe_text import clean

# name -> (module, class, key)
SCREENS: dict[str, tuple[str, str, str]] = {
    "overview": ("tui.screens.overview", "OverviewScreen", "1"),
    "credentials": ("tui.screens.credentials", "CredentialsScreen", "2"),
    "blast": ("tui.screens.blast", "BlastScreen", "3"),
    "timeline": ("tui.screens.timeline", "TimelineScreen", "4"),
    "findings": ("tui.screens.findings", "FindingsScreen", "5"),
    "playbooks": ("tui.screens.playbooks", "PlaybooksScreen", "6"),
    "connectors": ("tui.screens.connectors", "ConnectorsScreen", "7"),
    "audit": ("tui.screens.audit", "AuditScreen", "8"),
}


# Actions that change the case or a remote system: never offered in read-only mode.
WRITES = frozenset({"apply", "approve", "revoke", "tick", "plan", "mark", "note", "ingest", "pull", "run_rules",
                    "add", "remove", "resume", "verify", "delete", "add_connector", "remove_connector"})


class ScreenCommands(Provider):
    """The command palette: every screen, and every action the current screen offers."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, StanchApp)
        matcher = self.matcher(query)
        for name in SCREENS:
            if app.available(name):
                text = f"go to {name}"
                score = matcher.match(text)
                if score > 0:
                    yield Hit(score, matcher.highlight(text), partial(app.action_goto, name), help=f"the {name} screen")
        for label, action, help_text in app.screen_actions():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(app.run_action, action, app.screen), help=help_text)


class JumpInput(Input):
    """`:` — type a screen name and press enter."""


class StanchApp(App[None]):
    TITLE = "stanch"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    CSS = """
    Screen { layout: vertical; }
    JumpInput { dock: bottom; display: none; }
    JumpInput.shown { display: block; }
    .lock { color: $warning; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("colon", "jump", "Jump", key_display=":"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("f1", "help", "Keys", show=False),  # also while typing in a filter or seed box
        *[Binding(key, f"goto('{name}')", name.capitalize(), show=False) for name, (_, _, key) in SCREENS.items()],
    ]

    def __init__(self, case_path: str, *, read_only: bool = False, analyst: str | None = None,
                 start: str = "overview", playbook_dirs: Iterable[str] = ()) -> None:
        super().__init__()
        self.playbook_dirs = tuple(playbook_dirs)
        self.case_path = case_path
        self.read_only = read_only
        self.analyst = analyst
        self.start = start
        self.case_title = ""
        self.activity = ""
        self._made: dict[str, Screen[Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Footer()

    def on_mount(self) -> None:
        from casefile.case import open_case

        with open_case(self.case_path, analyst=self.analyst) as case:  # upgrades an older case once, here
            self.case_title = clean(case.meta().get("title") or self.case_path)
            self.read_only = self.read_only or bool(case.policy().get("read_only"))
        self.action_goto(self.start)

    def subtitle(self, screen_title: str = "") -> str:
        """The header's second half: the case, the read-only lock, and what runs in the background. (The first
        half is the screen's title with its breadcrumbs, `crumbs`.)"""
        lock = "  [read-only]" if self.read_only else ""
        busy = f"  ⟳ {self.activity}" if self.activity else ""
        title = self.case_title if len(self.case_title) <= 48 else self.case_title[:47] + "…"
        return f"{title}{lock}{busy}"

    def crumbs(self) -> str:
        """Where the responder came from: the titles of the screens on the stack, oldest first."""
        return " › ".join(t for s in self.screen_stack if (t := getattr(s, "TITLE", "")))

    def _refresh_subtitle(self) -> None:
        self.sub_title = self.subtitle()
        if getattr(self.screen, "TITLE", ""):
            self.screen.title = self.crumbs()

    # -- work on the whole case, from the palette, while every screen stays usable ------------------------------
    # Each runs in a thread worker with its own connection (SQLite WAL: screens keep reading while it writes);
    # progress shows in every screen's header; the result is a notification; errors are one line.

    def _set_activity(self, text: str) -> None:
        self.activity = text
        self._refresh_subtitle()

    def _finish_activity(self, message: str, severity: str = "information") -> None:
        self.activity = ""
        self._refresh_subtitle()
        self.notify(message, severity=severity)  # type: ignore[arg-type]
        for screen in self._made.values():  # what the case holds changed: the shown screen reads it again now,
            if screen is self.screen and hasattr(screen, "action_reload"):  # the others when next shown
                screen.action_reload()
            else:
                screen.stale = True  # type: ignore[attr-defined]

    def _refuse_read_only(self, what: str) -> bool:
        if self.read_only:
            self.notify(f"read-only: {what} is refused (open the case without --read-only)", severity="warning")
        return self.read_only

    def action_ingest(self) -> None:
        if self._refuse_read_only("ingest"):
            return
        from tui.prompt import Prompt

        def answer(value: str | None) -> None:
            if value:
                self.run_ingest([v for v in value.split() if v])

        self.push_screen(Prompt("Ingest log files into this case", placeholder="path [path…] (files, folders, .gz)",
                                hint="the format is detected per file; bad lines are counted, never fatal"), answer)

    @work(thread=True, group="activity")
    def run_ingest(self, paths: list[str]) -> None:
        import connectors  # noqa: F401  (registers the parsers)
        from casefile.case import CaseError, open_case
        from casefile.ingest import ingest

        last = [0.0]

        def progress(name: str, seen: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                self.call_from_thread(self._set_activity, f"ingesting {clean(name, 40)}: {seen:,} events")

        self.call_from_thread(self._set_activity, f"ingesting {len(paths)} path(s)")
        try:
            with open_case(self.case_path, analyst=self.analyst) as case:
                summaries = ingest(case, paths, progress=progress)
        except (CaseError, OSError) as e:
            self.call_from_thread(self._finish_activity, f"ingest failed: {clean(e)}", "error")
            return
        errors = [s for s in summaries if s.error]
        added = sum(s.events_added for s in summaries)
        malformed = sum(s.malformed for s in summaries)
        text = f"ingest done: {added:,} events added, {malformed:,} malformed lines (see the overview's sources)"
        if errors:
            text += "; " + "; ".join(clean(s.error, 200) for s in errors[:3])
        self.call_from_thread(self._finish_activity, text, "error" if errors else "information")

    def action_pull(self) -> None:
        if self._refuse_read_only("pull"):
            return
        from connectors.config import ConfigError, load_all
        from tui.prompt import Prompt

        try:
            names = sorted(load_all())
        except ConfigError as e:
            self.notify(clean(e), severity="error")
            return
        if not names:
            self.notify("no connector configured: add one on the connectors screen (7) or with `stanch connector "
                        "add`", severity="warning")
            return

        def answer(value: str | None) -> None:
            if value:
                self.run_pull(value)

        self.push_screen(Prompt("Pull events from a connector", value=names[0] if len(names) == 1 else "",
                                placeholder="connector name", hint="configured: " + ", ".join(names)), answer)

    @work(thread=True, group="activity")
    def run_pull(self, name: str) -> None:
        from casefile.case import CaseError, open_case
        from connectors.config import ConfigError, load, secret_for
        from connectors.http import ConnectorError
        from connectors.pull import PullSummary, run_pull

        last = [0.0]

        def progress(s: PullSummary) -> None:
            now = time.monotonic()
            if now - last[0] > 0.2:
                last[0] = now
                self.call_from_thread(self._set_activity, f"pulling {clean(name, 30)}: {s.pages:,} pages, "
                                                          f"{s.events_seen:,} events")

        self.call_from_thread(self._set_activity, f"pulling {clean(name, 30)}")
        try:
            settings = load(name)
            secret = secret_for(name, None, settings=settings)
            with open_case(self.case_path, analyst=self.analyst) as case:
                summary = run_pull(case, settings, secret, progress=progress)
        except (ConfigError, ConnectorError, CaseError, OSError) as e:
            self.call_from_thread(self._finish_activity, f"pull {clean(name, 30)} failed: {clean(e)}; pages stored "
                                  "before this stay, and the next pull resumes after them", "error")
            return
        self.call_from_thread(self._finish_activity, f"pull {clean(name, 30)} done: {summary.pages:,} pages, "
                              f"{summary.events_added:,} events added, {summary.malformed} malformed")

    def action_export(self, fmt: str) -> None:
        from tui.prompt import Prompt

        stem = os.path.splitext(os.path.basename(self.case_path))[0]
        default = {"timesketch-jsonl": f"{stem}-timeline.jsonl", "timesketch-csv": f"{stem}-timeline.csv",
                   "html": f"{stem}-report.html", "opengraph": f"{stem}-opengraph.json",
                   "revocation-set": f"{stem}-revocation-set.json"}.get(fmt, f"{stem}-report.md")

        def answer(value: str | None) -> None:
            if value:
                self.run_export(fmt, value)

        self.push_screen(Prompt(f"Export the case as {fmt}", value=default, placeholder="output file",
                                hint="written from the redacted case: fingerprints and masked previews only"), answer)

    @work(thread=True, group="activity")
    def run_export(self, fmt: str, out: str) -> None:
        import connectors  # noqa: F401  (the graph formats name the connector that can revoke each credential)
        from casefile.case import CaseError, open_case
        from casefile.export import export

        self.call_from_thread(self._set_activity, f"exporting {fmt}")
        try:
            with open_case(self.case_path, analyst=self.analyst, upgrade=False) as case:
                n = export(case, fmt, out, progress=lambda k: self.call_from_thread(
                    self._set_activity, f"exporting {fmt}: {k:,} events"))
        except (CaseError, OSError, ValueError) as e:
            self.call_from_thread(self._finish_activity, f"export failed: {clean(e)}", "error")
            return
        what = (f"{n:,} events" if fmt.startswith("timesketch") else f"{n:,} items" if fmt == "revocation-set"
                else f"{n:,} nodes" if fmt == "opengraph" else "the report")
        self.call_from_thread(self._finish_activity, f"exported {what} to {clean(out)}")

    def available(self, name: str) -> bool:
        module = SCREENS[name][0]
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    def make(self, name: str) -> Screen[Any]:
        made = self._made.get(name)
        if made is not None and made.is_mounted and not made.is_attached:
            # Popped off the stack (going back to a screen below it removes it): its widgets are gone, so a
            # screen opening it with a target (`open`) would find none. Build it again.
            del self._made[name]
        if name not in self._made:
            module, cls, _ = SCREENS[name]
            self._made[name] = getattr(importlib.import_module(module), cls)()
        return self._made[name]

    def action_goto(self, name: str) -> None:
        if name not in SCREENS or not self.available(name):
            self.notify(f"no screen {clean(name)!r}; one of {', '.join(n for n in SCREENS if self.available(n))}",
                        severity="warning")
            return
        screen = self.make(name)
        if self.screen is screen:
            return
        if screen in self.screen_stack:
            while self.screen is not screen:
                self.pop_screen()
        else:
            self.push_screen(screen)

    def open(self, name: str, target: Any = None) -> None:
        """Go to screen `name` and show `target` there: a credential key on `blast`, a plan id on `playbooks`,
        {"query": ..., "event": ...} on `timeline`. The screen gets it through its `focus_on(target)`."""
        self.action_goto(name)
        screen = self._made.get(name)
        if screen is not None and target is not None and hasattr(screen, "focus_on"):
            screen.focus_on(target)

    def action_jump(self) -> None:
        box = self.screen.query(JumpInput)
        if box:
            box.first().add_class("shown")
            box.first().focus()
            return
        jump = JumpInput(placeholder="screen: overview, credentials, blast, timeline, findings, playbooks…")
        self.screen.mount(jump)
        jump.add_class("shown")
        jump.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if isinstance(event.input, JumpInput):
            event.input.remove()
            self.action_goto(event.value.strip().lower())

    def action_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def screen_actions(self) -> Iterable[tuple[str, str, str]]:
        """(label, action, help) the current screen offers to the command palette (`PALETTE` on the screen)."""
        for label, action, help_text in getattr(self.screen, "PALETTE", ()):
            if self.read_only and action.split("(")[0] in WRITES:
                continue
            yield label, action, help_text

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Export timeline (Timesketch JSONL)", "every event, redacted, importable by Timesketch",
                            partial(self.action_export, "timesketch-jsonl"))
        yield SystemCommand("Export report (Markdown)", "summary, findings with NHI/CSF/ATT&CK ids, actions, checklist",
                            partial(self.action_export, "markdown"))
        yield SystemCommand("Export report (HTML)", "the same report as one self-contained page",
                            partial(self.action_export, "html"))
        yield SystemCommand("Export timeline (Timesketch CSV)", "every event, redacted; formula cells neutralised",
                            partial(self.action_export, "timesketch-csv"))
        yield SystemCommand("Export graph (BloodHound OpenGraph)", "the blast radius of every flagged credential",
                            partial(self.action_export, "opengraph"))
        yield SystemCommand("Export revocation set (JSON)", "what to revoke, from every flagged credential",
                            partial(self.action_export, "revocation-set"))
        if not self.read_only:
            yield SystemCommand("Ingest log files…", "read logs into the case with live progress", self.action_ingest)
            yield SystemCommand("Pull a connector…", "fetch events live from a configured connector",
                                self.action_pull)


# The first console screen of the foundation issue, kept as a name for scripts and tests that open it.
def OverviewApp(case_path: str) -> StanchApp:  # noqa: N802
    return StanchApp(case_path)


def run_console(case_path: str | None, read_only: bool = False, analyst: str | None = None,
                playbook_dirs: Iterable[str] = ()) -> None:
    """Open the console on a case; with none, the launcher (recent cases, open a path, new case) chooses it."""
    from tui import recent

    if case_path is None:
        from tui.launcher import LauncherApp

        case_path = LauncherApp().run()
        if not case_path:
            return
    app = StanchApp(case_path, read_only=read_only, analyst=analyst, playbook_dirs=playbook_dirs)
    app.run()
    if app.case_title:
        recent.remember(case_path, app.case_title)
