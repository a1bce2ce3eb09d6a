"""A one-line question in a modal: the app's own prompts (ingest a file, pull a connector, export to a path)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from tui.safe_text import literal


class Prompt(ModalScreen[str | None]):
    """Ask for one value. Enter or OK answers; Escape or Cancel answers None."""

    DEFAULT_CSS = """
    Prompt { align: center middle; }
    Prompt > Vertical { width: 72; max-width: 100%; height: auto; border: round $accent; padding: 0 1;
                        background: $surface; }
    Prompt Label { width: 100%; }
    Prompt Horizontal { height: auto; align-horizontal: right; }
    Prompt Button { margin: 0 0 0 1; min-width: 10; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "", hint: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder, self.hint = question, value, placeholder, hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(literal(self.question, style="bold"))
            if self.hint:
                yield Label(literal(self.hint))
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.dismiss(self.query_one("#answer", Input).value.strip() or None)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
