"""Findings: the last run's findings grouped by severity and rule, with their OWASP NHI Top 10, NIST CSF 2.0 and
MITRE ATT&CK ids, and the evidence events of the highlighted finding shown literally.

Keys: `r` runs the rules (a new audited run; not offered read-only), `e` moves to the evidence, `enter` on an
evidence row opens it in the timeline, `b` opens the blast radius of the finding's subject. The evidence
lookup and its table are shared with the blast radius screen (`event_rows`, `EventTable`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode
from textual.worker import get_current_worker

from casefile.case import Case
from casefile.timeutil import to_micros
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen
from tui.screens.credentials import credential_name, primary_key, short_time

#: Most severe first.
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
#: ANSI colours, so 16-colour terminals show them too.
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}
EVENT_COLUMNS = ("id", "time", "vendor", "action", "outcome", "principal", "client", "src_ip", "method", "resource",
                 "status")


def severity_rank(severity: str | None) -> int:
    """0 for critical … 4 for info; 5 for none."""
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def worst(severities: Iterable[str | None]) -> str | None:
    best = min((severity_rank(s) for s in severities), default=len(SEVERITY_ORDER))
    return SEVERITY_ORDER[best] if best < len(SEVERITY_ORDER) else None


def severity_badge(severity: str | None) -> Text:
    if not severity:
        return Text("")
    return Text(f" {severity}", style=SEVERITY_STYLE.get(severity, ""))


def event_rows(case: Case, ids: Iterable[str], *, credentials: Iterable[int] = (),
               span: tuple[str | None, str | None] | None = None) -> list[dict[str, Any]]:
    """The events with these ids, in the order given. Events are indexed by time and credential, not by id, so
    the hints narrow the lookup: `span` (first, last: the events lie in it) and `credentials` (the events used
    or minted one of them). Ids neither hint finds are looked up by a scan (slow on a large case; a worker)."""
    want = list(dict.fromkeys(i for i in ids if i))
    found: dict[str, dict[str, Any]] = {}
    cols = ", ".join(EVENT_COLUMNS)
    c = case.conn

    def take(sql: str, args: list[Any]) -> None:
        for r in c.execute(sql, args):
            found[r[0]] = dict(zip(EVENT_COLUMNS, r, strict=True))

    def missing() -> list[str]:
        return [i for i in want if i not in found]

    if want and span and span[0] and span[1]:
        try:
            lo, hi = to_micros(span[0]), to_micros(span[1])
        except ValueError:  # an unreadable time: the other hints, then the scan, find them
            pass
        else:
            take(f"SELECT {cols} FROM events WHERE ts BETWEEN ? AND ? AND id IN ({_qs(want)})", [lo, hi, *want])
    cids = list(dict.fromkeys(credentials))
    if missing() and cids:
        for chunk in _chunks(cids):
            rest = missing()
            if not rest:
                break
            take(f"SELECT {cols} FROM events WHERE credential_id IN ({_qs(chunk)}) AND id IN ({_qs(rest)})",
                 [*chunk, *rest])
            rest = missing()
            if rest:
                take(f"SELECT {cols} FROM events WHERE subject_credential_id IN ({_qs(chunk)}) AND id IN"
                     f" ({_qs(rest)})", [*chunk, *rest])
    rest = missing()
    if rest:
        take(f"SELECT {cols} FROM events WHERE id IN ({_qs(rest)})", rest)
    return [found[i] for i in want if i in found]


def _qs(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: list[Any], size: int = 400) -> Iterable[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


class EventTable(DataTable[Any]):
    """Proving or evidence events, every value literal; `enter` posts RowSelected with the event id as key."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for label in ("time", "action", "address", "resource", "principal", "outcome"):
            self.add_column(label, key=label)

    def show(self, rows: list[dict[str, Any]]) -> None:
        self.clear()
        self._times = {e["id"]: e["time"] for e in rows}
        for e in rows:
            resource = " ".join(x for x in (e.get("method"), e.get("resource")) if x)
            self.add_row(literal(short_time(e["time"])), literal(e["action"], 14), literal(e["src_ip"] or "", 15),
                         literal(resource, 60), literal(e["principal"] or e["client"] or "", 26),
                         literal(e["outcome"] or "", 8), key=e["id"])

    def target(self, eid: str) -> dict[str, Any]:
        """What the timeline needs to show event `eid` (its time makes finding it one index lookup)."""
        return {"query": "", "event": eid, "time": getattr(self, "_times", {}).get(eid)}

    def event_id(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value) if row_key.value is not None else None


