"""The stanch console (Textual). Imported only when the console opens; the CLI never imports it otherwise.

One app, one case, a screen per job: overview, credentials, blast radius, timeline, findings, playbooks,
connectors, audit. Keys 1–8 switch screens, `:` jumps by name, ctrl+p opens the command palette (every action),
`?` shows the focused screen's keys. `--read-only` removes every destructive action and shows a lock. Every
screen reads the case in workers (its own connection per thread) and renders untrusted text literally.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from functools import partial
from typing import Any

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
        *[Binding(key, f"goto('{name}')", name.capitalize(), show=False) for name, (_, _, key) in SCREENS.items()],
    ]

    def __init__(self, case_path: str, *, read_only: bool = False, analyst: str | None = None,
                 start: str = "overview") -> None:
        super().__init__()
        self.case_path = case_path
        self.read_only = read_only
        self.analyst = analyst
        self.start = start
        self.case_title = ""
        self._made: dict[str, Screen[Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Footer()

    def on_mount(self) -> None:
        from casefile.case import open_case

        with open_case(self.case_path, analyst=self.analyst) as case:  # upgrades an older case once, here
            self.case_title = clean(case.meta().get("title") or self.case_path)
        self.action_goto(self.start)

    def subtitle(self, screen_title: str) -> str:
        lock = "  [read-only]" if self.read_only else ""
        return f"{self.case_title} · {screen_title}{lock}"

    def available(self, name: str) -> bool:
        module = SCREENS[name][0]
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            return False

    def make(self, name: str) -> Screen[Any]:
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
            if self.read_only and action.startswith(("apply", "approve", "revoke", "tick")):
                continue
            yield label, action, help_text

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)


# The first console screen of the foundation issue, kept as a name for scripts and tests that open it.
def OverviewApp(case_path: str) -> StanchApp:  # noqa: N802
    return StanchApp(case_path)


def run_console(case_path: str | None, read_only: bool = False, analyst: str | None = None) -> None:
    """Open the console on a case."""
    if case_path is None:
        raise SystemExit("stanch: give a case: `stanch open CASE` or `stanch demo`")
    StanchApp(case_path, read_only=read_only, analyst=analyst).run()
