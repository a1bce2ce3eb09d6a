"""Modal dialogs of the playbooks and connectors screens: approval (typed confirmation, Cancel focused), the raw
secrets prompt (masked, held in memory only), playbook inputs, a manual item's note, a yes/no confirmation and
the connector form. Every modal closes with Escape (= Cancel) and puts Cancel first in focus where a mistake
would act on something; untrusted text (plan items, connector names) is shown literally."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from tui.safe_text import clean, literal

_R = TypeVar("_R")


class StanchModal(ModalScreen[_R]):
    """A centred dialog of compact widgets (fits 80x24), closed by Escape."""

    SCOPED_CSS = False
    DEFAULT_CSS = """
    StanchModal { align: center middle; }
    StanchModal > Vertical.dialog {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    StanchModal .title { text-style: bold; width: 100%; }
    StanchModal .hint { color: $text-muted; }
    StanchModal .error { color: $error; height: auto; }
    StanchModal .warn { color: $warning; }
    StanchModal VerticalScroll.list { height: auto; max-height: 6; }
    StanchModal VerticalScroll#fields { height: auto; max-height: 14; }
    StanchModal Input { margin: 0 0 1 0; background: $boost; }
    StanchModal Select { margin: 0 0 1 0; }
    StanchModal Horizontal.buttons { height: auto; align-horizontal: right; margin-top: 1; }
    StanchModal Horizontal.buttons Button { margin-left: 2; min-width: 10; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def action_cancel(self) -> None:
        self.dismiss(None)


def case_name(case_path: str) -> str:
    """What a responder types to approve a plan with an irreversible item: the case file's name without its
    `.stanch` suffix (`demo` for `./demo.stanch`), the name `stanch open` and the file manager show."""
    name = Path(case_path).name
    return name[: -len(".stanch")] if name.endswith(".stanch") and len(name) > len(".stanch") else name


def _item_line(i: dict[str, Any]) -> Text:
    where = f"{i.get('connector_kind') or '?'}:{i.get('connector') or '-'}"
    return literal(f"#{i['seq']} {i.get('verb') or ''} on {i.get('preview') or i.get('target') or ''} ({where})", 70)


class ApprovalModal(StanchModal[str | None]):
    """Approve one plan's exact hash. Shows the hash, the item counts and every irreversible item. With any
    irreversible item, Approve stays disabled until the case name is typed exactly. Cancel has focus; Escape
    cancels. Dismisses with the approver's name, or None."""

    AUTO_FOCUS = "#cancel"
    def __init__(self, doc: dict[str, Any], case_path: str, approver: str) -> None:
        super().__init__()
        self.doc = doc
        self.expected = case_name(case_path)
        self.approver = approver
        items = doc["items"]
        self.acts = [i for i in items if i["kind"] == "act"]
        self.irreversible = [i for i in self.acts if not i["reversible"] and i["state"] != "blocked"]

    def compose(self) -> ComposeResult:
        d = self.doc
        items = d["items"]
        kinds = {k: sum(1 for i in items if i["kind"] == k) for k in ("act", "probe", "manual", "export")}
        blocked = sum(1 for i in self.acts if i["state"] == "blocked")
        raw = sum(1 for i in self.acts if i["needs_raw"] and i["state"] != "blocked")
        with Vertical(classes="dialog"):
            yield Label(literal(f"Approve plan {d['plan']}: {d['title']}", 150), classes="title")
            yield Static(Text(f"hash {d['hash']}"), id="hash")
            counts = (f"{kinds['act']} act ({len(self.irreversible)} irreversible, {raw} need a raw secret"
                      f"{f', {blocked} blocked' if blocked else ''}), {kinds['probe']} probe, {kinds['manual']} manual,"
                      f" {kinds['export']} export")
            yield Static(Text(counts), id="counts")
            if self.irreversible:
                yield Label(Text("Irreversible (no undo):", style="bold"), classes="warn")
                with VerticalScroll(classes="list"):
                    for i in self.irreversible:
                        yield Static(_item_line(i))
            if blocked:
                yield Static(Text(f"{blocked} blocked item(s) will not run: plan again after fixing their note."),
                             classes="hint")
            yield Label("Approve as")
            yield Input(self.approver, id="approver", compact=True)
            if self.irreversible:
                yield Label(literal(f"Type the case name {self.expected} to approve irreversible items"))
                yield Input(placeholder=f"type {self.expected} here", id="confirm", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Approve", id="approve", variant="warning", disabled=True, compact=True)

    def on_mount(self) -> None:
        self._update()

    def typed_ok(self) -> bool:
        if not self.irreversible:
            return True
        return self.query_one("#confirm", Input).value == self.expected

    def _update(self) -> None:
        approver = self.query_one("#approver", Input).value.strip()
        self.query_one("#approve", Button).disabled = not (approver and self.typed_ok())

    @on(Input.Changed)
    def _changed(self, _: Input.Changed) -> None:
        self._update()

    @on(Input.Submitted)
    def _submitted(self, _: Input.Submitted) -> None:
        if not self.query_one("#approve", Button).disabled:
            self._approve()

    @on(Button.Pressed, "#approve")
    def _approve(self) -> None:
        approver = self.query_one("#approver", Input).value.strip()
        if approver and self.typed_ok():
            self.dismiss(approver)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class SecretsModal(StanchModal[dict[str, str] | None]):
    """One masked Input per raw secret the plan needs, labelled by its masked preview and key. A value must
    fingerprint to its key (checked here, before anything is sent). Dismisses with {key: raw} for every key
    each value fingerprints to — held in memory for one apply call by the caller — or None. Nothing is written
    or logged; the inputs are emptied as the dialog closes. `optional`: empty values are allowed (verify)."""

    AUTO_FOCUS = "#secret-0"

    def __init__(self, needs: list[tuple[str, str | None, int]], *, purpose: str = "apply",
                 optional: bool = False) -> None:
        super().__init__()
        self.needs = needs  # (secret key, masked preview, items needing it)
        self.purpose = purpose
        self.optional = optional

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Raw secrets for {self.purpose}", classes="title")
            yield Static(Text("Each value is matched by its sha256 key, kept in memory for this run only, never "
                              "written or logged." + (" Leave empty to probe without it." if self.optional else "")),
                         classes="hint")
            with VerticalScroll(id="fields"):
                for n, (key, preview, count) in enumerate(self.needs):
                    shown = f"{preview or '(no preview)'}  {key[:24]}…  ({count} item{'s' if count != 1 else ''})"
                    yield Label(literal(shown, 72))
                    yield Input(password=True, placeholder="paste the raw value", id=f"secret-{n}", compact=True)
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Use these", id="ok", variant="primary", compact=True)

    def _collect(self) -> dict[str, str] | None:
        from playbooks.engine import read_secrets

        out: dict[str, str] = {}
        problems: list[str] = []
        for n, (key, preview, _) in enumerate(self.needs):
            value = self.query_one(f"#secret-{n}", Input).value
            if not value.strip():
                if not self.optional:
                    problems.append(f"{preview or key[:20]}: empty")
                continue
            keys = read_secrets([value])
            if key not in keys:
                problems.append(f"{preview or key[:20]}: that value does not fingerprint to {key[:20]}…")
                continue
            out.update(keys)
        if problems:
            self.query_one("#error", Static).update(literal("; ".join(problems), 300))
            out.clear()
            return None
        return out

    def _wipe(self) -> None:
        for n in range(len(self.needs)):
            self.query_one(f"#secret-{n}", Input).value = ""

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        got = self._collect()
        if got is not None:
            self._wipe()
            self.dismiss(got)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self._wipe()
        self.dismiss(None)


class InputsModal(StanchModal[dict[str, str] | None]):
    """A playbook's inputs (`P`): one Input per input, prefilled with its default; required ones marked."""

    AUTO_FOCUS = "#input-0"

    def __init__(self, playbook_id: str, title: str, inputs: dict[str, dict[str, Any]],
                 values: dict[str, str] | None = None) -> None:
        super().__init__()
        self.playbook_id = playbook_id
        self.pb_title = title
        self.inputs = inputs
        self.values = values or {}
        self.names = list(inputs)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(literal(f"Plan {self.playbook_id}: {self.pb_title}", 150), classes="title")
            yield Static(Text("Planning touches nothing remote."), classes="hint")
            with VerticalScroll(id="fields"):
                for n, name in enumerate(self.names):
                    spec = self.inputs[name]
                    req = " (required)" if spec.get("required") else ""
                    yield Label(literal(f"{name}{req}: {spec.get('description', '')}", 140))
                    default = self.values.get(name, spec.get("default", ""))
                    yield Input(clean(default), id=f"input-{n}", compact=True)
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Plan", id="ok", variant="primary", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        out: dict[str, str] = {}
        for n, name in enumerate(self.names):
            value = self.query_one(f"#input-{n}", Input).value.strip()
            if not value and self.inputs[name].get("required"):
                self.query_one("#error", Static).update(literal(f"input {name} is required"))
                return
            out[name] = value
        self.dismiss(out)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteModal(StanchModal[str | None]):
    """Tick a manual item: what was done and where the proof is (required)."""

    AUTO_FOCUS = "#note"

    def __init__(self, heading: str, text: str) -> None:
        super().__init__()
        self.heading = heading
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(literal(self.heading, 150), classes="title")
            with VerticalScroll(classes="list"):
                yield Static(literal(self.text))
            yield Label("What was done, where the proof is")
            yield Input(id="note", compact=True)
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Tick", id="ok", variant="primary", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        note = self.query_one("#note", Input).value.strip()
        if not note:
            self.query_one("#error", Static).update("say what was done")
            return
        self.dismiss(note)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(StanchModal[bool]):
    """Yes or no; Cancel has focus, Escape cancels."""

    AUTO_FOCUS = "#cancel"
    def __init__(self, message: str, confirm: str = "OK") -> None:
        super().__init__()
        self.message = message
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(literal(self.message, 400))
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(self.confirm, id="ok", variant="error", compact=True)

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class AddConnectorModal(StanchModal[tuple[Any, str] | None]):
    """`stanch connector add` as a form: name, kind (the registered kinds), URL, optional client id and the
    secret in a masked Input. Settings are validated here (no I/O); dismisses with (ConnectorSettings, secret) for
    the caller to store through `connectors.config.add_connector` (secret to the keyring, settings to the file)."""

    AUTO_FOCUS = "#name"

    def compose(self) -> ComposeResult:
        from connectors.config import KINDS

        with Vertical(classes="dialog"):
            yield Label("Add a connector", classes="title")
            yield Input(placeholder="name (e.g. okta-prod)", id="name", compact=True)
            yield Select([(k, k) for k in KINDS], prompt="kind", id="kind", compact=True)
            yield Input(placeholder="base URL (https://…)", id="url", compact=True)
            yield Input(placeholder="client id (oauth, okta, keycloak, entra; else empty)", id="client_id",
                        compact=True)
            yield Input(placeholder="secret (goes to the OS keyring, never to a file)", password=True, id="secret",
                        compact=True)
            yield Static("", id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Add", id="ok", variant="primary", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        from connectors.config import ConfigError, ConnectorSettings

        kind = self.query_one("#kind", Select).value
        secret_box = self.query_one("#secret", Input)
        try:
            if not isinstance(kind, str):
                raise ConfigError("choose a kind")
            settings = ConnectorSettings(
                name=self.query_one("#name", Input).value.strip(), kind=kind,
                url=self.query_one("#url", Input).value.strip(),
                client_id=self.query_one("#client_id", Input).value.strip() or None).validate()
            if not secret_box.value.strip():
                raise ConfigError(f"connector {settings.name}: the secret is empty")
        except ConfigError as e:
            self.query_one("#error", Static).update(literal(str(e), 300))
            return
        secret = secret_box.value
        secret_box.value = ""
        self.dismiss((settings, secret))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.query_one("#secret", Input).value = ""
        self.dismiss(None)