def load_findings(case: Case) -> dict[str, Any] | None:
    """The last run (casefile.findings.latest) with the key and name of every credential a finding is about."""
    from casefile import findings

    doc = findings.latest(case)
    if doc is None:
        return None
    cids = sorted({int(s.split(":", 1)[1]) for f in doc["findings"] if (s := f["subject"] or "").startswith(
        "credential:") and s.split(":", 1)[1].isdigit()})
    keys: dict[int, list[str]] = {}
    previews: dict[int, str | None] = {}
    for chunk in _chunks(cids):
        for key, cid in case.conn.execute(
                f"SELECT key, credential_id FROM credential_keys WHERE credential_id IN ({_qs(chunk)}) ORDER BY key",
                chunk):
            keys.setdefault(cid, []).append(key)
        previews.update(case.conn.execute(f"SELECT id, preview FROM credentials WHERE id IN ({_qs(chunk)})", chunk))
    doc["credentials"] = {cid: {"key": primary_key(keys.get(cid, [])) or str(cid),
                                "name": credential_name(keys.get(cid, []), previews.get(cid), cid)} for cid in cids}
    return doc


def subject_credential(subject: str | None) -> int | None:
    kind, _, rest = (subject or "").partition(":")
    return int(rest) if kind == "credential" and rest.isdigit() else None


