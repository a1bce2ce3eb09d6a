"""Playbooks: plan → approve → apply → verify, the way `stanch play` does it, driven from the keyboard.

Left: the playbooks (built-in and the app's `playbook_dirs`, if any) and the case's plans (id, playbook, state,
approved by). Right: the selected plan — a header (hash, approval, the diff against the previous plan of the
same playbook and inputs, item states), one progress line per connector, and the items in step order (kind,
verb, connector, masked target preview, reversible or not, raw secret needed, state, verdict); the line at the
bottom shows the highlighted item in full.

Keys: `P` plan the highlighted playbook (an input form), `a` approve (ApprovalModal), `x` apply (SecretsModal
first when items need a raw value), `r` resume an interrupted apply (in-flight items are probed first), `v`
verify, `k`/space tick a manual item with a note. Every step calls the same engine functions as the CLI
(`playbooks.engine.make_plan|apply|verify|tick|status`, `casefile.plans.approve`) in a thread worker, each on
its own connection. `--read-only` hides and refuses plan/approve/apply/resume/tick/verify (all of them write
to the case); the plans, items, verdicts and diffs stay readable.

Plan diff (decided here): a plan is compared with the newest earlier plan of the same playbook and the same
inputs, item by item on the idempotency key: `+` added, `~` changed (connector, verb details, raw need,
reversibility, undo, or blocked ↔ runnable), and removed items listed after the plan's own rows. A plan whose
items no longer hash to what was approved (or created) is flagged CHANGED; apply refuses it, so plan again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer, Header, Label, Static

from casefile import plans
from casefile.case import Case, CaseError
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen

#: Actions that change the case or a remote system: hidden and refused in read-only mode.
#: (Verify too: its probes reach the vendors and it writes their verdicts to the case; the app's WRITES agree.)
DESTRUCTIVE = ("plan", "approve", "apply", "resume", "tick", "verify")
_KEYS = {"P": "plan", "a": "approve", "x": "apply", "r": "resume", "k": "tick", "space": "tick", "v": "verify"}
#: Item fields compared by the plan diff (besides seq, which moves when items are added).
DIFF_FIELDS = ("connector", "connector_kind", "verb", "target", "credential_id", "secret_key", "needs_raw",
               "reversible", "rotation", "undo", "text")
#: States of an act item that a run has settled (a blocked item never runs, so it is not progress).
SETTLED = ("verified", "done", "failed", "skipped")
STATE_STYLE = {"verified": "bold green", "done": "green", "failed": "bold red", "blocked": "yellow",
               "in-flight": "bold yellow", "waiting": "cyan", "removed": "dim"}


# ------------------------------------------------------------------------------------------- reading (workers)


def plan_view(case: Case, plan_id: int) -> dict[str, Any]:
    """Everything the right pane shows for one plan: `engine.status`, the recomputed hash, and the diff."""
    from playbooks import engine

    doc = engine.status(case, plan_id)
    plan = plans.load(case, plan_id)
    current = plans.plan_hash(plan.playbook, plan.inputs, plan.items)
    doc["inputs"] = plan.inputs
    doc["current_hash"] = current
    doc["changed"] = current != plan.hash or (plan.approved_hash is not None and plan.approved_hash != current)
    doc["diff"] = None
    for pid, in case.conn.execute("SELECT id FROM plans WHERE playbook = ? AND id < ? ORDER BY id DESC",
                                  (plan.playbook, plan_id)):
        prev = plans.load(case, pid)
        if prev.inputs == plan.inputs:
            doc["diff"] = plan_diff([i.as_dict() for i in prev.items], doc["items"], pid)
            break
    return doc


def plan_diff(old: list[dict[str, Any]], new: list[dict[str, Any]], against: int) -> dict[str, Any]:
    """Items added, removed and changed from `old` to `new`, matched by idempotency key."""
    before = {i["idempotency_key"]: i for i in old}
    after = {i["idempotency_key"]: i for i in new}
    changed: dict[str, list[str]] = {}
    for key in after.keys() & before.keys():
        a, b = before[key], after[key]
        fields = [f for f in DIFF_FIELDS if a.get(f) != b.get(f)]
        if (a["state"] == "blocked") != (b["state"] == "blocked"):
            fields.append("unblocked" if a["state"] == "blocked" else "blocked")
        if fields:
            changed[key] = fields
    return {"against": against, "added": [k for k in after if k not in before],
            "removed": [i for k, i in before.items() if k not in after], "changed": changed}


def plan_state(p: dict[str, Any], running: int | None = None) -> str:
    """One word for a plan row: draft, changed, approved, applying, interrupted, open N, done."""
    if running == p["plan"]:
        return "applying"
    st = p["states"]
    if not p["approved"]:
        return "changed" if p.get("approved_by") else "draft"
    if st.get("in-flight"):
        return "interrupted"
    if set(st) <= {"pending", "blocked"}:
        return "approved"
    left = sum(n for s, n in st.items() if s not in ("verified", "done", "skipped"))
    return f"open {left}" if left else "done"


def needs_raw(doc: dict[str, Any], states: tuple[str, ...]) -> list[tuple[str, str | None, int]]:
    """(secret key, masked preview, items) for each raw value the act items in `states` need."""
    out: dict[str, tuple[str | None, int]] = {}
    for i in doc["items"]:
        if i["kind"] == "act" and i["needs_raw"] and i["secret_key"] and i["state"] in states:
            preview, n = out.get(i["secret_key"], (i["preview"], 0))
            out[i["secret_key"]] = (preview or i["preview"], n + 1)
    return [(k, p, n) for k, (p, n) in out.items()]


def progress_lines(doc: dict[str, Any], width: int = 12) -> Text:
    """One line per connector: a bar of settled act items, and the count of each state."""
    out = Text()
    by = doc.get("by_connector") or {}
    if not by:
        out.append("no act items: nothing is sent to a connector", style="dim")
        return out
    for n, (name, states) in enumerate(sorted(by.items())):
        if n == 3 and len(by) > 4:
            out.append(f"\n… {len(by) - 3} more connectors", style="dim")
            break
        total = sum(states.values())
        fin = sum(c for s, c in states.items() if s in SETTLED)
        fill = round(width * fin / total) if total else 0
        if n:
            out.append("\n")
        out.append_text(literal(f"{name[:14]:<14} "))
        out.append("█" * fill, style="green")
        out.append("░" * (width - fill), style="dim")
        out.append(f" {fin}/{total}  ")
        out.append_text(literal(", ".join(f"{c} {s}" for s, c in sorted(states.items()))))
    return out


# ------------------------------------------------------------------------------------------------ the screen


class PlaybooksScreen(CaseScreen):
    NAME = "playbooks"
    TITLE = "playbooks"
    CSS = """
    #body { height: 1fr; }
    #left { width: 28; height: 1fr; }
    #left Label { width: 100%; background: $panel; color: $text; padding: 0 1; }
    #playbooks { height: 1fr; }
    #plans { height: 1fr; }
    #right { height: 1fr; border-left: solid $panel; }
    #head { height: auto; max-height: 3; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #progress { height: auto; max-height: 4; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #items { height: 1fr; }
    #detail { height: 3; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        Binding("P", "plan", "Plan", key_display="P"),
        Binding("a", "approve", "Approve"),
        Binding("x", "apply", "Apply"),
        Binding("r", "resume", "Resume"),
        Binding("v", "verify", "Verify"),
        Binding("k", "tick", "Tick"),
        Binding("space", "tick", "Tick", show=False),
        Binding("f5", "reload", "Reload", show=False),
    ]
    _PALETTE = [
        ("plan the highlighted playbook", "plan", "expand it into items (asks for its inputs); nothing remote"),
        ("approve the plan", "approve", "bind your name to the plan's hash (typed confirmation)"),
        ("apply the plan", "apply", "run the approved plan's items through their connectors, then verify"),
        ("resume an interrupted apply", "resume", "probe what was in flight, then send what is left"),
        ("verify the plan", "verify", "probe every done item; a failed probe re-opens it"),
        ("tick a manual item", "tick", "close the highlighted manual item with a note"),
        ("reload the plans", "reload", "read the case again"),
    ]

    @property
    def PALETTE(self) -> list[tuple[str, str, str]]:  # noqa: N802  (the app reads PALETTE)
        return [p for p in self._PALETTE if not (self.read_only and p[1] in DESTRUCTIVE)]

    def __init__(self) -> None:
        super().__init__()
        self._pbs: dict[str, Any] | None = None
        self.pb_id: str | None = None
        self.plan_id: int | None = None
        self.doc: dict[str, Any] | None = None
        self.running: int | None = None  # the plan an apply/verify of this screen is running
        self.live_updates = 0  # progress callbacks shown (tests read it)
        self._want: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Label("playbooks")
                yield DataTable(id="playbooks", cursor_type="row", zebra_stripes=True)
                yield Label("plans")
                yield DataTable(id="plans", cursor_type="row", zebra_stripes=True)
            with Vertical(id="right"):
                yield Static(Text("no plan yet: highlight a playbook and press P", style="dim"), id="head")
                yield Static(id="progress")
                yield DataTable(id="items", cursor_type="row", zebra_stripes=True)
                yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        pb: DataTable[Any] = self.query_one("#playbooks", DataTable)
        pb.show_header = False
        pb.add_column("playbook", key="id")
        pl: DataTable[Any] = self.query_one("#plans", DataTable)
        pl.add_column("#", key="id")
        pl.add_column("playbook", key="playbook", width=9)
        pl.add_column("state", key="state")
        pl.add_column("approved by", key="by")
        items: DataTable[Any] = self.query_one("#items", DataTable)
        for label, key, width in (("#", "seq", None), ("step", "step", 9), ("state", "state", None),
                                  ("verdict", "verdict", None), ("kind", "kind", None), ("verb", "verb", None),
                                  ("connector", "connector", None), ("target", "target", 24), ("undo", "undo", None),
                                  ("raw", "raw", None)):
            items.add_column(label, key=key, width=width)
        self.load(self._want)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._pbs is not None:  # back from another screen: plans may have been made there
            self.load(self._want or self.plan_id)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Messages here carry untrusted text (errors, names): never markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- cross-screen --------------------------------------------------------------------------------------
    def focus_on(self, target: Any) -> None:
        """Select plan `target` (the blast screen makes a plan and opens it here)."""
        try:
            pid = int(target)
        except (TypeError, ValueError):
            self.notify(f"no plan {clean(target)!r}", severity="warning")
            return
        self._want = pid
        if self.is_mounted and self._pbs is not None:
            self.load(pid)

    # -- read-only -----------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in DESTRUCTIVE)  # False: hidden from the footer and the palette

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
    def _playbooks(self) -> dict[str, Any]:
        if self._pbs is None:
            from playbooks.model import PlaybookError, load_all

            try:
                self._pbs = load_all(tuple(getattr(self.stanch, "playbook_dirs", ()) or ()))
            except PlaybookError as e:
                self.app.call_from_thread(self.notify, clean(e, 300), severity="error")
                self._pbs = {}
        return self._pbs

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, select: int | None = None) -> None:
        pbs = self._playbooks()

        def read(case: Case) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
            rows = plans.plans(case)
            ids = [r["plan"] for r in rows]
            pid = select if select in ids else (self.plan_id if self.plan_id in ids else (ids[-1] if ids else None))
            return rows, plan_view(case, pid) if pid is not None else None

        try:
            rows, doc = self.read(read)
        except (CaseError, sqlite3.Error, OSError) as e:
            self.app.call_from_thread(self.notify, f"cannot read the plans: {clean(e, 300)}", severity="error")
            return
        self.app.call_from_thread(self.show, pbs, rows, doc, select)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False)
    def load_plan(self, pid: int) -> None:
        try:
            doc = self.read(lambda c: plan_view(c, pid))
        except (CaseError, sqlite3.Error, OSError) as e:
            self.app.call_from_thread(self.notify, f"cannot read plan {pid}: {clean(e, 300)}", severity="error")
            return
        self.app.call_from_thread(self.show_plan, doc)

    def action_reload(self) -> None:
        self.load(self.plan_id)

    # -- showing -------------------------------------------------------------------------------------------
    def show(self, pbs: dict[str, Any], rows: list[dict[str, Any]], doc: dict[str, Any] | None,
             asked: int | None = None) -> None:
        table: DataTable[Any] = self.query_one("#playbooks", DataTable)
        if table.row_count == 0 and pbs:
            for pid in pbs:
                table.add_row(literal(pid), key=pid)
            if self.pb_id is None:
                self.pb_id = next(iter(pbs))
        self.show_plans(rows, doc["plan"] if doc else None)
        if doc is not None:
            self.show_plan(doc)
        if asked is not None and asked == self._want:  # the answer to focus_on(asked)
            self._want = None
            if doc is not None and doc["plan"] == asked:
                self.query_one("#items", DataTable).focus()
            else:
                self.notify(f"no plan {asked} in this case", severity="warning")

    def show_plans(self, rows: list[dict[str, Any]], selected: int | None) -> None:
        table: DataTable[Any] = self.query_one("#plans", DataTable)
        with table.prevent(DataTable.RowHighlighted):  # the programme moves the cursor, not the responder
            table.clear()
            for p in rows:
                table.add_row(str(p["plan"]), literal(p["playbook"]), literal(plan_state(p, self.running)),
                              literal(p["approved_by"] if p["approved"] else "-"), key=str(p["plan"]))
            if selected is not None:
                self.plan_id = selected
                table.move_cursor(row=table.get_row_index(str(selected)), animate=False)

    def show_plan(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.plan_id = doc["plan"]
        self._show_head(doc)
        self.query_one("#progress", Static).update(progress_lines(doc))
        table: DataTable[Any] = self.query_one("#items", DataTable)
        keep = table.cursor_row
        table.clear()
        diff = doc.get("diff") or {}
        added = set(diff.get("added") or ())
        changed = diff.get("changed") or {}
        step = None
        for i in doc["items"]:
            mark = "+" if i["idempotency_key"] in added else ("~" if i["idempotency_key"] in changed else " ")
            table.add_row(*self._cells(i, mark, i["step"] if i["step"] != step else ""), key=str(i["seq"]))
            step = i["step"]
        for i in diff.get("removed") or ():
            table.add_row(*self._cells({**i, "state": "removed", "verdict": None}, "-", i["step"]),
                          key=f"gone-{i['idempotency_key']}")
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1), animate=False)
        self._show_detail()

    def _cells(self, i: dict[str, Any], mark: str, step: str) -> tuple[Any, ...]:
        act = i["kind"] == "act"
        target = i.get("preview") or i.get("target") or i.get("text") or ""
        return (Text(f"{mark}{i['seq']}"), literal(step, 9), self._state(i["state"]), literal(i.get("verdict") or ""),
                literal(i["kind"]), literal(i.get("verb") or ""),
                literal(f"{i.get('connector_kind') or ''}:{i.get('connector') or '-'}" if act else ""),
                literal(target, 24), Text(("reversible" if i["reversible"] else "IRREVERSIBLE") if act else "",
                                          style="" if i["reversible"] else "bold"),
                Text("needed" if i["needs_raw"] else ""))

    @staticmethod
    def _state(state: str) -> Text:
        return literal(state, style=STATE_STYLE.get(state, ""))

    def _show_head(self, doc: dict[str, Any]) -> None:
        head = Text()
        head.append_text(literal(f"plan {doc['plan']} "))
        if doc.get("changed"):
            head.append("CHANGED since approval: plan again", style="bold red")
        elif doc["approved"]:
            head.append_text(literal(f"approved by {doc['approved_by']}", style="bold"))
        else:
            head.append("NOT approved (a)", style="bold yellow")
        head.append_text(literal(f" · {doc['playbook']}"))
        diff = doc.get("diff")
        head.append(f"\nhash {doc['hash'][:16]} · ")
        if diff:
            head.append(f"vs plan {diff['against']}: +{len(diff['added'])} -{len(diff['removed'])} "
                        f"~{len(diff['changed'])}")
        else:
            head.append("no earlier plan of these inputs", style="dim")
        head.append("\n")
        st = doc["states"]
        head.append_text(literal(" · ".join(f"{n} {s}" for s, n in sorted(st.items()))))
        if st.get("in-flight") and self.running != doc["plan"]:
            head.append(f"  interrupted: {st['in-flight']} in flight, r resumes (probed first)", style="bold yellow")
        self.query_one("#head", Static).update(head)

    def show_live(self, doc: dict[str, Any]) -> None:
        """A progress callback's view of the plan being applied: head, per-connector lines, item cells."""
        self.live_updates += 1
        if self.plan_id != doc["plan"] or self.doc is None:
            return
        old = {i["seq"]: i for i in self.doc["items"]}
        table: DataTable[Any] = self.query_one("#items", DataTable)
        for i in doc["items"]:
            was = old.get(i["seq"])
            if was is None or (was["state"], was.get("verdict")) == (i["state"], i.get("verdict")):
                continue
            table.update_cell(str(i["seq"]), "state", self._state(i["state"]))
            table.update_cell(str(i["seq"]), "verdict", literal(i.get("verdict") or ""))
        self.doc = {**self.doc, **{k: doc[k] for k in ("items", "states", "by_connector")}}
        self._show_head(self.doc)
        self.query_one("#progress", Static).update(progress_lines(self.doc))
        self._show_detail()

    def _show_detail(self) -> None:
        table: DataTable[Any] = self.query_one("#items", DataTable)
        box = self.query_one("#detail", Static)
        if self.doc is None or not table.row_count:
            box.update("")
            return
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value or ""
        item = next((i for i in self.doc["items"] if str(i["seq"]) == key), None)
        if item is None:
            gone = next((i for i in (self.doc.get("diff") or {}).get("removed") or ()
                         if f"gone-{i['idempotency_key']}" == key), None)
            box.update(literal(f"removed since plan {self.doc['diff']['against']}: "
                               f"{(gone or {}).get('verb') or ''} {(gone or {}).get('preview') or (gone or {}).get('text') or ''}"))
            return
        if item["kind"] == "manual" or item["kind"] == "export":
            first = f"#{item['seq']} {item['kind']} [{item['state']}] {item.get('text') or ''}"
        else:
            first = (f"#{item['seq']} {item['kind']} {item.get('verb')} on {item.get('preview') or item.get('target')}"
                     f" via {item.get('connector_kind')}:{item.get('connector') or '-'} · "
                     f"{'reversible' if item['reversible'] else 'irreversible'}"
                     f"{' · raw secret needed' if item['needs_raw'] else ''} · {item['state']}"
                     f"{' · ' + item['verdict'] if item.get('verdict') else ''}")
        changed = ((self.doc.get("diff") or {}).get("changed") or {}).get(item["idempotency_key"])
        lines = [first]
        if changed:
            lines.append(f"changed since plan {self.doc['diff']['against']}: {', '.join(changed)}")
        lines += [x for x in (item.get("note"), item.get("evidence")) if x]
        out = Text()
        for n, line in enumerate(lines[:3]):
            if n:
                out.append("\n")
            out.append_text(literal(line, 400))
        box.update(out)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table_id = event.data_table.id
        key = event.row_key.value if event.row_key is not None else None
        if table_id == "plans" and key is not None:
            pid = int(key)
            if pid != self.plan_id:
                self.plan_id = pid
                self.load_plan(pid)
        elif table_id == "playbooks" and key is not None:
            self.pb_id = key
            pb = (self._pbs or {}).get(key)
            if pb is not None and event.data_table.has_focus:
                self.query_one("#detail", Static).update(
                    literal(f"{pb.title} [{pb.incident.get('name', '')}] · P plans it", 400))
        elif table_id == "items":
            self._show_detail()

    # -- plan ----------------------------------------------------------------------------------------------
    def action_plan(self) -> None:
        from tui.screens.modals import InputsModal

        if self._refuse("plan"):
            return
        pb = (self._pbs or {}).get(self.pb_id or "")
        if pb is None:
            self.notify("highlight a playbook first", severity="warning")
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.make_plan(pb.id, values)

        self.app.push_screen(InputsModal(pb.id, pb.title, pb.inputs), done)

    @work(thread=True, group="act", exit_on_error=False)
    def make_plan(self, playbook_id: str, inputs: dict[str, str]) -> None:
        from playbooks import engine

        pb = self._playbooks()[playbook_id]
        try:
            pid = self.read(lambda c: engine.make_plan(c, pb, inputs))
        except CaseError as e:
            self.app.call_from_thread(self.notify, clean(e, 400), severity="error")
            return
        self.app.call_from_thread(self.notify, f"plan {pid} made from {playbook_id}: review it, then a to approve")
        self.app.call_from_thread(self.load, pid)

    # -- approve -------------------------------------------------------------------------------------------
    def action_approve(self) -> None:
        from casefile.audit import default_analyst
        from tui.screens.modals import ApprovalModal

        if self._refuse("approve"):
            return
        doc = self.doc
        if doc is None:
            self.notify("no plan selected", severity="warning")
            return
        if doc.get("changed"):
            self.notify(f"plan {doc['plan']} changed since it was made: plan it again", severity="error")
            return
        if doc["approved"]:
            self.notify(f"plan {doc['plan']} is already approved by {clean(doc['approved_by'])}")
            return

        def done(approver: str | None) -> None:
            if approver:
                self.approve(doc["plan"], approver, doc["hash"])

        approver = self.stanch.analyst or default_analyst()
        self.app.push_screen(ApprovalModal(doc, self.case_path, approver), done)

    @work(thread=True, group="act", exit_on_error=False)
    def approve(self, pid: int, approver: str, expected_hash: str) -> None:
        try:
            h = self.read(lambda c: plans.approve(c, pid, approver, expected_hash))
        except CaseError as e:
            self.app.call_from_thread(self.notify, clean(e, 400), severity="error")
            return
        self.app.call_from_thread(self.notify, f"plan {pid} approved by {clean(approver)} (hash {h[:16]})")
        self.app.call_from_thread(self.load, pid)

    # -- apply / resume / verify ---------------------------------------------------------------------------
    def action_apply(self) -> None:
        self._start_run("apply")

    def action_resume(self) -> None:
        self._start_run("resume")

    def _start_run(self, how: str) -> None:
        from tui.screens.modals import SecretsModal

        if self._refuse(how):
            return
        doc = self.doc
        if doc is None:
            self.notify("no plan selected", severity="warning")
            return
        if self.running is not None:
            self.notify(f"plan {self.running} is running; wait for it", severity="warning")
            return
        if not doc["approved"] or doc.get("changed"):
            self.notify(f"plan {doc['plan']} is not approved (or changed since): press a to review and approve",
                        severity="error")
            return
        flying = doc["states"].get("in-flight", 0)
        if how == "resume" and not flying:
            self.notify(f"plan {doc['plan']}: nothing was in flight; resume sends what is pending or failed")
        needs = needs_raw(doc, ("pending", "in-flight", "failed"))
        if needs:
            self.app.push_screen(SecretsModal(needs, purpose=f"{how} plan {doc['plan']}"),
                                 lambda got: self._go(doc["plan"], got, flying) if got is not None else None)
        else:
            self._go(doc["plan"], {}, flying)

    def _go(self, pid: int, secrets: dict[str, str], flying: int) -> None:
        self.running = pid
        if flying:
            self.notify(f"resuming plan {pid}: {flying} item(s) in flight at the interruption are probed first; "
                        "proven dead → done without resending", timeout=8)
        self.query_one("#progress", Static).update(Text(f"applying plan {pid}…", style="bold"))
        self.run_apply(pid, secrets)

    def _progress(self, case: Case, pid: int) -> Callable[[dict[str, int]], None]:
        """The engine's progress callback (called in the worker thread): at most 5 views a second."""
        from playbooks import engine

        last = [0.0]

        def progress(_states: dict[str, int]) -> None:
            now = time.monotonic()
            if now - last[0] < 0.2:
                return
            last[0] = now
            self.app.call_from_thread(self.show_live, engine.status(case, pid))

        return progress

    # An explicit description: Textual would otherwise describe the worker by the repr of its arguments (secrets).
    @work(thread=True, group="run", description="apply a plan", exit_on_error=False)
    def run_apply(self, pid: int, secrets: dict[str, str]) -> None:
        from playbooks import engine

        try:
            with self.case() as case:
                mark = case.conn.execute("SELECT coalesce(max(rowid), 0) FROM journal").fetchone()[0]
                opts = engine.RunOptions(progress=self._progress(case, pid), read_only=self.read_only)
                engine.apply(case, pid, secrets, opts)
                resumed = [r[0] for r in case.conn.execute(
                    "SELECT state FROM journal WHERE plan_id = ? AND phase = 'resume' AND rowid > ?", (pid, mark))]
                view = plan_view(case, pid)
        except Exception as e:  # the engine's, the keyring's or a connector's one-line error
            self.app.call_from_thread(self._run_failed, pid, f"apply plan {pid}: {clean(e, 400)}")
            return
        finally:
            secrets.clear()
        if resumed:
            dead = resumed.count("done")
            self.app.call_from_thread(
                self.notify, f"resume probed {len(resumed)} in-flight item(s): {dead} proven dead (not resent), "
                f"{resumed.count('pending')} sent again, {resumed.count('failed')} left for a person")
        self.app.call_from_thread(self._run_done, view)

    def _run_failed(self, pid: int, message: str) -> None:
        self.running = None
        self.notify(message, severity="error", timeout=10)
        self.load(pid)

    def _run_done(self, view: dict[str, Any]) -> None:
        self.running = None
        st = view["states"]
        left = sum(n for s, n in st.items() if s not in ("verified", "done", "skipped"))
        self.notify(f"plan {view['plan']}: " + ", ".join(f"{n} {s}" for s, n in sorted(st.items()))
                    + ("" if left == 0 else f" ({left} still open)"),
                    severity="information" if left == 0 else "warning")
        self.load(view["plan"])

    def action_verify(self) -> None:
        from tui.screens.modals import SecretsModal

        if self._refuse("verify"):
            return
        doc = self.doc
        if doc is None:
            self.notify("no plan selected", severity="warning")
            return
        if self.running is not None:
            self.notify(f"plan {self.running} is running; wait for it", severity="warning")
            return
        needs = needs_raw(doc, ("done", "verified"))
        if needs:
            self.app.push_screen(SecretsModal(needs, purpose=f"verify plan {doc['plan']}", optional=True),
                                 lambda got: self._verify(doc["plan"], got) if got is not None else None)
        else:
            self._verify(doc["plan"], {})

    def _verify(self, pid: int, secrets: dict[str, str]) -> None:
        self.running = pid
        self.query_one("#progress", Static).update(Text(f"verifying plan {pid}…", style="bold"))
        self.run_verify(pid, secrets)

    @work(thread=True, group="run", description="verify a plan", exit_on_error=False)
    def run_verify(self, pid: int, secrets: dict[str, str]) -> None:
        from playbooks import engine

        try:
            with self.case() as case:
                engine.verify(case, pid, secrets)
                view = plan_view(case, pid)
        except Exception as e:  # a connector's or the keyring's one-line error
            self.app.call_from_thread(self._run_failed, pid, f"verify plan {pid}: {clean(e, 400)}")
            return
        finally:
            secrets.clear()
        self.app.call_from_thread(self._run_done, view)

    # -- tick ----------------------------------------------------------------------------------------------
    def action_tick(self) -> None:
        from tui.screens.modals import NoteModal

        if self._refuse("tick"):
            return
        table: DataTable[Any] = self.query_one("#items", DataTable)
        if self.doc is None or not table.row_count:
            self.notify("no plan selected", severity="warning")
            return
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        item = next((i for i in self.doc["items"] if str(i["seq"]) == key), None)
        if item is None or item["kind"] != "manual":
            self.notify("highlight a manual item to tick it", severity="warning")
            return
        pid, seq = self.doc["plan"], item["seq"]

        def done(note: str | None) -> None:
            if note:
                self.tick(pid, seq, note)

        self.app.push_screen(NoteModal(f"Tick item {seq} of plan {pid}", item.get("text") or ""), done)

    @work(thread=True, group="act", exit_on_error=False)
    def tick(self, pid: int, seq: int, note: str) -> None:
        from playbooks import engine

        try:
            self.read(lambda c: engine.tick(c, pid, seq, note))
        except CaseError as e:
            self.app.call_from_thread(self.notify, clean(e, 400), severity="error")
            return
        self.app.call_from_thread(self.notify, f"plan {pid} item {seq} ticked")
        self.app.call_from_thread(self.load, pid)
