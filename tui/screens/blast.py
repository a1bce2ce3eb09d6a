"""Blast radius: from one seed, a tree of everything the compromise reaches (the credential → shared apps and
grants, downstream calls, objects and secrets read, minted credentials, exposed secrets) with counts and the
severity of the findings on each branch; a pane with the events that prove the highlighted node; and the
revocation set, where the responder deselects what must not be planned and plans the rest with a playbook.

The seed is a credential key, a credential number, `client:<issuer>:<id>`, `app:<name>` or `principal:<id>`
(`casefile.blast.resolve_seed`). Without one the screen offers the case's credentials, those with findings
first. Keys: `s` seed, `v` reach ⇄ revocation set, `space` select/deselect, `a` all/none, `p` plan (not
offered read-only), `e` proving events, `enter` on an event / `t` timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, OptionList, Static, TabbedContent, TabPane, Tree
from textual.widgets.option_list import Option
from textual.widgets.tree import TreeNode
from textual.worker import get_current_worker

from casefile.case import Case, CaseError
from tui.safe_text import clean, literal
from tui.screens.base import CaseScreen
from tui.screens.credentials import credential_name, credential_rows, primary_key, short_time, ttl_text
from tui.screens.findings import (
    SEVERITY_STYLE,
    EventTable,
    event_rows,
    severity_badge,
    severity_rank,
    subject_credential,
    worst,
)

#: Leaves shown under one branch; the rest are counted in a last leaf (`stanch blast --json` has them all).
BRANCH_AT_MOST = 200
#: Credentials offered as seeds when none is given.
SUGGEST_AT_MOST = 500
#: Events of a credential shown as proof that it was used.
FIRST_USES = 5
#: The playbook offered first when it is installed (the demo's incident).
PREFERRED_PLAYBOOK = "salesloft-drift-2025"

ROLE_WORDS = {"seed": "the seed", "same-secret": "the same secret (another system's view)",
              "parent": "minted the seed", "minted": "minted from the reach", "exposed": "exposed in data read"}


def compute_blast(case: Case, seed: str) -> dict[str, Any]:
    """The blast radius (`casefile.blast.blast`) and the last findings run, as severity by credential and by
    event (a node's severity is the worst finding about its credentials or resting on its events)."""
    import connectors  # noqa: F401  (revokers and object readers register on import)
    from casefile import findings
    from casefile.blast import blast

    doc = blast(case, seed)
    latest = findings.latest(case)
    cred_sev: dict[int, list[tuple[str, str]]] = {}
    event_sev: dict[str, str] = {}
    for f in (latest or {}).get("findings", []):
        cid = subject_credential(f["subject"])
        if cid is not None:
            cred_sev.setdefault(cid, []).append((f["severity"], f["rule_id"]))
        for e in f["evidence"]:
            if severity_rank(f["severity"]) < severity_rank(event_sev.get(e)):
                event_sev[e] = f["severity"]
    return {"doc": doc, "cred_findings": cred_sev, "event_sev": event_sev, "findings_ran": latest is not None}


def seed_suggestions(case: Case) -> list[dict[str, Any]]:
    """Every credential as a seed: those that findings are about first (worst, then most), then by last use."""
    from casefile import findings

    latest = findings.latest(case)
    about: dict[int, list[str]] = {}
    for f in (latest or {}).get("findings", []):
        cid = subject_credential(f["subject"])
        if cid is not None:
            about.setdefault(cid, []).append(f["severity"])
    out: list[dict[str, Any]] = []
    for order, r in enumerate(credential_rows(case)):
        sevs = about.get(r.id, [])
        out.append({"row": r, "findings": len(sevs), "worst": worst(sevs), "order": order})
    out.sort(key=lambda s: (s["findings"] == 0, severity_rank(s["worst"]), -s["findings"], s["order"]))
    return out[:SUGGEST_AT_MOST]


@dataclass(slots=True)
class RevocationRow:
    item: dict[str, Any]
    selected: bool
    plannable: bool  # app rows are a manual review; playbooks plan credentials

    def exclude_name(self) -> str:
        """What `make_plan(exclude=…)` is given when this item is deselected: its target, else a key."""
        i = self.item
        return str(i.get("target") or (i.get("keys") or [None])[0] or (i.get("credentials") or ["?"])[0])


class PlaybookPicker(ModalScreen[str | None]):
    """Choose the playbook that plans the selected revocation set (escape cancels)."""

    CSS = """
    PlaybookPicker { align: center middle; }
    #picker { width: 76; height: auto; max-height: 20; border: round $primary; background: $surface;
              padding: 0 1; }
    #picker OptionList { height: auto; max-height: 12; }
    #picker-title, #picker-hint { height: auto; }
    #picker-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, choices: list[tuple[str, str, bool]], default: str | None, note: str) -> None:
        super().__init__()
        self.choices = choices
        self.default = default
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static(literal(self.note, 150), id="picker-title")
            options = []
            for pid, title, uses_set in self.choices:
                prompt = Text.assemble(literal(pid, 30, style="bold"), "  ", literal(title, 60))
                if uses_set:
                    prompt.append("  (revocation set)", style="italic")
                options.append(Option(prompt, id=pid))
            yield OptionList(*options, id="playbooks")
            yield Static("enter: plan with it (nothing is sent until a plan is approved) · escape: cancel",
                         id="picker-hint")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ids = [c[0] for c in self.choices]
        ol.highlighted = ids.index(self.default) if self.default in ids else 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class BlastScreen(CaseScreen):
    NAME = "blast"
    TITLE = "blast radius"
    AUTO_FOCUS = ""
    CSS = """
    #seed { height: 3; display: none; }
    #seed.shown { display: block; }
    #summary { height: auto; max-height: 2; padding: 0 1; }
    #suggest { height: 1fr; display: none; }
    #suggest.shown { display: block; }
    #views { height: 1fr; }
    #views.hidden { display: none; }
    #reach { height: 1fr; overflow-x: hidden; }
    #proof-pane { height: 12; border-top: solid $primary; }
    #proof-head { height: auto; max-height: 4; padding: 0 1; }
    #proof { height: 1fr; }
    #revocation { height: 1fr; }
    #revocation-hint { height: 1; padding: 0 1; color: $text-muted; }
    TabPane { padding: 0; }
    """
    BINDINGS = [
        Binding("s", "seed", "Seed"),
        Binding("v", "switch_view", "Reach/revoke"),
        Binding("space", "toggle_item", "Select", key_display="space"),
        Binding("a", "toggle_all", "All/none"),
        Binding("p", "plan", "Plan"),
        Binding("p", "refuse_plan", "Plan", show=False),
        Binding("e", "focus_proof", "Proof"),
        Binding("t", "timeline", "Timeline"),
        Binding("escape", "back", "Back", show=False),
        Binding("down", "focus_suggest", "Credentials", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.seed: str | None = None
        self.result: dict[str, Any] | None = None
        self.revocation: list[RevocationRow] = []
        self.suggestions: list[dict[str, Any]] = []
        self._ready = False

    @property
    def PALETTE(self) -> list[tuple[str, str, str]]:  # noqa: N802  (the name the app reads)
        out = [("blast radius of another seed", "seed", "a credential key, client:…, app:…, principal:…"),
               ("switch between the reach and the revocation set", "switch_view", "the two views of the blast"),
               ("select or deselect a revocation item", "toggle_item", "deselected items are left out of the plan"),
               ("select all or none of the revocation set", "toggle_all", "flip every item"),
               ("proving events of the highlighted node", "focus_proof", "the events that show it"),
               ("open in the timeline", "timeline", "the highlighted event, or the credential's events")]
        if not self.read_only:
            out.insert(4, ("plan the revocation set with a playbook", "plan",
                           "choose a playbook; the plan leaves out what you deselected"))
        return out

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="seed: a credential key, a credential number, client:<issuer>:<id>, app:…, "
                                "principal:…", id="seed")
        yield Static(id="summary")
        yield DataTable(id="suggest", cursor_type="row", zebra_stripes=True)
        with TabbedContent(id="views"):
            with TabPane("Reach", id="reach-tab"):
                tree: Tree[dict[str, Any]] = Tree("blast radius", id="reach")
                yield tree
                with Vertical(id="proof-pane"):
                    yield Static(id="proof-head")
                    yield EventTable(id="proof")
            with TabPane("Revocation set", id="revocation-tab"):
                yield DataTable(id="revocation", cursor_type="row", zebra_stripes=True)
                yield Static(id="revocation-hint")
        yield Footer()

    def on_mount(self) -> None:
        table: DataTable[Any] = self.query_one("#revocation", DataTable)
        for label in ("sel", "kind", "credential", "connector", "verb", "raw", "why"):
            table.add_column(label, key=label)
        suggest: DataTable[Any] = self.query_one("#suggest", DataTable)
        for label in ("credential", "kind", "findings", "principal", "client", "last used"):
            suggest.add_column(label, key=label)
        self._ready = True
        if self.seed:
            self.load_seed(self.seed)
        else:
            self.show_picker()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "plan":
            return not self.read_only and self.result is not None
        if action == "refuse_plan":
            return self.read_only
        if action in ("toggle_item", "toggle_all"):
            return self.result is not None and self._view() == "revocation-tab"
        if action in ("switch_view", "focus_proof"):
            return self.result is not None
        if action == "focus_suggest":
            box = self.query("#seed")
            return bool(box) and box.first().has_focus and self.query_one("#suggest").has_class("shown")
        return True

    def _view(self) -> str:
        try:
            return self.query_one("#views", TabbedContent).active
        except NoMatches:  # asked for the footer before the screen is composed
            return ""

    # -- seeds ------------------------------------------------------------------------------------------

    def focus_on(self, target: Any) -> None:
        """Show the blast radius of `target` (a seed: a credential key, client:…, app:…, principal:…)."""
        if target is None or not str(target).strip():
            return
        self.seed = str(target).strip()
        if self._ready:
            self.load_seed(self.seed)

    def show_picker(self) -> None:
        box = self.query_one("#seed", Input)
        box.add_class("shown")
        self.query_one("#views").add_class("hidden")
        self.query_one("#suggest").add_class("shown")
        self.query_one("#summary", Static).update("no seed: type one, or pick a credential (findings first; ↓)")
        self.query_one("#suggest", DataTable).loading = True
        self.load_suggestions()
        box.focus()

    @work(thread=True, exclusive=True, group="blast-suggest", exit_on_error=False)
    def load_suggestions(self) -> None:
        rows = self.read(seed_suggestions)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._suggested, rows)

    def _suggested(self, rows: list[dict[str, Any]]) -> None:
        self.suggestions = rows
        table: DataTable[Any] = self.query_one("#suggest", DataTable)
        table.loading = False
        table.clear()
        for s in rows:
            r = s["row"]
            found = Text(f"{s['findings']} ({s['worst']})", style=SEVERITY_STYLE.get(s["worst"] or "", "")) \
                if s["findings"] else Text("-")
            table.add_row(literal(r.name, 24), literal(r.kind, 12), found, literal(r.principal, 26),
                          literal(r.client, 20), literal(r.last_used), key=str(r.id))

    def action_seed(self) -> None:
        box = self.query_one("#seed", Input)
        box.add_class("shown")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "seed":
            return
        event.stop()
        if not event.value.strip():
            self.notify("type a seed: a credential key, client:<issuer>:<id>, app:<name> or principal:<id>",
                        severity="warning", markup=False)
            return
        self.focus_on(event.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        table_id = event.data_table.id
        if table_id == "suggest":
            event.stop()
            row = event.cursor_row
            if 0 <= row < len(self.suggestions):
                self.focus_on(self.suggestions[row]["row"].key)
        elif table_id == "proof":
            event.stop()
            if event.row_key.value is not None:
                self.stanch.open("timeline", self.query_one("#proof", EventTable).target(str(event.row_key.value)))
        elif table_id == "revocation":
            event.stop()
            self.action_toggle_item()

    # -- the blast radius -------------------------------------------------------------------------------

    def load_seed(self, seed: str) -> None:
        self.query_one("#seed", Input).remove_class("shown")
        self.query_one("#suggest").remove_class("shown")
        self.query_one("#views").remove_class("hidden")
        self.query_one("#views", TabbedContent).active = "reach-tab"
        self.query_one("#summary", Static).update(Text.assemble("blast radius of ", literal(seed, 70), " …"))
        tree = self.query_one("#reach", Tree)
        tree.loading = True
        tree.focus()
        self.run_blast(seed)

    @work(thread=True, exclusive=True, group="blast-run", exit_on_error=False)
    def run_blast(self, seed: str) -> None:
        try:
            result = self.read(lambda c: compute_blast(c, seed))
        except CaseError as e:
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(self._no_blast, seed, str(e))
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, seed, result)

    def _no_blast(self, seed: str, error: str) -> None:
        self.result = None
        self.query_one("#reach", Tree).loading = False
        self.query_one("#summary", Static).update(literal(error, 300))
        self.notify(clean(error, 200), severity="error", markup=False)
        box = self.query_one("#seed", Input)
        box.value = seed
        box.add_class("shown")
        box.focus()
        self.refresh_bindings()

    def _show(self, seed: str, result: dict[str, Any]) -> None:
        self.result = result
        doc = result["doc"]
        tree: Tree[dict[str, Any]] = self.query_one("#reach", Tree)
        tree.loading = False
        self._summary()
        tree.clear()
        self._build_tree(tree, result)
        tree.root.expand()
        tree.move_cursor(tree.root)
        self._detail(tree.root)
        self.revocation = [RevocationRow(i, True, i["kind"] != "app") for i in doc["revocation_set"]["items"]]
        self._fill_revocation()
        self.refresh_bindings()

    def _summary(self) -> None:
        assert self.result is not None
        doc = self.result["doc"]
        rt = doc["runtime"]["totals"]
        chosen = sum(1 for r in self.revocation if r.plannable and r.selected)
        plannable = sum(1 for r in self.revocation if r.plannable)
        line = Text(f"{_n(len(doc['credentials']), 'credential')} · {_n(rt['events'], 'call')} · "
                    f"{_n(rt['ips'], 'address', 'addresses')} · "
                    f"revoking {chosen}/{plannable}")
        if not self.result["findings_ran"]:
            line.append(" · findings not run", style="italic")
        self.query_one("#summary", Static).update(line)

    def _build_tree(self, tree: Tree[dict[str, Any]], result: dict[str, Any]) -> None:
        doc = result["doc"]
        creds = doc["credentials"]
        by_id = {c["id"]: c for c in creds}
        reach = [c["id"] for c in creds if c["role"] != "parent"]
        edges: dict[int, list[dict[str, Any]]] = {}
        for e in doc["lineage"]:
            edges.setdefault(e["child"], []).append(e)
            if e.get("parent") is not None:
                edges.setdefault(e["parent"], []).append(e)
        reads: dict[int, list[str]] = {}
        for x in doc["exposure"]:
            reads.setdefault(x["credential"], []).extend(x["read_by"])
        seed_ids = [c["id"] for c in creds if c["role"] in ("seed", "same-secret")]
        root = tree.root
        root_sev: list[str | None] = []

        def cred_data(c: dict[str, Any]) -> dict[str, Any]:
            lineage = edges.get(c["id"], [])
            events = [e["event"] for e in lineage if e["child"] == c["id"]] + reads.get(c["id"], [])
            hints = [c["id"], *(e["parent"] for e in lineage if e.get("parent") is not None)]
            if c["role"] == "exposed":
                hints += reach
            return {"type": "credential", "cred": c, "events": events, "hints": hints, "uses": c["id"],
                    "key": primary_key(c["keys"]), "sev": self._cred_sev(c["id"]), "edges": lineage}

        def add_group(label: str, nodes: list[tuple[Text, dict[str, Any]]], data: dict[str, Any]) -> None:
            sev = worst(d.get("sev") for _, d in nodes)
            text = Text.assemble(literal(label), severity_badge(sev))
            data.setdefault("sev", sev)
            group = root.add(text, data)
            for n, (leaf_label, leaf_data) in enumerate(nodes):
                if n == BRANCH_AT_MOST:
                    group.add_leaf(Text(f"… {len(nodes) - BRANCH_AT_MOST:,} more (stanch blast CASE SEED --json)",
                                        style="italic"), {"type": "more"})
                    break
                leaf_data["sev"] = leaf_data.get("sev")
                group.add_leaf(Text.assemble(leaf_label, severity_badge(leaf_data["sev"])), leaf_data)
            root_sev.append(sev)

        # The seed itself: the root when it is one credential, else a branch.
        seeds = [by_id[i] for i in seed_ids if i in by_id]
        if len(seeds) == 1:
            root.data = cred_data(seeds[0])
            root_sev.append(root.data["sev"])
        else:
            root.data = {"type": "seed", "sev": None}
            add_group(f"seed credentials ({len(seeds)})", [(self._cred_label(c), cred_data(c)) for c in seeds],
                      {"type": "group", "text": "the credentials the seed names, and the same secret seen by "
                                                "another system"})
        parents = [c for c in creds if c["role"] == "parent"]
        if parents:
            add_group(f"minted by ({len(parents)})", [(self._cred_label(c), cred_data(c)) for c in parents],
                      {"type": "group", "text": "credentials that minted the seed: whoever holds them can mint more"})
        st = doc["static"]
        apps: list[tuple[Text, dict[str, Any]]] = []
        for a in st["apps"]:
            sev = worst(self._cred_sev(i) for i in a["credentials_in_reach"])
            label = Text.assemble("app ", literal(a["client"], 30), f" · {len(a['credentials_in_reach'])} in reach"
                                  f" · {a['other_credentials']} others · scopes ",
                                  literal(" ".join(a["scopes"]) or "-", 40))
            apps.append((label, {"type": "app", "app": a, "sev": sev, "events": []}))
        for t in st["tenants"]:
            apps.append((Text.assemble("tenant ", literal(t, 50)), {"type": "tenant", "tenant": t, "events": []}))
        for p in st["principals"]:
            apps.append((Text.assemble("principal ", literal(p["principal"], 50),
                                       f" · {_n(len(p['credentials']), 'credential')}"),
                         {"type": "principal", "principal": p, "events": [],
                          "sev": worst(self._cred_sev(i) for i in p["credentials"])}))
        bindings = ", ".join(f"{n} {k}" for k, n in sorted(st["bindings"].items()))
        add_group(f"shared apps and grants ({len(st['apps'])} apps · {len(st['tenants'])} tenants · "
                  f"{len(st['principals'])} principals)", apps,
                  {"type": "group", "text": f"apps (clients), tenants and principals in reach; sender binding: "
                                            f"{bindings or '-'}"})
        rt = doc["runtime"]
        calls = []
        for g in rt["calls"]:
            label = Text.assemble(f"{g['count']:>6,} ", literal(g["method"] or g["action"], 8), " ",
                                  literal(g["resource"], 60))
            if g["failures"]:
                label.append(f" ({g['failures']} failed)")
            calls.append((label, {"type": "calls", "group": g, "events": g["events"], "hints": reach,
                                  "span": (g["first"], g["last"]), "sev": self._events_sev(g["events"])}))
        t = rt["totals"]
        add_group(f"downstream calls ({t['events']:,} events · {t['failures']:,} failed · {t['ips']} addresses · "
                  f"{t['user_agents']} user agents)", calls,
                  {"type": "group", "text": "calls made with the credentials in reach, by resource pattern"})
        for title, key, name, what in (("objects read", "objects_read", "object", "object"),
                                       ("secrets read", "secrets_read", "path", "secret"),
                                       ("exports", "exports", "resource", "export")):
            if not rt[key] and key == "exports":
                continue
            rows = [(Text.assemble(f"{g['count']:>6,} ", literal(g[name], 70)),
                     {"type": what, "group": g, "name": g[name], "events": g["events"], "hints": reach,
                      "span": (g["first"], g["last"]), "sev": self._events_sev(g["events"])}) for g in rt[key]]
            add_group(f"{title} ({len(rt[key])})", rows, {"type": "group", "text": f"{title} by the reach"})
        minted = [c for c in creds if c["role"] == "minted"]
        add_group(f"minted credentials ({len(minted)})", [(self._cred_label(c), cred_data(c)) for c in minted],
                  {"type": "group", "text": "credentials minted from the reach (refreshes, new keys), to the blast "
                                            "depth"})
        exposed = []
        for x in doc["exposure"]:
            c = by_id.get(x["credential"])
            where = x["found_in"]
            label = Text.assemble(literal(c["kind"] if c else "?", 12), " ",
                                  literal(x["preview"] or (credential_name(c["keys"], None, c["id"]) if c else "?"), 24),
                                  " in ", literal(f"{where['object_type'] or ''} {where['object'] or ''}".strip()
                                                  or "an event payload", 40),
                                  " ", literal(where["field"] or "", 20))
            data = cred_data(c) if c else {"type": "exposure", "events": x["read_by"], "hints": reach}
            data["exposure"] = x
            exposed.append((label, data))
        add_group(f"exposed secrets ({len(exposed)})", exposed,
                  {"type": "group", "text": "credentials found in data the reach read: rotate them"})
        seed_doc = doc["seed"]
        root.set_label(Text.assemble(f"{seed_doc['kind']} ", literal(seed_doc["input"], 40, style="bold"),
                                     severity_badge(worst(root_sev))))

    def _cred_sev(self, cid: int) -> str | None:
        assert self.result is not None
        return worst(s for s, _ in self.result["cred_findings"].get(cid, []))

    def _events_sev(self, events: list[str]) -> str | None:
        assert self.result is not None
        return worst(self.result["event_sev"].get(e) for e in events)

    def _cred_label(self, c: dict[str, Any]) -> Text:
        label = Text.assemble(literal(c["kind"] or "?", 12), " ", literal(credential_name(c["keys"], c["preview"],
                                                                                          c["id"]), 32))
        label.append(f" · ttl {ttl_text(c['ttl_seconds'])}")
        if c["status"] and c["status"] != "unknown":
            label.append_text(literal(f" · {c['status']}"))
        if c["principal"]:
            label.append_text(literal(f" · {c['principal']}", 32))
        return label

    # -- the proof pane ---------------------------------------------------------------------------------

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[dict[str, Any]]) -> None:
        if event.node.tree.id != "reach":
            return
        self._detail(event.node)

    def _detail(self, node: TreeNode[dict[str, Any]]) -> None:
        data = node.data or {}
        head = self.query_one("#proof-head", Static)
        table = self.query_one("#proof", EventTable)
        head.update(self._describe(data))
        table.clear()
        if data.get("events") or data.get("uses") is not None:
            table.loading = True
            self.load_proof(data)
        else:
            table.loading = False

    def _describe(self, data: dict[str, Any]) -> Text:
        kind = data.get("type")
        if kind == "credential":
            c = data["cred"]
            text = Text.assemble(literal(f"{c['kind']} #{c['id']} · {ROLE_WORDS.get(c['role'], c['role'])}",
                                         style="bold"), severity_badge(data.get("sev")), " · ",
                                 literal(primary_key(c["keys"]) or "", 80), "\n",
                                 literal(f"principal {c['principal'] or '-'} · client {c['client'] or '-'} · issuer "
                                         f"{c['issuer'] or '-'}", 160), "\n",
                                 literal(f"ttl {ttl_text(c['ttl_seconds'])} · binding {c['binding']} · {c['status']} · "
                                         f"last used {short_time(c['last_used'])}", 160))
            rules = sorted({r for _, r in (self.result or {}).get("cred_findings", {}).get(c["id"], [])})
            extra = []
            if data.get("exposure"):
                w = data["exposure"]["found_in"]
                extra.append(f"found in {w['object_type'] or ''} {w['object'] or ''} {w['field'] or ''}"
                             f" ({data['exposure']['matched_by']})")
            elif c.get("via"):
                extra.append(f"via {c['via']}")
            if rules:
                extra.append("findings: " + ", ".join(rules))
            if extra:
                text.append("\n")
                text.append_text(literal(" · ".join(extra), 240))
            return text
        if kind == "app":
            a = data["app"]
            return Text.assemble(literal(f"app {a['client']}", 60, style="bold"), "\n",
                                 literal(f"issuers {', '.join(a['issuers']) or '-'} · principals "
                                         f"{', '.join(a['principals']) or '-'} · scopes {' '.join(a['scopes']) or '-'}",
                                         240), "\n",
                                 literal(f"{len(a['credentials_in_reach'])} credentials in reach; "
                                         f"{a['other_credentials']} other credentials of this client (e.g. "
                                         f"{', '.join('#' + str(i) for i in a['other_sample']) or '-'})", 240))
        if kind in ("calls", "object", "secret", "export"):
            g = data["group"]
            name = data.get("name") or f"{g.get('method') or ''} {g.get('resource') or ''}".strip()
            lines = Text.assemble(literal(name, 100, style="bold"), severity_badge(data.get("sev")), "\n",
                                  literal(f"{g['count']:,} events · {g['failures']} failed · first "
                                          f"{short_time(g['first'])} · last {short_time(g['last'])}", 200))
            if g.get("ips"):
                lines.append("\n")
                lines.append_text(literal(f"from {', '.join(g['ips'])} · agents {'; '.join(g['user_agents'])}", 240))
            return lines
        if kind == "principal":
            p = data["principal"]
            return literal(f"principal {p['principal']} holds {_n(len(p['credentials']), 'credential')} in reach", 200)
        if kind == "tenant":
            return literal(f"tenant (issuer) {data['tenant']}", 200)
        if kind == "group":
            return Text.assemble(literal(data.get("text", ""), 240), severity_badge(data.get("sev")))
        return Text("")

    @work(thread=True, exclusive=True, group="blast-proof", exit_on_error=False)
    def load_proof(self, data: dict[str, Any]) -> None:
        def fetch(c: Case) -> list[dict[str, Any]]:
            ids = list(data.get("events") or [])
            if data.get("uses") is not None:  # a credential: also its first uses
                ids += [r[0] for r in c.conn.execute("SELECT id FROM events WHERE credential_id = ? ORDER BY ts"
                                                     " LIMIT ?", (data["uses"], FIRST_USES))]
            return event_rows(c, ids, credentials=data.get("hints") or [], span=data.get("span"))

        rows = self.read(fetch)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._proof, rows)

    def _proof(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#proof", EventTable)
        table.loading = False
        table.show(rows)

    # -- the revocation set -----------------------------------------------------------------------------

    def _fill_revocation(self, keep_cursor: bool = False) -> None:
        table: DataTable[Any] = self.query_one("#revocation", DataTable)
        cursor = table.cursor_row
        table.clear()
        for n, r in enumerate(self.revocation):
            i = r.item
            mark = ("[x]" if r.selected else "[ ]") if r.plannable else " · "
            what = i.get("preview") or credential_name(i.get("keys") or [], None) if i["kind"] != "app" \
                else (i.get("client") or "?")
            table.add_row(Text(mark, style="bold" if r.selected else "dim"), literal(i["kind"], 12),
                          literal(what, 26), literal(i.get("connector") or "-", 10), literal(i.get("verb") or "-", 22),
                          "raw" if i.get("needs_raw_secret") and r.plannable else "", literal(i["reason"], 80),
                          key=str(n))
        if keep_cursor and table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        rs: dict[str, Any] = self.result["doc"]["revocation_set"] if self.result else {"not_listed": {}, "as_of": ""}
        hint = (f"space: select · a: all/none{'' if self.read_only else ' · p: plan the selected'} · as of "
                f"{short_time(rs['as_of'])}; not listed: {rs['not_listed'].get('expired', 0)} expired, "
                f"{rs['not_listed'].get('revoked', 0)} proven revoked")
        self.query_one("#revocation-hint", Static).update(literal(hint))
        if self.result is not None:
            self._summary()

    def action_switch_view(self) -> None:
        views = self.query_one("#views", TabbedContent)
        views.active = "revocation-tab" if views.active == "reach-tab" else "reach-tab"
        self.query_one("#revocation" if views.active == "revocation-tab" else "#reach").focus()
        self.refresh_bindings()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()

    def action_toggle_item(self) -> None:
        table: DataTable[Any] = self.query_one("#revocation", DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self.revocation):
            return
        r = self.revocation[row]
        if not r.plannable:
            self.notify("a client to review by hand: playbooks plan it as a manual step, not an act",
                        severity="information", markup=False)
            return
        r.selected = not r.selected
        self._fill_revocation(keep_cursor=True)

    def action_toggle_all(self) -> None:
        plannable = [r for r in self.revocation if r.plannable]
        everything = not all(r.selected for r in plannable)
        for r in plannable:
            r.selected = everything
        self._fill_revocation(keep_cursor=True)

    def excluded(self) -> list[str]:
        """What the responder deselected, as `make_plan(exclude=…)` takes it."""
        return sorted({r.exclude_name() for r in self.revocation if r.plannable and not r.selected})

    # -- planning ---------------------------------------------------------------------------------------

    def action_refuse_plan(self) -> None:
        self.notify("read-only: planning writes a plan to the case; reopen without --read-only",
                    severity="warning", markup=False)

    def action_plan(self) -> None:
        if self.read_only:
            self.action_refuse_plan()
            return
        if self.result is None:
            self.notify("no blast radius yet: give a seed (s)", severity="warning", markup=False)
            return
        if not any(r.selected for r in self.revocation if r.plannable):
            self.notify("nothing selected to plan (a: select all)", severity="warning", markup=False)
            return
        self.load_playbooks()

    @work(thread=True, exclusive=True, group="blast-playbooks", exit_on_error=False)
    def load_playbooks(self) -> None:
        from playbooks.model import PlaybookError, load_all

        try:
            pbs = load_all(self.stanch.playbook_dirs)
        except PlaybookError as e:
            self.app.call_from_thread(self.notify, clean(e, 200), severity="error", markup=False)
            return
        choices = []
        for p in pbs.values():
            uses = any(s.kind == "select" and s.spec.get("from") == "revocation_set" for s in p.steps)
            choices.append((p.id, p.title, uses))
        choices.sort(key=lambda c: (not c[2], c[0]))
        uses_set = [c[0] for c in choices if c[2]]
        default = PREFERRED_PLAYBOOK if PREFERRED_PLAYBOOK in uses_set else next(iter(uses_set), None)
        self.app.call_from_thread(self._pick, choices, default)

    def _pick(self, choices: list[tuple[str, str, bool]], default: str | None) -> None:
        if self.result is None:
            return
        seed = self.result["doc"]["seed"]["input"]
        chosen = sum(1 for r in self.revocation if r.plannable and r.selected)
        left_out = len(self.excluded())
        note = f"plan the revocation set of {seed} ({chosen} selected, {left_out} left out) with:"

        def picked(playbook: str | None) -> None:
            if playbook and self.result is not None:
                self.notify(clean(f"planning with {playbook}…", 120), markup=False)
                self.make_plan(playbook, seed, self.excluded())

        self.app.push_screen(PlaybookPicker(choices, default, note), picked)

    @work(thread=True, exclusive=True, group="blast-plan", exit_on_error=False)
    def make_plan(self, playbook: str, seed: str, exclude: list[str]) -> None:
        from casefile import plans
        from playbooks import engine
        from playbooks.model import PlaybookError, load_all

        try:
            pb = load_all(self.stanch.playbook_dirs)[playbook]
            with self.case() as c:
                plan_id = engine.make_plan(c, pb, {"seed": seed}, exclude=exclude)
                items = len(plans.load(c, plan_id).items)
        except (CaseError, PlaybookError, KeyError) as e:
            self.app.call_from_thread(self.notify, clean(f"no plan: {e}", 200), severity="error", markup=False)
            return
        self.app.call_from_thread(self._planned, plan_id, items, exclude)

    def _planned(self, plan_id: int, items: int, exclude: list[str]) -> None:
        self.notify(f"plan {plan_id}: {items} items, {len(exclude)} left out; review and approve it on the "
                    "playbooks screen", markup=False)
        self.stanch.open("playbooks", plan_id)

    # -- moving around ----------------------------------------------------------------------------------

    def action_focus_proof(self) -> None:
        if self._view() != "reach-tab":
            self.query_one("#views", TabbedContent).active = "reach-tab"
        self.query_one("#proof", EventTable).focus()

    def action_focus_suggest(self) -> None:
        self.query_one("#suggest", DataTable).focus()

    def action_back(self) -> None:
        box = self.query_one("#seed", Input)
        if box.has_focus and self.result is not None:
            box.remove_class("shown")
        self.query_one("#reach" if self._view() == "reach-tab" else "#revocation").focus()

    def action_timeline(self) -> None:
        proof = self.query_one("#proof", EventTable)
        if proof.has_focus and (eid := proof.event_id()) is not None:
            self.stanch.open("timeline", proof.target(eid))
            return
        node = self.query_one("#reach", Tree).cursor_node
        key = (node.data or {}).get("key") if node is not None else None
        if key:
            self.stanch.open("timeline", key)
        elif (eid := proof.event_id()) is not None:
            self.stanch.open("timeline", proof.target(eid))
        else:
            self.notify("highlight a credential or a proving event first", severity="warning", markup=False)


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