class FindingsScreen(CaseScreen):
    NAME = "findings"
    TITLE = "findings"
    AUTO_FOCUS = "#findings"
    CSS = """
    #status { height: 1; padding: 0 1; color: $text-muted; }
    #findings { height: 1fr; overflow-x: hidden; }
    #detail { height: 12; border-top: solid $primary; }
    #finding { height: auto; max-height: 4; padding: 0 1; }
    #evidence { height: 1fr; }
    """
    BINDINGS = [
        Binding("r", "run_rules", "Run rules"),
        Binding("r", "refuse_run", "Run rules", show=False),
        Binding("e", "focus_evidence", "Evidence"),
        Binding("b", "blast", "Blast radius"),
        Binding("t", "timeline", "Timeline"),
        Binding("escape", "focus_tree", "Findings", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.doc: dict[str, Any] | None = None
        self._pending: Any = None

    @property
    def PALETTE(self) -> list[tuple[str, str, str]]:  # noqa: N802  (the name the app reads)
        out = [("evidence of the highlighted finding", "focus_evidence", "move to its evidence events"),
               ("blast radius of the finding's subject", "blast", "open the blast radius screen on it"),
               ("open the evidence in the timeline", "timeline", "the highlighted evidence event"),
               ("reload the findings", "reload", "read the last run again")]
        if not self.read_only:
            out.insert(0, ("run the finding rules", "run_rules", "a new audited run of every rule"))
        return out

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading findings…", id="status")
        tree: Tree[dict[str, Any]] = Tree("findings", id="findings")
        tree.show_root = False
        yield tree
        with Vertical(id="detail"):
            yield Static(id="finding")
            yield EventTable(id="evidence")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#findings", Tree).focus()
        self.action_reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_rules":
            return not self.read_only
        if action == "refuse_run":
            return self.read_only
        return True

    # -- loading -----------------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.query_one("#findings", Tree).loading = True
        self.load()

    @work(thread=True, exclusive=True, group="findings-load", exit_on_error=False)
    def load(self) -> None:
        doc = self.read(load_findings)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, doc)

    def action_run_rules(self) -> None:
        if self.read_only:
            self.action_refuse_run()
            return
        self.query_one("#findings", Tree).loading = True
        self.query_one("#status", Static).update("running every rule over the case…")
        self.run_rules()

    def action_refuse_run(self) -> None:
        self.notify("read-only: running the rules writes a findings run; reopen without --read-only",
                    severity="warning", markup=False)

    @work(thread=True, exclusive=True, group="findings-load", exit_on_error=False)
    def run_rules(self) -> None:
        import connectors  # noqa: F401  (registers the vendor rule folders)
        from casefile import findings

        try:
            with self.case() as c:
                findings.run(c)
                doc = load_findings(c)
        except Exception as e:  # a broken rule file must not take the console down; say what failed
            self.app.call_from_thread(self._failed, e)
            return
        self.app.call_from_thread(self._show, doc)

    def _failed(self, error: Exception) -> None:
        self.query_one("#findings", Tree).loading = False
        self.query_one("#status", Static).update(literal(f"the rules did not run: {error}", 200))
        self.notify(clean(f"the rules did not run: {error}", 200), severity="error", markup=False)

    def _show(self, doc: dict[str, Any] | None) -> None:
        self.doc = doc
        tree: Tree[dict[str, Any]] = self.query_one("#findings", Tree)
        tree.loading = False
        tree.clear()
        status = self.query_one("#status", Static)
        if doc is None:
            status.update("no findings run yet" + (": press r to run the rules" if not self.read_only else
                                                   " (read-only: run `stanch findings CASE` elsewhere)"))
            self._detail(None)
            return
        found = doc["findings"]
        by_sev: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for f in found:
            by_sev.setdefault(f["severity"], {}).setdefault(f["rule_id"], []).append(f)
        counts = ", ".join(f"{sum(len(v) for v in by_sev[s].values())} {s}" for s in SEVERITY_ORDER if s in by_sev)
        status.update(literal(f"findings run {doc['run']}: {len(found)} findings from {doc['rules']} rules"
                              + (f" ({counts})" if counts else ""), 200))
        first_rule: TreeNode[dict[str, Any]] | None = None
        for sev in sorted(by_sev, key=severity_rank):
            rules = by_sev[sev]
            sev_label = Text(sev.upper(), style=SEVERITY_STYLE.get(sev, "bold"))
            sev_label.append(f"  {sum(len(v) for v in rules.values())} findings, {len(rules)} rules", style="")
            sev_node = tree.root.add(sev_label, {"type": "severity", "severity": sev, "rules": rules}, expand=True)
            for rule_id, items in sorted(rules.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                head = items[0]
                label = Text.assemble(literal(rule_id, 44), f" ({len(items)})  ", _ids_text(head, 60, named=False))
                rule_node = sev_node.add(label, {"type": "rule", "rule": rule_id, "findings": items})
                if first_rule is None:
                    first_rule = rule_node
                for f in items:
                    rule_node.add_leaf(Text.assemble(literal(self._subject_name(f), 30), "  ",
                                                     literal(f["summary"], 90)), {"type": "finding", "finding": f})
        if not found:
            status.update(literal(f"run {doc['run']}: no findings from {doc['rules']} rules"))
        if first_rule is not None:
            first_rule.expand()
            self.call_after_refresh(tree.move_cursor, first_rule.children[0] if first_rule.children else first_rule)
        if self._pending is not None:
            target, self._pending = self._pending, None
            self.focus_on(target)

    def _subject_name(self, f: dict[str, Any]) -> str:
        cid = subject_credential(f["subject"])
        if cid is not None and self.doc is not None and cid in self.doc.get("credentials", {}):
            return f"{self.doc['credentials'][cid]['name']} (#{cid})"
        return f["subject"] or "-"

    # -- the detail pane ---------------------------------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[dict[str, Any]]) -> None:
        self._detail(event.node.data)

    def _detail(self, data: dict[str, Any] | None) -> None:
        box = self.query_one("#finding", Static)
        table = self.query_one("#evidence", EventTable)
        if data is None:
            box.update("")
            table.clear()
            return
        if data["type"] == "severity":
            rules = data["rules"]
            box.update(literal(f"{data['severity']}: " + ", ".join(f"{r} ({len(v)})" for r, v in rules.items()), 300))
            table.clear()
            return
        if data["type"] == "rule":
            f = data["findings"][0]
            text = Text.assemble(literal(f["rule_title"], 70, style="bold"), "  ",
                                 literal(f"{data['rule']} · {len(data['findings'])} findings · {f['rule_source']}", 80),
                                 "\n", _ids_text(f))
            box.update(text)
            table.clear()
            return
        f = data["finding"]
        text = Text.assemble(
            literal(f["rule_title"], 60, style="bold"), severity_badge(f["severity"]), "\n",
            literal(f"{self._subject_name(f)} · {f['count']} events · {short_time(f['first'])} → "
                    f"{short_time(f['last'])}", 200), "\n", _ids_text(f), "\n", literal(f["summary"], 300))
        box.update(text)
        table.clear()
        table.loading = True
        self.load_evidence(f)

    @work(thread=True, exclusive=True, group="findings-evidence", exit_on_error=False)
    def load_evidence(self, f: dict[str, Any]) -> None:
        cid = subject_credential(f["subject"])
        rows = self.read(lambda c: event_rows(c, f["evidence"], credentials=[cid] if cid is not None else [],
                                              span=(f["first"], f["last"])))
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._evidence, rows)

    def _evidence(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#evidence", EventTable)
        table.loading = False
        table.show(rows)

    # -- actions -----------------------------------------------------------------------------------------

    def highlighted_finding(self) -> dict[str, Any] | None:
        node = self.query_one("#findings", Tree).cursor_node
        if node is None or node.data is None or node.data["type"] != "finding":
            return None
        finding: dict[str, Any] = node.data["finding"]
        return finding

    def action_focus_evidence(self) -> None:
        self.query_one("#evidence", EventTable).focus()

    def action_focus_tree(self) -> None:
        self.query_one("#findings", Tree).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.stanch.open("timeline", self.query_one("#evidence", EventTable).target(str(event.row_key.value)))

    def action_timeline(self) -> None:
        table = self.query_one("#evidence", EventTable)
        eid = table.event_id()
        if eid is None:
            self.notify("no evidence event highlighted", severity="warning", markup=False)
            return
        self.stanch.open("timeline", table.target(eid))

    def action_blast(self) -> None:
        f = self.highlighted_finding()
        if f is None:
            self.notify("highlight a finding first", severity="warning", markup=False)
            return
        cid = subject_credential(f["subject"])
        if cid is not None and self.doc is not None:
            self.stanch.open("blast", self.doc["credentials"].get(cid, {}).get("key") or str(cid))
        elif (f["subject"] or "").startswith("principal:"):
            self.stanch.open("blast", f["subject"])
        else:
            self.notify(clean(f"the subject {f['subject'] or '-'} is not a credential or principal", 120),
                        severity="warning", markup=False)

    def focus_on(self, target: Any) -> None:
        """Highlight the first finding of rule `target`, or about subject `target` (`credential:12`)."""
        if self.doc is None:
            self._pending = target
            return
        want = clean(target)
        tree: Tree[dict[str, Any]] = self.query_one("#findings", Tree)
        for sev in tree.root.children:
            for rule in sev.children:
                for leaf in rule.children:
                    f = leaf.data["finding"] if leaf.data else {}
                    if want in (f.get("rule_id"), f.get("subject")):
                        rule.expand()
                        self.call_after_refresh(tree.move_cursor, leaf)
                        return
        self.notify(clean(f"no finding of rule or subject {want}", 120), severity="warning", markup=False)


def _ids_text(f: dict[str, Any], limit: int | None = None, named: bool = True) -> Text:
    """OWASP NHI, NIST CSF 2.0 and ATT&CK ids: `NHI3:2025 · DE.CM-01 · T1550.001` (named: with the framework)."""
    parts = [("OWASP", f.get("nhi") or []), ("CSF 2.0", f.get("csf") or []), ("ATT&CK", f.get("attack") or [])]
    text = " · ".join((f"{name} " if named else "") + " ".join(ids) for name, ids in parts if ids)
    text = text or "no framework ids"
    return literal(text, limit, style="italic")
